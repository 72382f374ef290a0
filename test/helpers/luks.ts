// Real LUKS2 image files for volume-tier tests: fast (pbkdf2, 1000 iterations), with a known
// passphrase in keyslot 0, in a temporary directory removed after the test.
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { createRunner, type Runner } from '../../src/exec.ts';

export const TEST_PASSPHRASE = 'correct horse battery staple';

export interface TestImage {
  /** The temporary directory holding the image (free for other test files too). */
  dir: string;
  /** The image file: pass it to zkluks as VOLUME. */
  path: string;
  passphrase: string;
  cleanup(): Promise<void>;
}

export interface ImageOptions {
  passphrase?: string;
  sizeMiB?: number;
  /** `--luks2-metadata-size` in KiB (16 = the smallest JSON area, about 12 KiB of JSON). */
  metadataSizeKiB?: number;
  /** `luks1` makes a LUKS1 image; `none` an empty file of the same size. */
  type?: 'luks2' | 'luks1' | 'none';
  runner?: Runner;
}

/** Format the existing file `path` as LUKS (fast KDF) with `key` in keyslot 0. */
export async function formatLuks(
  path: string,
  key: string | Buffer,
  options: { type?: 'luks2' | 'luks1'; metadataSizeKiB?: number; runner?: Runner } = {},
): Promise<void> {
  const type = options.type ?? 'luks2';
  await (options.runner ?? createRunner())(
    'cryptsetup',
    [
      'luksFormat',
      '--batch-mode',
      '--type',
      type,
      ...(type === 'luks2' ? ['--pbkdf', 'pbkdf2'] : []),
      '--pbkdf-force-iterations',
      '1000',
      ...(options.metadataSizeKiB ? ['--luks2-metadata-size', `${options.metadataSizeKiB}k`] : []),
      '--key-file',
      '-',
      path,
    ],
    { input: key, secretInput: true },
  );
}

/** Make an image; call `cleanup()` when done (or use `luksImage` inside a test). */
export async function makeLuksImage(options: ImageOptions = {}): Promise<TestImage> {
  const run = options.runner ?? createRunner();
  const passphrase = options.passphrase ?? TEST_PASSPHRASE;
  const dir = await mkdtemp(join(tmpdir(), 'zkluks-vol-'));
  const path = join(dir, 'disk.img');
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    await writeFile(path, '');
    await truncate(path, (options.sizeMiB ?? 32) * 1024 * 1024);
    const type = options.type ?? 'luks2';
    if (type !== 'none') await formatLuks(path, passphrase, { ...options, type, runner: run });
  } catch (error) {
    await cleanup();
    throw error;
  }
  return { dir, path, passphrase, cleanup };
}

/** Make an image that is removed when the current test finishes. */
export async function luksImage(options: ImageOptions = {}): Promise<TestImage> {
  const image = await makeLuksImage(options);
  onTestFinished(() => image.cleanup());
  return image;
}

/** True when `key` opens `volume` (optionally only through `keyslot`), without activating it. */
export async function opens(
  volume: string,
  key: string | Buffer,
  keyslot?: number,
  runner: Runner = createRunner(),
): Promise<boolean> {
  const r = await runner(
    'cryptsetup',
    [
      'open',
      '--test-passphrase',
      ...(keyslot === undefined ? [] : ['--key-slot', String(keyslot)]),
      '--key-file',
      '-',
      volume,
    ],
    { input: key, secretInput: true, reject: false },
  );
  return r.exitCode === 0;
}

/** Add `newKey` to the image (authorised by `existingKey`), fast KDF; returns the slot used. */
export async function addKey(
  volume: string,
  existingKey: string | Buffer,
  newKey: string | Buffer,
  keyslot: number,
  runner: Runner = createRunner(),
): Promise<number> {
  const dir = await mkdtemp(join('/dev/shm', 'zkluks-testkey-'));
  try {
    const file = join(dir, 'new');
    await writeFile(file, newKey, { mode: 0o600 });
    await runner(
      'cryptsetup',
      [
        'luksAddKey',
        '--batch-mode',
        '--pbkdf',
        'pbkdf2',
        '--pbkdf-force-iterations',
        '1000',
        '--key-slot',
        String(keyslot),
        '--key-file',
        '-',
        volume,
        file,
      ],
      { input: existingKey, secretInput: true },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return keyslot;
}
