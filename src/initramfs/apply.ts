// Runs an install or remove plan step by step, as one transaction. Files are written aside and renamed
// into place, so a crash never leaves a half-written crypttab or keyscript; a symlinked crypttab is
// written through its links. Should a step fail, or a signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) stop
// the plan, before update-initramfs has succeeded, every file the plan touched is put back as it was,
// and so is every image the failed rebuild had replaced; once it has succeeded the files and the
// images agree and the plan finishes. Temp files and kept images a killed run left are removed first.
import { linkSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { followLinks, removeStaleTemps, writeFileAtomic } from '../atomic-write.ts';
import type { Runner } from '../exec.ts';
import { ZkluksError } from '../errors.ts';
import { rebuildInitramfs, zkluksCommand } from '../hint.ts';
import { under } from '../root-path.ts';
import { BOOT_PATHS, INSTALLED_FILES } from './boot-files.ts';
import { findBootImages, type BootImage, type BootImageReport } from './boot-image.ts';
import { inspectImage, linkedLibraries, type ImageInspection } from './inspect.ts';
import type { Plan, Step } from './plan-install.ts';

function writeAtomic(path: string, content: string | Buffer, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, content, mode);
}

function modeOf(path: string, fallback: number): number {
  try {
    return statSync(path).mode & 0o7777;
  } catch {
    return fallback;
  }
}

export interface ImageCheck extends Omit<ImageInspection, 'inside'> {
  because: string;
  /** What of zkluks's is inside; null when the image could not be listed. */
  inside: ImageInspection['inside'] | null;
}

/**
 * The images to verify: what the firmware loads (Raspberry Pi), else every /boot/initrd.img-*.
 * `report` is the boot-image report when it is known to be current (not after a rebuild).
 */
export function imagesToVerify(root: string, report: BootImageReport = findBootImages(root)): BootImage[] {
  const existing = report.images.filter((i) => i.exists);
  if (existing.length > 0) return existing;
  // No firmware image yet: fall back to what update-initramfs wrote.
  let files: string[] = [];
  try {
    files = readdirSync(under(root, '/boot')).filter((f) => f.startsWith('initrd.img-'));
  } catch {
    files = [];
  }
  return files.map((f) => ({
    image: `/boot/${f}`,
    kernel: null,
    because: 'written by update-initramfs',
    models: 'all',
    exists: true,
  }));
}

export async function verifyImages(
  runner: Runner,
  root: string,
  zkunlockifs: string,
  images: BootImage[] = imagesToVerify(root),
): Promise<ImageCheck[]> {
  const libraries = (await linkedLibraries(runner, under(root, zkunlockifs))).filter(
    (l) => !/\/(ld-linux|linux-vdso)/.test(l),
  );
  const out: ImageCheck[] = [];
  for (const img of images) {
    try {
      const inspection = await inspectImage(runner, under(root, img.image), { root, zkunlockifs, libraries });
      out.push({ ...inspection, image: img.image, because: img.because });
    } catch (error) {
      if (!(error instanceof ZkluksError)) throw error;
      out.push({
        image: img.image,
        because: img.because,
        kernelVersions: [],
        inside: null,
        findings: [{ level: 'error', message: error.message }],
      });
    }
  }
  return out;
}

export interface ApplyResult {
  /** Each step as done, for the report. */
  done: Step[];
  images: ImageCheck[];
}

/** A file as it was before the plan ran, to put back if the rebuild fails. */
interface SavedFile {
  /** Absolute in the system (a symlinked crypttab: the file the links lead to). */
  path: string;
  content: Buffer | null;
  mode: number;
}

function saveFile(root: string, path: string): SavedFile {
  try {
    return {
      path,
      content: readFileSync(under(root, path)),
      mode: statSync(under(root, path)).mode & 0o7777,
    };
  } catch {
    return { path, content: null, mode: 0 };
  }
}

/** Put the files back as saved; the paths that could not be, with why. */
function restoreFiles(root: string, saved: readonly SavedFile[]): string[] {
  const failed: string[] = [];
  for (const f of [...saved].reverse()) {
    try {
      if (f.content === null) rmSync(under(root, f.path), { force: true });
      else writeAtomic(under(root, f.path), f.content, f.mode);
    } catch (error) {
      failed.push(`${f.path} (${(error as Error).message})`);
    }
  }
  return failed;
}

/**
 * An initramfs image kept by a second hard link (`.<name>.zkluks-keep` beside it) while
 * update-initramfs runs: it writes each new image aside and renames it into place, so the link keeps
 * the old one whole and a failed rebuild can put it back with one rename.
 */
interface KeptImage {
  image: string;
  keep: string | null;
  ino: number;
  size: number;
  mtimeMs: number;
}

/** Every initramfs image update-initramfs may rewrite: /boot/initrd.img-* and what the firmware loads. */
function imagePaths(root: string): string[] {
  const out = new Set(imagesToVerify(root, findBootImages(root)).map((i) => i.image));
  try {
    for (const f of readdirSync(under(root, '/boot'))) if (f.startsWith('initrd.img-')) out.add(`/boot/${f}`);
  } catch {
    // no /boot in this tree
  }
  return [...out].sort();
}

/** The name that keeps `host` (an image) whole while update-initramfs runs. */
const keepPath = (host: string) => join(dirname(host), `.${basename(host)}.zkluks-keep`);
const KEEP = /^\..+\.zkluks-keep$/;

/**
 * Kept images a killed run left behind (it never reached its end): the image itself is whatever
 * the rebuild left, whole, so the second name only takes space. Removed before a new run keeps any.
 */
function dropStaleKeeps(root: string): void {
  for (const dir of new Set(imagePaths(root).map((i) => dirname(under(root, i))))) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) if (KEEP.test(name)) rmSync(join(dir, name), { force: true });
  }
}

function keepImages(root: string): KeptImage[] {
  return imagePaths(root).flatMap((image): KeptImage[] => {
    const host = under(root, image);
    let st;
    try {
      st = statSync(host);
    } catch {
      return [];
    }
    if (!st.isFile()) return [];
    const keep = keepPath(host);
    try {
      rmSync(keep, { force: true });
      linkSync(host, keep);
      return [{ image, keep, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs }];
    } catch {
      // A filesystem without hard links (the FAT firmware partition): this image cannot be put back.
      return [{ image, keep: null, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs }];
    }
  });
}

function dropKeeps(kept: readonly KeptImage[]): void {
  for (const k of kept) if (k.keep !== null) rmSync(k.keep, { force: true });
}

/** Put back each image the failed rebuild replaced; the images left changed, with why. */
function restoreImages(root: string, kept: readonly KeptImage[]): string[] {
  const left: string[] = [];
  for (const k of kept) {
    const host = under(root, k.image);
    let st;
    try {
      st = statSync(host);
    } catch {
      st = null;
    }
    const same = st !== null && st.ino === k.ino && st.size === k.size && st.mtimeMs === k.mtimeMs;
    if (same) continue;
    if (k.keep === null) {
      left.push(
        `${k.image} (rebuilt before the failure; its filesystem keeps no second link to put it back)`,
      );
      continue;
    }
    try {
      renameSync(k.keep, host);
    } catch (error) {
      left.push(`${k.image} (${(error as Error).message})`);
    }
  }
  dropKeeps(kept);
  return left;
}

/** The sentence that says what a failed plan left behind. */
function leftBehind(files: string[], images: string[]): string {
  if (files.length === 0 && images.length === 0) {
    return 'crypttab, the boot files and the initramfs images are back as they were';
  }
  const parts = [];
  if (files.length > 0) parts.push(`these files could not be put back: ${files.join(', ')}`);
  else parts.push('crypttab and the boot files are back as they were');
  if (images.length > 0) parts.push(`these images still differ from before: ${images.join(', ')}`);
  return parts.join('; ');
}

export interface ApplyOptions {
  runner: Runner;
  root: string;
  /** Aborted by a signal: the plan stops before its next step and, before the rebuild, rolls back. */
  signal?: AbortSignal;
  /** The command line that runs this plan again, as hints name it (the CLI gives the admin's own). */
  again?: string;
}

export async function applyPlan(plan: Plan, opts: ApplyOptions): Promise<ApplyResult> {
  const { runner, root, signal } = opts;
  const again = opts.again ?? zkluksCommand(root, 'initramfs', plan.operation);
  const done: Step[] = [];
  let images: ImageCheck[] = [];
  // A symlinked crypttab is written where its links lead, so the links stay.
  const target = (step: Step) =>
    step.kind === 'write-crypttab' ? followLinks(root, step.path) : 'path' in step ? step.path : null;
  const paths = [...new Set(plan.steps.map(target).filter((p) => p !== null))];
  // What a killed run left: its temp files (dot-named, so never run as hooks) and kept images.
  const ours = [
    ...paths,
    ...INSTALLED_FILES,
    BOOT_PATHS.crypttabBackup,
    followLinks(root, BOOT_PATHS.crypttab),
  ];
  for (const dir of new Set(ours.map((p) => dirname(under(root, p))))) removeStaleTemps(dir);
  const saved = paths.map((p) => saveFile(root, p));
  const rebuilds = plan.steps.some((s) => s.kind === 'update-initramfs');
  dropStaleKeeps(root);
  const kept = rebuilds ? keepImages(root) : [];
  let rebuilt = false;
  try {
    for (const step of plan.steps) {
      // After a good rebuild the files and the images agree; only the read-only verify is left.
      if (signal?.aborted && !rebuilt) {
        throw new ZkluksError(
          `Stopped by ${String(signal.reason ?? 'a signal')} before the initramfs was rebuilt`,
          { hint: `run it again: ${again}` },
        );
      }
      const path = under(root, target(step) ?? '/');
      switch (step.kind) {
        case 'backup-crypttab':
          writeAtomic(path, step.content, 0o600);
          break;
        case 'write-file':
          writeAtomic(path, step.content, step.mode);
          break;
        case 'write-crypttab':
          writeAtomic(path, step.content, modeOf(path, 0o644));
          break;
        case 'remove-file':
          rmSync(path, { force: true });
          break;
        case 'update-initramfs': {
          const [file = 'update-initramfs', ...args] = step.command;
          const r = await runner(file, args, { reject: false, timeoutMs: 30 * 60_000 });
          if (r.exitCode !== 0 && signal?.aborted) {
            // The signal that stopped zkluks stopped the rebuild too: nothing to fix but to run it again.
            throw new ZkluksError(
              `Stopped by ${String(signal.reason ?? 'a signal')} while the initramfs was rebuilt ('${step.command.join(' ')}' exited ${r.exitCode})`,
              { hint: `run it again: ${again}` },
            );
          }
          if (r.exitCode !== 0) {
            throw new ZkluksError(
              `Failed to rebuild the initramfs: '${step.command.join(' ')}' exited ${r.exitCode}: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`,
              {
                hint: `fix what it reports (run '${step.command.join(' ')}' by hand to see every message), then run it again: ${again}`,
              },
            );
          }
          rebuilt = true;
          dropKeeps(kept);
          break;
        }
        case 'verify-images': {
          if (plan.zkunlockifs === null)
            throw new ZkluksError('Failed to verify the initramfs: zkunlockifs is unknown');
          images = await verifyImages(runner, root, plan.zkunlockifs);
          if (images.length === 0) {
            throw new ZkluksError('Failed to verify the initramfs: no image was found under /boot', {
              hint: `${rebuildInitramfs(root)}, then ${zkluksCommand(root, 'initramfs', 'check')}`,
            });
          }
          const bad = images.flatMap((i) =>
            i.findings.filter((f) => f.level === 'error').map((f) => `${i.image}: ${f.message}`),
          );
          if (bad.length > 0) {
            throw new ZkluksError(`Failed to verify the initramfs: ${bad.join('; ')}`, {
              hint: `${zkluksCommand(root, 'initramfs', 'check')} (lists every finding)`,
            });
          }
          break;
        }
      }
      done.push(step);
    }
  } catch (error) {
    // After a good rebuild the files and the images agree: the verify finding stands on its own.
    if (rebuilt) throw error;
    const files = restoreFiles(root, saved);
    const left = leftBehind(files, restoreImages(root, kept));
    if (error instanceof ZkluksError) {
      throw new ZkluksError(`${error.message}. ${left}`, {
        exitCode: error.exitCode,
        cause: error,
        ...(error.hint === undefined ? {} : { hint: error.hint }),
      });
    }
    throw new ZkluksError(
      `Failed to ${plan.operation} the boot files: ${(error as Error).message}. ${left}`,
      {
        cause: error,
        hint: `once the cause is fixed, run it again: ${again}`,
      },
    );
  }
  return { done, images };
}
