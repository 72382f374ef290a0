// The boot tier's disk: GPT with one partition that is LUKS2 (made by `cryptsetup reencrypt
// --encrypt` on an ext4 image), holding a root whose static init prints the boot records and powers
// off. Keyslot 0: a typeable passphrase; then `zkluks enroll` (on the simulator) adds the Zymkey
// keyslot and its zkluks-zymkey token, exactly as an admin would.
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRunner } from '../../src/exec.ts';
import { readHeader } from '../../src/keyslot/header.ts';
import { openZymkey } from '../../src/device/open.ts';
import { repoRoot, zkluks } from '../helpers/cli.ts';
import { withLoopDevice } from '../helpers/loop.ts';

export const PASSPHRASE = 'zk recovery 2024';

/** Where the LUKS2 partition starts in the disk image, and its size. */
const PART_OFFSET_MIB = 1;
const PART_SIZE_MIB = 48;

export interface BootDisk {
  path: string;
  uuid: string;
}

async function run(file: string, args: string[], input?: string | Buffer): Promise<void> {
  await execa(file, args, { input });
}

/** The root filesystem's tree at `rootfs`: the static marker init and the mount points. */
export async function markerRootfs(rootfs: string): Promise<string> {
  for (const d of ['sbin', 'proc', 'sys', 'dev', 'run', 'tmp'])
    mkdirSync(join(rootfs, d), { recursive: true });
  await run('gcc', [
    '-static',
    '-O2',
    '-o',
    join(rootfs, 'sbin/init'),
    join(repoRoot, 'test/boot/guest/marker-init.c'),
  ]);
  chmodSync(join(rootfs, 'sbin/init'), 0o755);
  return rootfs;
}

export async function makeBootDisk(dir: string, simState: string): Promise<BootDisk> {
  const rootfs = await markerRootfs(join(dir, 'rootfs'));
  const part = join(dir, 'part.img');
  const keyDir = join('/dev/shm', `zkluks-bootkey-${process.pid}`);
  mkdirSync(keyDir, { recursive: true, mode: 0o700 });
  try {
    await run('truncate', ['-s', `${PART_SIZE_MIB}M`, part]);
    await run('mkfs.ext4', ['-q', '-F', '-L', 'root', '-d', rootfs, part, '32M']);
    const passFile = join(keyDir, 'pass');
    writeFileSync(passFile, PASSPHRASE, { mode: 0o600 });
    const fast = ['--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000'];
    await run('cryptsetup', [
      'reencrypt',
      '--encrypt',
      '-q',
      '--type',
      'luks2',
      ...fast,
      '--key-file',
      passFile,
      '--key-slot',
      '0',
      '--reduce-device-size',
      '16M',
      part,
    ]);
    const enrolled = await zkluks([
      'enroll',
      part,
      '--unlock-key-file',
      passFile,
      '--no-recovery-key',
      '--yes',
      '--backend',
      'sim',
      '--sim-state',
      simState,
    ]);
    if (enrolled.exitCode !== 0) throw new Error(`zkluks enroll failed:\n${enrolled.stderr}`);
  } finally {
    rmSync(keyDir, { recursive: true, force: true });
  }
  const uuid = (await execa('cryptsetup', ['luksUUID', part])).stdout.trim();
  const disk = await diskWithPartition(part, join(dir, 'disk.img'));
  rmSync(part);
  return { path: disk, uuid };
}

/**
 * Runs `fn` while the disk's partition is a read-only loop device of this host, so that an initramfs
 * built here finds the volume by its UUID (blkid), as a build on the machine that boots it does.
 */
export function withPartitionDevice<T>(diskPath: string, fn: () => Promise<T>): Promise<T> {
  const MiB = 1024 * 1024;
  return withLoopDevice(diskPath, fn, { offset: PART_OFFSET_MIB * MiB, sizelimit: PART_SIZE_MIB * MiB });
}

/** A GPT disk image `out` whose one partition (the guest's /dev/vda1) holds the 48 MiB image `part`. */
export async function diskWithPartition(part: string, out: string): Promise<string> {
  await run('truncate', ['-s', '50M', out]);
  await run('sfdisk', ['-q', out], 'label: gpt\nstart=2048, size=98304, type=L\n');
  await writePartition(part, out);
  return out;
}

/** Write the partition image `part` into the disk image `disk` at the partition's offset. */
function writePartition(part: string, disk: string): Promise<void> {
  return run('dd', [
    `if=${part}`,
    `of=${disk}`,
    'bs=1M',
    `seek=${PART_OFFSET_MIB}`,
    'conv=notrunc',
    'status=none',
  ]);
}

/**
 * A copy of `disk` whose zkluks-zymkey token holds a key the same Zymkey sealed for another volume
 * (as when a token is copied from another volume's header): the Zymkey unseals it, but it opens no
 * keyslot of this volume. Checked on the host before it is returned.
 */
export async function withForeignSealedKey(disk: BootDisk, simState: string, out: string): Promise<BootDisk> {
  const part = `${out}.part`;
  try {
    await run('dd', [
      `if=${disk.path}`,
      `of=${part}`,
      'bs=1M',
      `skip=${PART_OFFSET_MIB}`,
      `count=${PART_SIZE_MIB}`,
      'status=none',
    ]);
    const found = (await readHeader(createRunner(), part)).tokens.find((t) => t.type === 'zkluks-zymkey');
    if (found === undefined) throw new Error(`no zkluks-zymkey token on ${disk.path}`);
    const id = String(found.id);
    const token = JSON.parse(
      (await execa('cryptsetup', ['token', 'export', '--token-id', id, part])).stdout,
    ) as {
      sealed: string;
    };
    const port = openZymkey({ backend: 'sim', simState, runner: createRunner() });
    const otherKey = randomBytes(64);
    token.sealed = (await port.seal(otherKey)).toString('base64');
    await run(
      'cryptsetup',
      ['token', 'import', '--token-id', id, '--token-replace', part],
      JSON.stringify(token),
    );
    const opens = await execa('cryptsetup', ['open', '--test-passphrase', '--key-file', '-', part], {
      input: otherKey,
      reject: false,
    });
    if (opens.exitCode === 0) throw new Error('the foreign key opens the volume');
    copyFileSync(disk.path, out);
    await writePartition(part, out);
  } finally {
    rmSync(part, { force: true });
  }
  return { path: out, uuid: disk.uuid };
}
