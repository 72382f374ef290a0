// The boot tier's disk: GPT with one partition that is LUKS2 (made by `cryptsetup reencrypt
// --encrypt` on an ext4 image), holding a root whose static init prints the boot records and powers
// off. Keyslot 0: a typeable passphrase; then `zkluks enroll` (on the simulator) adds the Zymkey
// keyslot and its zkluks-zymkey token, exactly as an admin would.
import { execa } from 'execa';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, zkluks } from '../helpers/cli.ts';

export const PASSPHRASE = 'zk recovery 2024';

export interface BootDisk {
  path: string;
  uuid: string;
}

async function run(file: string, args: string[], input?: string | Buffer): Promise<void> {
  await execa(file, args, { input });
}

export async function makeBootDisk(dir: string, simState: string): Promise<BootDisk> {
  const rootfs = join(dir, 'rootfs');
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
  const part = join(dir, 'part.img');
  const keyDir = join('/dev/shm', `zkluks-bootkey-${process.pid}`);
  mkdirSync(keyDir, { recursive: true, mode: 0o700 });
  try {
    await run('truncate', ['-s', '48M', part]);
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
  const disk = join(dir, 'disk.img');
  await run('truncate', ['-s', '50M', disk]);
  await run('sfdisk', ['-q', disk], 'label: gpt\nstart=2048, size=98304, type=L\n');
  await run('dd', [`if=${part}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
  rmSync(part);
  return { path: disk, uuid };
}
