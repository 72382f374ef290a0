// Supervised Boot (Zymbit SCM / Secure Edge Node): the module verifies a signed manifest of files in
// the boot partition (kernel, initrd.img, cmdline.txt, …) before the Pi boots and, in production
// mode, destroys every key when one no longer matches. So every zkluks change that rewrites a boot
// file first makes sure it can sign again (else refuses), and signs each manifest file it changed
// right after the change, before anything else can reboot the Pi.
//
// Zymbit's API gives back the manifest's paths, never the signatures. To tell whether a file still
// matches, zkluks keeps its own record of each file's SHA-256 when it signed it or first saw it.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, posix } from 'node:path';
import { writeFileAtomic } from '../atomic-write.ts';
import type { SupervisedBootInfo, ZymkeyPort } from '../device/port.ts';
import { RefusedError, ZkluksError } from '../errors.ts';
import { shellWord, zkluksCommand } from '../hint.ts';
import { readText } from '../read-text.ts';
import { under } from '../root-path.ts';
import { findBootImages } from './boot-image.ts';
import { BOOT_PATHS } from './boot-files.ts';

/** zkluks's record of the manifest files' digests. */
export const SUPERVISED_BOOT_RECORD = BOOT_PATHS.supervisedBootRecord;

/**
 * The files `zkluks adopt` took out of the SCM's manifest while it rewrites them and has yet to sign
 * again, one a line: until they are back in, the SCM does not verify them before boot.
 */
export const MANIFEST_OUT = '/var/lib/zkluks/adopt/supervised-boot-out';

export function readManifestOut(root: string): string[] {
  return (readText(under(root, MANIFEST_OUT)) ?? '').split('\n').filter((f) => f !== '');
}

export interface RecordEntry {
  sha256: string;
  at: string;
  /** signed: zkluks signed it then; seen: it was in the manifest when zkluks first looked. */
  how: 'signed' | 'seen';
}

export interface SupervisedBootRecord {
  version: 1;
  /** The boot partition the paths are relative to (a path in the system). */
  bootPartition: string;
  files: Record<string, RecordEntry>;
}

/** The boot partition the SCM's manifest paths are relative to. */
export function bootPartitionOf(root: string): string {
  return findBootImages(root).bootPartition ?? '/boot';
}

export function readRecord(root: string): SupervisedBootRecord | null {
  try {
    const raw = JSON.parse(readFileSync(under(root, SUPERVISED_BOOT_RECORD), 'utf8')) as SupervisedBootRecord;
    if (raw.version !== 1 || typeof raw.files !== 'object' || raw.files === null) return null;
    return raw;
  } catch {
    return null;
  }
}

function writeRecord(root: string, record: SupervisedBootRecord): void {
  const path = under(root, SUPERVISED_BOOT_RECORD);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileAtomic(path, `${JSON.stringify(record, null, 2)}\n`, 0o600);
}

/** SHA-256 of a manifest file on disk, null when it is missing or unreadable. */
export function digestOf(root: string, boot: string, file: string): string | null {
  try {
    return createHash('sha256')
      .update(readFileSync(under(root, posix.join(boot, file))))
      .digest('hex');
  } catch {
    return null;
  }
}

export type EntryState = 'matches' | 'changed' | 'missing' | 'unrecorded';

export interface ManifestEntry {
  file: string;
  /** The file in the system (e.g. /boot/firmware/initrd.img). */
  path: string;
  state: EntryState;
  recorded: RecordEntry | null;
}

/** Each manifest file against zkluks's record and the disk. */
export function manifestEntries(root: string, manifest: readonly string[]): ManifestEntry[] {
  const boot = bootPartitionOf(root);
  const record = readRecord(root);
  return [...manifest].sort().map((file) => {
    const disk = digestOf(root, boot, file);
    const recorded = record?.bootPartition === boot ? (record.files[file] ?? null) : null;
    const state: EntryState =
      disk === null
        ? 'missing'
        : recorded === null
          ? 'unrecorded'
          : recorded.sha256 === disk
            ? 'matches'
            : 'changed';
    return { file, path: posix.join(boot, file), state, recorded };
  });
}

/** The command that signs `files` again. */
export function signCommand(root: string, files: readonly string[]): string {
  return zkluksCommand(root, 'supervised-boot', 'update', ...files.map(shellWord));
}

/** Zymbit's own call, for when zkluks cannot make it. */
export function zymbitSignCommand(file: string): string {
  return `python3 -c 'import zymkey; zymkey.client.add_or_update_supervised_boot_file("${file}", 15)'`;
}

export async function supervisedBootInfo(port: ZymkeyPort): Promise<SupervisedBootInfo> {
  return port.supervisedBoot ? port.supervisedBoot() : { scm: false, manifest: null, error: null };
}

/** Sign `files` now, record their digests; the files that could not be signed, with why. */
export async function signFiles(
  port: ZymkeyPort,
  root: string,
  files: readonly string[],
  now: Date = new Date(),
): Promise<{ signed: string[]; failed: { file: string; why: string }[] }> {
  const boot = bootPartitionOf(root);
  const record = readRecord(root);
  const files0 = record?.bootPartition === boot ? record.files : {};
  const next: SupervisedBootRecord = { version: 1, bootPartition: boot, files: { ...files0 } };
  const signed: string[] = [];
  const failed: { file: string; why: string }[] = [];
  for (const file of files) {
    const digest = digestOf(root, boot, file);
    if (digest === null) {
      failed.push({ file, why: `${posix.join(boot, file)} is missing` });
      continue;
    }
    try {
      if (!port.updateSupervisedBootFile) throw new Error('this Zymkey backend cannot sign boot files');
      await port.updateSupervisedBootFile(file);
      next.files[file] = { sha256: digest, at: now.toISOString(), how: 'signed' };
      signed.push(file);
    } catch (error) {
      failed.push({ file, why: (error as Error).message });
    }
  }
  if (signed.length > 0) writeRecord(root, next);
  return { signed, failed };
}

/** The error for files changed on disk but not signed: the next boot would destroy the keys. */
export function unsignedError(root: string, failed: readonly { file: string; why: string }[]): ZkluksError {
  const files = failed.map((f) => f.file);
  return new ZkluksError(
    `Failed to sign ${files.join(', ')} in the SCM's Supervised Boot manifest (${failed.map((f) => `${f.file}: ${f.why}`).join('; ')}). DO NOT REBOOT until they are signed: at the next boot the SCM finds them changed and, in production mode, destroys every key`,
    {
      hint: `systemctl start zkifc, then ${signCommand(root, files)} (or Zymbit's own call: ${zymbitSignCommand(files[0] ?? 'FILE')})`,
    },
  );
}

/** The refusal of a change to boot files when an SCM is there but its manifest cannot be read. */
export function unreadableRefusal(what: string, info: SupervisedBootInfo): RefusedError {
  return new RefusedError(
    `Refusing to ${what}: this Pi has a Zymbit SCM, whose Supervised Boot verifies boot files at every boot (and, in production mode, destroys every key when one changed), and its manifest cannot be read (${info.error ?? 'no answer'}), so zkluks could not sign the files it changes`,
    {
      hint: `systemctl start zkifc, then run it again; to change the files without zkluks signing them, sign each changed file yourself before any reboot: ${zymbitSignCommand('initrd.img')}`,
    },
  );
}

/** What a change would rewrite on the boot partition. */
export interface BootRewrites {
  /** It rebuilds the initramfs, which may rewrite every initramfs image (initrd.img, initramfs8, …). */
  initramfs: boolean;
  /** Files it writes, restores or removes (paths in the system, e.g. /boot/firmware/cmdline.txt). */
  paths: string[];
  /** It leaves the rebuild to the admin (--no-update): the images to sign after it. */
  rebuildLater?: boolean;
}

export interface SigningPlanEntry {
  /** The manifest's name, relative to the boot partition. */
  file: string;
  /** 'rebuild': signed if the rebuild changed it; 'written': the change rewrites it. */
  because: 'rebuild' | 'written';
}

/** What a run would do about an SCM's Supervised Boot manifest: the dry run of the guard. */
export interface SigningPlan {
  scm: boolean;
  /** The manifest's files ([] without an SCM or with Supervised Boot off). */
  manifest: string[];
  /** The manifest files the change rewrites; the run signs each one whose bytes changed. */
  sign: SigningPlanEntry[];
  /** The manifest's images the admin's own rebuild changes later, to sign before any reboot. */
  afterRebuild: string[];
  /** Why the manifest could not be read, when the change touches no boot file (else it refuses). */
  unreadable: string | null;
}

/** An initramfs image's name in a manifest (initrd.img, initramfs8, initramfs_2712, initrd.img-6.12…). */
export function isInitramfsImage(file: string): boolean {
  return /^(initrd|initramfs)/.test(posix.basename(file));
}

/** Pure: the manifest files a change with these rewrites touches, given the boot partition. */
export function rewrittenManifestFiles(
  manifest: readonly string[],
  boot: string,
  rewrites: BootRewrites,
): SigningPlanEntry[] {
  const prefix = `${boot.replace(/\/+$/, '')}/`;
  const written = new Set(
    rewrites.paths.filter((p) => p.startsWith(prefix)).map((p) => p.slice(prefix.length)),
  );
  return [...manifest]
    .sort()
    .flatMap((file): SigningPlanEntry[] =>
      written.has(file)
        ? [{ file, because: 'written' }]
        : rewrites.initramfs && isInitramfsImage(file)
          ? [{ file, because: 'rebuild' }]
          : [],
    );
}

/**
 * What a change with these rewrites would do about the SCM's manifest, read-only (for --dry-run):
 * the files it would sign, or the same refusal as the run when the manifest cannot be read.
 */
export async function planSigning(
  port: ZymkeyPort,
  root: string,
  what: string,
  rewrites: BootRewrites,
): Promise<SigningPlan> {
  const info = await supervisedBootInfo(port);
  const none = { manifest: [], sign: [], afterRebuild: [], unreadable: null };
  if (!info.scm) return { scm: false, ...none };
  const changes = rewrites.initramfs || rewrites.paths.length > 0;
  if (info.manifest === null) {
    if (changes) throw unreadableRefusal(what, info);
    return { scm: true, ...none, unreadable: info.error ?? 'no answer' };
  }
  const manifest = [...info.manifest].sort();
  const sign = rewrittenManifestFiles(manifest, bootPartitionOf(root), rewrites);
  const afterRebuild =
    rewrites.rebuildLater === true && !rewrites.initramfs ? manifest.filter(isInitramfsImage) : [];
  return { scm: true, manifest, sign, afterRebuild, unreadable: null };
}

/** The warning for a change that leaves the rebuild to the admin on a Pi whose SCM verifies images. */
export function signAfterRebuildWarning(root: string, images: readonly string[]): string {
  return `this Pi's SCM verifies ${images.join(', ')} at boot: after rebuilding the initramfs, sign what changed before any reboot: ${signCommand(root, images)}`;
}

/** A signing plan in words, for a dry run's output (nothing without an SCM). */
export function describeSigning(root: string, plan: SigningPlan): string[] {
  if (!plan.scm) return [];
  if (plan.unreadable !== null)
    return [`supervised boot: the SCM's manifest cannot be read (${plan.unreadable})`];
  if (plan.manifest.length === 0)
    return ["supervised boot: the SCM's manifest is empty (Supervised Boot off): nothing to sign"];
  const lines: string[] = [];
  if (plan.sign.length === 0 && plan.afterRebuild.length === 0) {
    lines.push(
      `supervised boot: this changes none of the SCM's manifest files (${plan.manifest.join(', ')}): nothing to sign`,
    );
  }
  if (plan.sign.length > 0) {
    const files = plan.sign.map((e) =>
      e.because === 'rebuild' ? `${e.file} (if the rebuild changes it)` : e.file,
    );
    lines.push(
      `supervised boot: would sign in the SCM's manifest, right after the change and before any reboot: ${files.join(', ')}`,
    );
  }
  if (plan.afterRebuild.length > 0)
    lines.push(`supervised boot: ${signAfterRebuildWarning(root, plan.afterRebuild)}`);
  return lines;
}

export interface BootFilesGuard {
  manifest: string[];
  bootPartition: string;
  /** After the change: sign each manifest file whose content changed. Throws when one could not be. */
  settle(): Promise<{ signed: string[] }>;
}

/**
 * Before a change that may rewrite boot files: null when no SCM supervises this Pi's boot (or its
 * manifest is empty); refuses when an SCM is there but its manifest cannot be read, since zkluks
 * could then not sign what it changes. Records a first digest of every manifest file it has none of.
 */
export async function guardBootFiles(
  port: ZymkeyPort,
  root: string,
  what: string,
  now: Date = new Date(),
): Promise<BootFilesGuard | null> {
  const info = await supervisedBootInfo(port);
  if (!info.scm) return null;
  if (info.manifest === null) throw unreadableRefusal(what, info);
  if (info.manifest.length === 0) return null;
  const manifest = [...info.manifest].sort();
  const boot = bootPartitionOf(root);
  const before = new Map(manifest.map((f) => [f, digestOf(root, boot, f)]));
  const record = readRecord(root);
  const files = record?.bootPartition === boot ? { ...record.files } : {};
  let seen = false;
  for (const [file, digest] of before) {
    if (digest !== null && files[file] === undefined) {
      files[file] = { sha256: digest, at: now.toISOString(), how: 'seen' };
      seen = true;
    }
  }
  if (seen) writeRecord(root, { version: 1, bootPartition: boot, files });
  return {
    manifest,
    bootPartition: boot,
    async settle() {
      const changed = manifest.filter((f) => digestOf(root, boot, f) !== before.get(f));
      if (changed.length === 0) return { signed: [] };
      const result = await signFiles(port, root, changed);
      if (result.failed.length > 0) throw unsignedError(root, result.failed);
      return { signed: result.signed };
    },
  };
}

/**
 * Run a change that may rewrite boot files, then sign what it changed, also when the change failed
 * part way (a failed rebuild that left an image changed). Without a guard it only runs `change`.
 */
export async function withSignedBootFiles<T>(
  guard: BootFilesGuard | null,
  change: () => Promise<T>,
): Promise<{ result: T; signed: string[] }> {
  if (guard === null) return { result: await change(), signed: [] };
  let result: T;
  try {
    result = await change();
  } catch (error) {
    try {
      await guard.settle();
    } catch (unsigned) {
      const u = unsigned as ZkluksError;
      throw new ZkluksError(`${(error as Error).message}. ${u.message}`, {
        cause: error,
        ...(u.hint === undefined ? {} : { hint: u.hint }),
      });
    }
    throw error;
  }
  const { signed } = await guard.settle();
  return { result, signed };
}
