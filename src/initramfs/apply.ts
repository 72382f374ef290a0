// Runs an install or remove plan step by step. Files are written aside and renamed into place, so a
// crash never leaves a half-written crypttab or keyscript.
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../atomic-write.ts';
import type { Runner } from '../exec.ts';
import { ZkluksError } from '../errors.ts';
import { rebuildInitramfs, zkluksCommand } from '../hint.ts';
import { under } from '../root-path.ts';
import { findBootImages, type BootImage, type BootImageReport } from './boot-image.ts';
import { inspectImage, linkedLibraries, type ImageInspection } from './inspect.ts';
import type { Plan, Step } from './plan-install.ts';

function writeAtomic(path: string, content: string, mode: number): void {
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

export async function applyPlan(plan: Plan, opts: { runner: Runner; root: string }): Promise<ApplyResult> {
  const { runner, root } = opts;
  const done: Step[] = [];
  let images: ImageCheck[] = [];
  for (const step of plan.steps) {
    const path = 'path' in step ? under(root, step.path) : '';
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
        if (r.exitCode !== 0) {
          throw new ZkluksError(
            `Failed to rebuild the initramfs: '${step.command.join(' ')}' exited ${r.exitCode}: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`,
            {
              hint: `${step.command.join(' ')} (run it by hand to see every message), then ${zkluksCommand(root, 'initramfs', 'check')}`,
            },
          );
        }
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
  return { done, images };
}
