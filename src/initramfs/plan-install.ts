// Pure planners for `initramfs install` and `initramfs remove`: facts + options -> the steps, as
// plain data. The safety rules live here and refuse with a sentence that states the rule.
import { RefusedError, UsageError } from '../errors.ts';
import { BOOT_PATHS, INSTALLED_FILES, renderBootFiles, type BootFile } from './boot-files.ts';
import { shellWord, zkluksCommand } from '../hint.ts';
import { linkCommand, resolveRootDevice } from '../root-device.ts';
import {
  findEntry,
  CRYPTTAB_ABSENT,
  CRYPTTAB_ABSENT_TEXT,
  findEntryIndex,
  formatOptions,
  isZkluksEntry,
  parseCrypttab,
  restoreEntry,
  serializeCrypttab,
  setZkluksEntry,
  type CrypttabOption,
} from './crypttab.ts';
import type { InstallFacts } from './install-facts.ts';

export type Step =
  | { kind: 'backup-crypttab'; path: string; content: string }
  | { kind: 'write-file'; path: string; mode: number; content: string; change: 'create' | 'update' }
  | {
      kind: 'write-crypttab';
      path: string;
      content: string;
      action: 'add' | 'update' | 'restore';
      before: string | null;
      after: string | null;
    }
  | { kind: 'remove-file'; path: string }
  | { kind: 'update-initramfs'; command: string[] }
  | { kind: 'verify-images' };

export interface Plan {
  operation: 'install' | 'remove';
  volume: { name: string; uuid: string | null; device: string | null };
  /** zkunlockifs on the system, which the images must carry. */
  zkunlockifs: string | null;
  steps: Step[];
  /** Files already as they should be. */
  unchanged: string[];
  /** crypttab options of the old line that the zkluks line does not keep. */
  droppedOptions: CrypttabOption[];
  /** What else changes in the crypttab line (key file, tries=), one sentence each, for the summary. */
  notes: string[];
  warnings: string[];
}

export interface InstallOptions {
  /** Name of the crypttab line (default: the existing line's name, else 'cryptroot'). */
  name?: string;
  noUpdate: boolean;
  timeoutSeconds?: number;
}

export const DEFAULT_NAME = 'cryptroot';

/**
 * update-initramfs on the live system (-u: refresh the images it has), or inside the tree through
 * chroot with -c, the rebuild the hints name: a tree's images may be missing, and -u would leave them so.
 */
export function updateCommand(root: string): string[] {
  return root === '/'
    ? ['update-initramfs', '-u', '-k', 'all']
    : ['chroot', root, 'update-initramfs', '-c', '-k', 'all'];
}

/**
 * The way forward when the line named `name` names another device. A source neither the tree nor
 * this host has may be this very disk under the name the Pi gives it: the admin says so with a link.
 */
function takeOverHint(facts: InstallFacts, name: string): string {
  const device = facts.volume.device ?? 'VOLUME';
  const other = zkluksCommand(facts.root, 'initramfs', 'install', '--name', 'NAME', shellWord(device));
  const line = findEntry(parseCrypttab(facts.crypttab ?? ''), { name });
  const source = line ? resolveRootDevice(facts.root, line.source) : null;
  if (!line || !source || source.found !== null || !source.name.startsWith('/')) {
    return `${other} (a name no other line has)`;
  }
  return `if ${line.source} is this disk (its name on the Pi): ${linkCommand(facts.root, source, device)}, then ${zkluksCommand(facts.root, 'initramfs', 'install', shellWord(device))}; if it is another disk: ${other}`;
}

export function planInstall(facts: InstallFacts, opts: InstallOptions): Plan {
  const { volume } = facts;
  const name = opts.name ?? volume.name ?? DEFAULT_NAME;
  if (facts.zkunlockifs === null) {
    throw new RefusedError(
      'Refusing to install the boot files: zkunlockifs is not installed, so every boot would skip the Zymkey and ask for the passphrase',
      { hint: "apt install zksaapps (Zymbit's standalone tools), or name the tool with --zkunlockifs PATH" },
    );
  }
  if (volume.uuid === null) {
    throw new UsageError(
      `Failed to learn the LUKS UUID of '${volume.device ?? volume.entry?.source ?? name}'${volume.headerError ? `: ${volume.headerError}` : ''}`,
      {
        hint: `${zkluksCommand(facts.root, 'initramfs', 'install', 'VOLUME')} (name the LUKS device or image file itself)`,
      },
    );
  }
  if (volume.hasZymkeyToken === false) {
    throw new RefusedError(
      `Refusing to install the boot files for '${volume.device}': its LUKS2 header has no zkluks-zymkey token, so the keyscript could only ever ask for the passphrase`,
      { hint: `zkluks enroll '${volume.device}'` },
    );
  }
  const warnings: string[] = [];
  if (volume.hasZymkeyToken === null) {
    warnings.push(
      `could not read the LUKS header of the volume (${volume.headerError ?? 'device not present'}); make sure it has a zkluks-zymkey token (zkluks list VOLUME)`,
    );
  }
  if (!facts.zymbitState)
    warnings.push(`${BOOT_PATHS.zymbitState} is missing: the Zymkey cannot unseal without it`);
  else if (!facts.zkenv)
    warnings.push(`${BOOT_PATHS.zkenv} is missing: kernels from 6.6 on need ZK_GPIO_WAKE_PIN`);
  if (facts.modules === 'dep') {
    warnings.push(
      'initramfs-tools uses MODULES=dep: only modules of the build machine go in; the zkluks hook adds the I2C modules itself',
    );
  }

  const steps: Step[] = [];
  const tab = parseCrypttab(facts.crypttab ?? '');
  const change = setZkluksEntry(tab, {
    name,
    uuid: volume.uuid,
    ...(volume.entry === null ? {} : { source: volume.entry.source }),
    deviceKnown: volume.device !== null,
    takeOverHint: takeOverHint(facts, name),
  });
  const alreadyOurs = volume.entry !== null && isZkluksEntry(volume.entry);
  const backedUp = facts.crypttabBackup !== null || facts.crypttabWasAbsent;
  if (change.action !== 'unchanged' && !backedUp && !alreadyOurs) {
    steps.push(
      facts.crypttab === null
        ? { kind: 'backup-crypttab', path: CRYPTTAB_ABSENT, content: CRYPTTAB_ABSENT_TEXT }
        : { kind: 'backup-crypttab', path: BOOT_PATHS.crypttabBackup, content: facts.crypttab },
    );
  }
  const notes: string[] = [];
  if (change.keyFile !== null) {
    notes.push(
      `crypttab key file '${change.keyFile.before}' becomes '${change.keyFile.after}': the zkluks keyscript gives the key`,
    );
  }
  for (const c of change.changed) {
    notes.push(
      `crypttab ${formatOptions([c.from])} becomes ${formatOptions([c.to])}: the passphrase prompt comes on the try after a rejected Zymkey key`,
    );
  }
  const unchanged: string[] = [];
  const files: BootFile[] = renderBootFiles({
    zkunlockifs: facts.zkunlockifs,
    timeoutSeconds: opts.timeoutSeconds,
  });
  for (const f of files) {
    const current = facts.installed[f.path] ?? null;
    const keep = f.keepExisting && current !== null && opts.timeoutSeconds === undefined;
    if (current === f.content || keep) unchanged.push(f.path);
    else
      steps.push({
        kind: 'write-file',
        path: f.path,
        mode: f.mode,
        content: f.content,
        change: current === null ? 'create' : 'update',
      });
  }
  if (change.action === 'unchanged') unchanged.push(BOOT_PATHS.crypttab);
  else
    steps.push({
      kind: 'write-crypttab',
      path: BOOT_PATHS.crypttab,
      content: serializeCrypttab(change.crypttab),
      action: change.action,
      before: change.before ?? null,
      after: change.after,
    });
  if (!opts.noUpdate) {
    steps.push({ kind: 'update-initramfs', command: updateCommand(facts.root) });
    steps.push({ kind: 'verify-images' });
  }
  return {
    operation: 'install',
    volume: { name, uuid: volume.uuid, device: volume.device },
    zkunlockifs: facts.zkunlockifs,
    steps,
    unchanged,
    droppedOptions: change.dropped,
    notes,
    warnings,
  };
}

export function planRemove(facts: InstallFacts, opts: { noUpdate: boolean }): Plan {
  const found = facts.volume.entry;
  const warnings: string[] = [];
  if (found !== null && !isZkluksEntry(found)) {
    warnings.push(`the crypttab line '${found.name}' does not use the zkluks keyscript; it stays as it is`);
  }
  const entry = found !== null && isZkluksEntry(found) ? found : null;
  const steps: Step[] = [];
  const unchanged: string[] = [];
  if (entry !== null && facts.crypttab !== null) {
    const current = parseCrypttab(facts.crypttab);
    // Without a backup the line keeps everything but the keyscript, so cryptroot asks for the passphrase.
    const backupText = facts.crypttabBackup ?? (facts.crypttabWasAbsent ? '' : null);
    const backup = backupText === null ? current : parseCrypttab(backupText);
    const restored = restoreEntry(current, backup, entry.name);
    const line = (tab: typeof current) => tab.lines[findEntryIndex(tab, { name: entry.name })]?.text ?? null;
    const content = serializeCrypttab(restored);
    if (content === '' && facts.crypttabWasAbsent)
      steps.push({ kind: 'remove-file', path: BOOT_PATHS.crypttab });
    else
      steps.push({
        kind: 'write-crypttab',
        path: BOOT_PATHS.crypttab,
        content,
        action: 'restore',
        before: line(current),
        after: line(restored),
      });
  } else unchanged.push(BOOT_PATHS.crypttab);
  // The keyscript goes last among the files: the rebuild must not find crypttab naming a missing file.
  for (const path of INSTALLED_FILES.filter((p) => p !== BOOT_PATHS.keyscript)) {
    if (facts.installed[path] != null) steps.push({ kind: 'remove-file', path });
  }
  if (facts.crypttabBackup !== null) steps.push({ kind: 'remove-file', path: BOOT_PATHS.crypttabBackup });
  if (facts.crypttabWasAbsent) steps.push({ kind: 'remove-file', path: CRYPTTAB_ABSENT });
  if (facts.installed[BOOT_PATHS.keyscript] != null) {
    steps.push({ kind: 'remove-file', path: BOOT_PATHS.keyscript });
  }
  if (!opts.noUpdate) steps.push({ kind: 'update-initramfs', command: updateCommand(facts.root) });
  return {
    operation: 'remove',
    volume: {
      name: entry?.name ?? facts.volume.name ?? DEFAULT_NAME,
      uuid: facts.volume.uuid,
      device: facts.volume.device,
    },
    zkunlockifs: facts.zkunlockifs,
    steps,
    unchanged,
    droppedOptions: [],
    notes: [],
    warnings,
  };
}
