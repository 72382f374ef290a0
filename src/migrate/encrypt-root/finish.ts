// The ends of the encrypt-root journey. --finish, on the first boot of the encrypted root: check the
// volume is the planned LUKS2 one with both zkluks tokens and no reencryption left, then remove what
// only the encrypting boot needed (its plan, the sealed keys, the hook and boot script, the unit)
// and rebuild the initramfs for the normal unlock path. --disarm, before the encryption began: put
// cmdline.txt, fstab and crypttab back as they were and remove everything arming added.
import { existsSync, lstatSync, rmSync } from 'node:fs';
import { writeFileAtomic } from '../../atomic-write.ts';
import { RefusedError, ZkluksError } from '../../errors.ts';
import { zkluksCommand } from '../../hint.ts';
import type { Runner } from '../../exec.ts';
import { applyPlan as applyInstall } from '../../initramfs/apply.ts';
import { gatherInstallFacts } from '../../initramfs/install-facts.ts';
import { planRemove, updateCommand, type Step as InstallStep } from '../../initramfs/plan-install.ts';
import { importToken } from '../../keyslot/cryptsetup.ts';
import { readHeader, type HeaderFacts } from '../../keyslot/header.ts';
import { RECOVERY_TOKEN_TYPE, ZYMKEY_TOKEN_TYPE } from '../../keyslot/token.ts';
import { under } from '../../root-path.ts';
import { parsePlanConf } from './boot-files.ts';
import { ENCRYPT_PATHS, LEFTOVERS, RECOVERY_SLOT, treeDevice, ZYMKEY_SLOT } from './layout.ts';
import { readText } from '../../read-text.ts';

export interface JourneyDeps {
  runner: Runner;
  root: string;
}

export interface JourneyOptions {
  noUpdate: boolean;
  dryRun: boolean;
  /** The LUKS volume (default: found by its planned UUID). */
  device?: string;
}

export interface JourneyResult {
  changed: boolean;
  dryRun: boolean;
  removed: string[];
  restored: string[];
  updateInitramfs: string[] | null;
  lines: string[];
}

/** Whether the LUKS2 header says a reencryption (here: the in-place encryption) is unfinished. */
export async function reencryptionPending(runner: Runner, device: string): Promise<boolean> {
  const r = await runner('cryptsetup', ['luksDump', '--dump-json-metadata', device], { reject: false });
  if (r.exitCode !== 0) return false;
  try {
    const meta = JSON.parse(r.stdout) as { config?: { requirements?: { mandatory?: unknown } } };
    const mandatory = meta.config?.requirements?.mandatory;
    return Array.isArray(mandatory) && mandatory.some((m) => String(m).startsWith('online-reencrypt'));
  } catch {
    return false;
  }
}

async function findByUuid(runner: Runner, uuid: string): Promise<string | null> {
  const r = await runner('blkid', ['-l', '-t', `UUID=${uuid}`, '-o', 'device'], { reject: false });
  const dev = r.stdout.trim();
  return r.exitCode === 0 && dev !== '' ? dev : null;
}

function armedPlan(root: string): Record<string, string> | null {
  const text = readText(under(root, ENCRYPT_PATHS.planConf));
  return text === null ? null : parsePlanConf(text);
}

/** The result when there is no armed journey to finish or disarm. */
function nothingToDo(opts: JourneyOptions, line: string): JourneyResult {
  return {
    changed: false,
    dryRun: opts.dryRun,
    removed: [],
    restored: [],
    updateInitramfs: null,
    lines: [line],
  };
}

async function rebuild(deps: JourneyDeps, noUpdate: boolean, dryRun: boolean): Promise<string[] | null> {
  if (noUpdate) return null;
  const command = updateCommand(deps.root);
  if (!dryRun) {
    await applyInstall(
      {
        operation: 'install',
        volume: { name: '', uuid: null, device: null },
        zkunlockifs: null,
        steps: [{ kind: 'update-initramfs', command }],
        unchanged: [],
        droppedOptions: [],
        warnings: [],
        notes: [],
      },
      deps,
    );
  }
  return command;
}

interface SaltStamp {
  tokenId: number;
  type: string;
  slot: number;
  json: string;
}

/**
 * The encrypting boot imports zkluks's tokens as they were written at arming, before their keyslots
 * existed, so they record no `keyslot_salt`. The boot tested both keys against the planned slots
 * right after adding them; each token naming its planned slot gets that slot's salt now, so later
 * changes count the recovery slot as proven and tell these slots from any that replace them.
 */
function saltStamps(header: HeaderFacts, plan: Record<string, string>): SaltStamp[] {
  const planned: Record<string, number> = {
    [ZYMKEY_TOKEN_TYPE]: Number(plan.ZKLUKS_ENC_ZYMKEY_SLOT ?? ZYMKEY_SLOT),
    [RECOVERY_TOKEN_TYPE]: Number(plan.ZKLUKS_ENC_RECOVERY_SLOT ?? RECOVERY_SLOT),
  };
  return header.tokens.flatMap((t) => {
    const slot = t.keyslots[0];
    if (slot === undefined || t.keyslots.length !== 1 || slot !== planned[t.type]) return [];
    if (typeof t.json.keyslot_salt === 'string' && t.json.keyslot_salt !== '') return [];
    const salt = header.keyslots.find((k) => k.id === slot)?.salt;
    if (!salt) return [];
    return [{ tokenId: t.id, type: t.type, slot, json: JSON.stringify({ ...t.json, keyslot_salt: salt }) }];
  });
}

/** Whether `path` exists, a dangling symlink (a unit link in a staged tree) included. */
function present(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function removeAll(root: string, paths: readonly string[], dryRun: boolean): string[] {
  const removed = paths.filter((p) => present(under(root, p)));
  if (!dryRun) for (const p of removed) rmSync(under(root, p), { force: true });
  return removed;
}

export async function finishEncryptRoot(deps: JourneyDeps, opts: JourneyOptions): Promise<JourneyResult> {
  const plan = armedPlan(deps.root);
  if (plan === null) {
    return nothingToDo(opts, 'unchanged: no encrypt-root journey to finish');
  }
  const uuid = plan.ZKLUKS_ENC_UUID ?? '';
  const device = opts.device ?? (await findByUuid(deps.runner, uuid));
  if (device === null) {
    throw new RefusedError(
      `Refusing to finish encrypt-root: no volume has the planned LUKS2 UUID ${uuid}, so the root is not encrypted yet`,
      {
        hint:
          deps.root === '/'
            ? 'reboot to encrypt (the armed boot does it), or zkluks encrypt-root --disarm'
            : `if the disk was encrypted: ${zkluksCommand(deps.root, 'encrypt-root', '--finish', '--device', 'DEVICE')}; if its encrypting boot has not run: ${zkluksCommand(deps.root, 'encrypt-root', '--disarm', '--device', 'DEVICE')}`,
      },
    );
  }
  const header = await readHeader(deps.runner, device);
  if (header.uuid.toLowerCase() !== uuid) {
    throw new RefusedError(
      `Refusing to finish encrypt-root: ${device} has LUKS2 UUID ${header.uuid}, not the planned ${uuid}`,
      { hint: zkluksCommand(deps.root, 'doctor') },
    );
  }
  if (await reencryptionPending(deps.runner, device)) {
    throw new RefusedError(
      `Refusing to finish encrypt-root: the encryption of ${device} is not complete (the next boot resumes it)`,
      {
        hint:
          deps.root === '/'
            ? 'reboot; the encrypting boot resumes where it stopped'
            : 'boot the Pi from this disk; its encrypting boot resumes where it stopped',
      },
    );
  }
  const types = header.tokens.filter((t) => t.keyslots.length > 0).map((t) => t.type);
  const missing = [ZYMKEY_TOKEN_TYPE, RECOVERY_TOKEN_TYPE].filter((t) => !types.includes(t));
  if (missing.length > 0) {
    throw new RefusedError(
      `Refusing to finish encrypt-root: ${device} has no ${missing.join(' or ')} token yet, and the encrypting boot still needs the sealed keys to add it`,
      {
        hint: `${deps.root === '/' ? 'reboot' : 'boot the Pi from this disk'} (the boot adds the keyslot and tokens again), then ${zkluksCommand(deps.root, 'encrypt-root', '--finish', ...treeDevice(deps.root, device))}`,
      },
    );
  }
  const stamps = saltStamps(header, plan);
  if (!opts.dryRun) {
    for (const s of stamps) await importToken(deps.runner, device, s.tokenId, s.json, true);
  }
  const removed = removeAll(
    deps.root,
    [...LEFTOVERS, ENCRYPT_PATHS.finishUnitLink, ENCRYPT_PATHS.finishUnit],
    opts.dryRun,
  );
  const update = await rebuild(deps, opts.noUpdate, opts.dryRun);
  return {
    changed: !opts.dryRun,
    dryRun: opts.dryRun,
    removed,
    restored: [],
    updateInitramfs: update,
    lines: [
      `${opts.dryRun ? 'would finish' : 'finished'}: ${device} is LUKS2 ${uuid} with a Zymkey keyslot and a recovery keyslot`,
      ...stamps.map(
        (s) =>
          `  ${opts.dryRun ? 'would record' : 'recorded'} keyslot ${s.slot}'s salt in its ${s.type} token ${s.tokenId}`,
      ),
      ...removed.map((p) => `  ${opts.dryRun ? 'would remove' : 'removed'} ${p}`),
      ...(update ? [`  ${opts.dryRun ? 'would run' : 'ran'} ${update.join(' ')}`] : []),
      `  the originals of fstab and cmdline.txt stay in ${ENCRYPT_PATHS.origDir}`,
    ],
  };
}

export async function disarmEncryptRoot(deps: JourneyDeps, opts: JourneyOptions): Promise<JourneyResult> {
  const { root } = deps;
  const plan = armedPlan(root);
  if (plan === null) {
    return nothingToDo(opts, 'unchanged: the next boot is not armed to encrypt');
  }
  const uuid = plan.ZKLUKS_ENC_UUID ?? '';
  const luks = opts.device ?? (await findByUuid(deps.runner, uuid));
  if (luks !== null && existsSync(luks)) {
    const probe = await deps.runner('blkid', ['-p', '-s', 'TYPE', '-o', 'value', luks], { reject: false });
    if (probe.stdout.trim() === 'crypto_LUKS') {
      throw new RefusedError(
        `Refusing to disarm: the encryption of ${luks} has begun; the plain boot files would no longer find the root`,
        {
          hint: `${root === '/' ? 'reboot' : 'boot the Pi from this disk'} to let it complete, then ${zkluksCommand(root, 'encrypt-root', '--finish', ...treeDevice(root, luks))}`,
        },
      );
    }
  }
  const restored: string[] = [];
  const restore = (path: string, from: string) => {
    const text = readText(under(root, from));
    if (text === null) return;
    if (!opts.dryRun) writeFileAtomic(under(root, path), text, 0o644);
    restored.push(path);
  };
  // cmdline.txt first: from then on the next boot is the plain one again.
  for (const dir of ['/boot/firmware', '/boot']) {
    if (existsSync(under(root, `${dir}/cmdline.txt.zkluks-orig`))) {
      restore(`${dir}/cmdline.txt`, `${dir}/cmdline.txt.zkluks-orig`);
      if (!opts.dryRun) rmSync(under(root, `${dir}/cmdline.txt.zkluks-orig`), { force: true });
      break;
    }
  }
  restore('/etc/fstab', `${ENCRYPT_PATHS.origDir}/fstab`);
  const install = planRemove(await gatherInstallFacts({ runner: deps.runner, root, onlyOurs: true }), {
    noUpdate: true,
  });
  if (!opts.dryRun) await applyInstall(install, deps);
  for (const s of install.steps as InstallStep[]) {
    if (s.kind === 'write-crypttab') restored.push(s.path);
  }
  const removed = [
    ...install.steps.flatMap((s) => (s.kind === 'remove-file' ? [s.path] : [])),
    ...removeAll(
      root,
      [
        ...LEFTOVERS,
        ENCRYPT_PATHS.finishUnitLink,
        ENCRYPT_PATHS.finishUnit,
        `${ENCRYPT_PATHS.origDir}/fstab`,
        `${ENCRYPT_PATHS.origDir}/cmdline.txt`,
      ],
      opts.dryRun,
    ),
  ];
  const update = await rebuild(deps, opts.noUpdate, opts.dryRun);
  if (!opts.dryRun && existsSync(under(root, ENCRYPT_PATHS.planConf))) {
    throw new ZkluksError(`Failed to disarm: ${ENCRYPT_PATHS.planConf} is still there`);
  }
  return {
    changed: !opts.dryRun,
    dryRun: opts.dryRun,
    removed,
    restored,
    updateInitramfs: update,
    lines: [
      `${opts.dryRun ? 'would disarm' : 'disarmed'}: the next boot is the plain one again`,
      ...restored.map((p) => `  ${opts.dryRun ? 'would restore' : 'restored'} ${p}`),
      ...removed.map((p) => `  ${opts.dryRun ? 'would remove' : 'removed'} ${p}`),
      ...(update ? [`  ${opts.dryRun ? 'would run' : 'ran'} ${update.join(' ')}`] : []),
    ],
  };
}
