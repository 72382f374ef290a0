// Everything install, check and remove need to know about the system tree, read once: crypttab and
// its backup, our installed files, zkunlockifs, Zymbit's state, the volume's LUKS header, the
// initramfs-tools MODULES setting, the boot images and the prompt's console. Reads only.
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { followLinks } from '../atomic-write.ts';
import type { Runner } from '../exec.ts';
import { UsageError, ZkluksError } from '../errors.ts';
import { readHeader } from '../keyslot/header.ts';
import { zkluksCommand } from '../hint.ts';
import { linkCommand, resolveRootDevice } from '../root-device.ts';
import { under } from '../root-path.ts';
import { findBootImages, type BootImageReport } from './boot-image.ts';
import { BOOT_PATHS, INSTALLED_FILES, TOKEN_TYPE, ZKUNLOCKIFS_CANDIDATES } from './boot-files.ts';
import { readPromptConsole, type PromptConsole } from './console.ts';
import {
  CRYPTTAB_ABSENT,
  entries,
  findEntry,
  findVolume,
  isZkluksEntry,
  parseCrypttab,
  sourceUuid,
  type Crypttab,
  type CrypttabEntry,
} from './crypttab.ts';
import { readText } from '../read-text.ts';

export interface VolumeFacts {
  /** The crypttab name, when a line for the volume exists or --name was given. */
  name: string | null;
  /** The LUKS UUID (lower case); null when it could not be learned. */
  uuid: string | null;
  /** The device or image file, when known and present. */
  device: string | null;
  /** The existing crypttab line for the volume. */
  entry: CrypttabEntry | null;
  /** Whether the header has a zkluks-zymkey token; null when the header could not be read. */
  hasZymkeyToken: boolean | null;
  /** Why the header could not be read. */
  headerError: string | null;
}

export interface InstallFacts {
  root: string;
  /** /etc/crypttab's text; null when the file does not exist. */
  crypttab: string | null;
  /** The crypttab backup's text; null when there is none. */
  crypttabBackup: string | null;
  /** Install found no /etc/crypttab (its marker file exists), so remove takes the file away again. */
  crypttabWasAbsent: boolean;
  /** Current content of each file install writes, by absolute path (null: absent). */
  installed: Record<string, string | null>;
  /** zkunlockifs on the system, as an absolute path; null when not found. */
  zkunlockifs: string | null;
  zymbitState: boolean;
  zkenv: boolean;
  volume: VolumeFacts;
  /** MODULES= from initramfs.conf and conf.d (the last one wins); null when not set. */
  modules: string | null;
  bootImages: BootImageReport;
  /** Kernel versions with a modules directory in the tree. */
  kernels: string[];
  console: PromptConsole | null;
}

function isExecutable(path: string): boolean {
  try {
    const stat = statSync(path);
    return stat.isFile() && (stat.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** zkunlockifs: the path asked for, else the first of Zymbit's usual places that exists under root. */
export function findZkunlockifs(root: string, asked?: string): string | null {
  if (asked !== undefined) return isExecutable(under(root, asked)) ? asked : null;
  return ZKUNLOCKIFS_CANDIDATES.find((p) => isExecutable(under(root, p))) ?? null;
}

export function modulesSetting(root: string): string | null {
  const files = [under(root, '/etc/initramfs-tools/initramfs.conf')];
  const confd = under(root, '/etc/initramfs-tools/conf.d');
  if (existsSync(confd))
    files.push(
      ...readdirSync(confd)
        .sort()
        .map((f) => join(confd, f)),
    );
  let value: string | null = null;
  for (const f of files) {
    for (const line of (readText(f) ?? '').split('\n')) {
      const m = /^\s*MODULES=["']?([a-z]+)["']?\s*$/.exec(line);
      if (m?.[1]) value = m[1];
    }
  }
  return value;
}

export function installedKernels(root: string): string[] {
  const out = new Set<string>();
  for (const dir of ['/usr/lib/modules', '/lib/modules']) {
    try {
      for (const v of readdirSync(under(root, dir))) out.add(v);
    } catch {
      // no such directory in this tree
    }
  }
  return [...out].sort();
}

function realpath(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

/**
 * The line whose source is `device`, written as it is or as another name of the same node: a
 * source is found through the tree's /dev first, then the host's (src/root-device.ts).
 */
function findEntryByDevice(tab: Crypttab, device: string, root: string): CrypttabEntry | null {
  const real = realpath(device);
  return (
    findEntry(tab, { source: device }) ??
    entries(tab).find((e) => {
      const path = resolveRootDevice(root, e.source).path;
      return real !== null && path !== null && realpath(path) === real;
    }) ??
    null
  );
}

/** A crypttab source this tree names but neither the tree's /dev nor this host has. */
function unresolvedError(root: string, entry: CrypttabEntry): UsageError {
  const device = resolveRootDevice(root, entry.source);
  const where = root === '/' ? 'this system has no such device' : `neither ${root}/dev nor this host has it`;
  return new UsageError(
    `Failed to find the volume of the crypttab line '${entry.name}': it names ${entry.source} and ${where}`,
    {
      hint:
        root === '/'
          ? 'zkluks initramfs install DEVICE (name the LUKS device; lsblk -f lists them)'
          : `say which device or image file holds it: ${linkCommand(root, device)}, then ${zkluksCommand(root, 'initramfs', 'install')}`,
    },
  );
}

/** The crypttab line a command without VOLUME means: the zkluks line, else the only line. */
function defaultEntry(tab: Crypttab, onlyOurs: boolean): CrypttabEntry | null {
  const all = entries(tab);
  const ours = all.filter(isZkluksEntry);
  if (ours.length === 1) return ours[0] ?? null;
  if (onlyOurs && ours.length === 0) return null;
  if (ours.length === 0 && all.length === 1) return all[0] ?? null;
  throw new UsageError(
    all.length === 0
      ? 'Failed to pick the volume: crypttab has no entry; name the LUKS device'
      : `Failed to pick the volume: crypttab has ${ours.length > 1 ? 'several zkluks lines' : 'several lines'}; name one`,
    { hint: 'zkluks initramfs install /dev/mmcblk0p2 (or a crypttab name)' },
  );
}

async function volumeFacts(
  runner: Runner,
  root: string,
  crypttab: string | null,
  volume: string | undefined,
  name: string | undefined,
  onlyOurs: boolean,
): Promise<VolumeFacts> {
  const tab = parseCrypttab(crypttab ?? '');
  let entry: CrypttabEntry | null = null;
  let device: string | null = null;
  let uuid: string | null = null;
  let headerError: string | null = null;
  if (volume === undefined) {
    entry = defaultEntry(tab, onlyOurs);
  } else if (volume.startsWith('/')) {
    device = volume;
  } else if (sourceUuid(volume) !== undefined) {
    uuid = sourceUuid(volume) ?? null;
  } else {
    entry = findVolume(tab, volume) ?? null;
    if (entry === null) {
      throw new UsageError(
        `Failed to find volume '${volume}': it is no crypttab name, UUID= or device path`,
        {
          hint: 'zkluks initramfs install /dev/mmcblk0p2 --name cryptroot',
        },
      );
    }
  }
  if (entry !== null) {
    uuid = sourceUuid(entry.source) ?? null;
    const found = resolveRootDevice(root, entry.source);
    if (found.path !== null) device = found.path;
    else if (uuid === null && !onlyOurs) throw unresolvedError(root, entry);
    else if (uuid === null) headerError = unresolvedError(root, entry).message;
  }
  if (device === null && uuid !== null) device = resolveRootDevice(root, `UUID=${uuid}`).path;
  let hasZymkeyToken: boolean | null = null;
  if (device !== null) {
    try {
      const header = await readHeader(runner, device);
      uuid = header.uuid.toLowerCase();
      hasZymkeyToken = header.tokens.some((t) => t.type === TOKEN_TYPE && t.keyslots.length > 0);
    } catch (error) {
      if (!(error instanceof ZkluksError)) throw error;
      headerError = error.message;
      if (volume?.startsWith('/')) throw error;
    }
  }
  if (entry === null && uuid !== null) entry = findEntry(tab, { uuid }) ?? null;
  if (entry === null && device !== null) entry = findEntryByDevice(tab, device, root);
  return {
    name: name ?? entry?.name ?? null,
    uuid,
    device,
    entry,
    hasZymkeyToken,
    headerError,
  };
}

export interface GatherOptions {
  runner: Runner;
  root: string;
  volume?: string;
  name?: string;
  zkunlockifs?: string;
  /** Without a VOLUME, settle for no volume when crypttab has no zkluks line (check, remove). */
  onlyOurs?: boolean;
}

export async function gatherInstallFacts(opts: GatherOptions): Promise<InstallFacts> {
  const { root } = opts;
  // A symlinked crypttab is read where its links lead, absolute targets inside the tree.
  const crypttab = readText(under(root, followLinks(root, BOOT_PATHS.crypttab)));
  const installed = Object.fromEntries(INSTALLED_FILES.map((p) => [p, readText(under(root, p))]));
  return {
    root,
    crypttab,
    crypttabBackup: readText(under(root, BOOT_PATHS.crypttabBackup)),
    crypttabWasAbsent: existsSync(under(root, CRYPTTAB_ABSENT)),
    installed,
    zkunlockifs: findZkunlockifs(root, opts.zkunlockifs),
    zymbitState: existsSync(under(root, BOOT_PATHS.zymbitState)),
    zkenv: existsSync(under(root, BOOT_PATHS.zkenv)),
    volume: await volumeFacts(opts.runner, root, crypttab, opts.volume, opts.name, opts.onlyOurs ?? false),
    modules: modulesSetting(root),
    bootImages: findBootImages(root),
    kernels: installedKernels(root),
    console: readPromptConsole(root),
  };
}
