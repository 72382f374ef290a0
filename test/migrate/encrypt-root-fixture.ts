// A staged Raspberry Pi OS tree for encrypt-root: fstab, the firmware's cmdline.txt and config.txt,
// crypttab, dpkg's status with the needed packages, zkunlockifs and Zymbit's state; and a plain ext4
// root image holding checksummed files. Real files, written the way Raspberry Pi OS writes them.
import { execa } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { zkluks } from '../helpers/cli.ts';

export const PART_UUID = '6c586e13-02';
export const FSTAB = [
  'proc            /proc           proc    defaults          0       0',
  'PARTUUID=6c586e13-01  /boot/firmware  vfat    defaults          0       2',
  `PARTUUID=${PART_UUID}  /               ext4    defaults,noatime  0       1`,
  '# a swapfile is not a swap partition, no line here for that',
  '',
].join('\n');
export const CMDLINE = `console=serial0,115200 console=tty1 root=PARTUUID=${PART_UUID} rootfstype=ext4 fsck.repair=yes rootwait quiet\n`;
export const CONFIG_TXT = [
  '# For more options and information see http://rptl.io/configtxt',
  'dtparam=i2c_arm=on',
  '',
  '# Automatically load initramfs files, if found',
  'auto_initramfs=1',
  '',
  '[all]',
  '',
].join('\n');
export const CRYPTTAB = '# <target name>\t<source device>\t\t<key file>\t<options>\n';

const PACKAGES = ['cryptsetup', 'cryptsetup-initramfs', 'initramfs-tools', 'e2fsprogs'];

export function dpkgStatus(packages: readonly string[] = PACKAGES): string {
  return packages
    .map((p) => `Package: ${p}\nStatus: install ok installed\nArchitecture: arm64\nVersion: 1\n`)
    .join('\n');
}

/** Write the Pi files into `dir` (which may already hold a staged initramfs tree). */
export function stagePiTree(dir: string, opts: { cmdline?: string; fstab?: string } = {}): string {
  for (const d of ['etc', 'boot/firmware', 'usr/sbin', 'var/lib/dpkg', 'var/lib/zymbit', 'var/tmp']) {
    mkdirSync(join(dir, d), { recursive: true });
  }
  writeFileSync(join(dir, 'etc/fstab'), opts.fstab ?? FSTAB);
  writeFileSync(join(dir, 'boot/firmware/cmdline.txt'), opts.cmdline ?? CMDLINE);
  writeFileSync(join(dir, 'boot/firmware/config.txt'), CONFIG_TXT);
  writeFileSync(join(dir, 'etc/crypttab'), CRYPTTAB);
  writeFileSync(join(dir, 'var/lib/dpkg/status'), dpkgStatus());
  writeFileSync(join(dir, 'var/lib/zymbit/zkenv.conf'), 'ZK_GPIO_WAKE_PIN=516\n', { flag: 'a' });
  try {
    writeFileSync(join(dir, 'usr/sbin/zkunlockifs'), '#!/bin/sh\nexit 1\n', { flag: 'wx' });
    chmodSync(join(dir, 'usr/sbin/zkunlockifs'), 0o755);
  } catch {
    // the staged boot tree brings its own forwarder
  }
  return dir;
}

export interface RootImage {
  path: string;
  /** sha256 of every file, as `sha256sum` prints it, relative to the root. */
  sums: string;
}

/**
 * A plain ext4 filesystem of `fsMiB` in an image of `sizeMiB`, holding `dataMiB` of random files
 * (several, to spread them over the filesystem), plus `extra` files given by path.
 */
export async function plainRootImage(
  dir: string,
  opts: { sizeMiB: number; fsMiB: number; dataMiB: number; extra?: Record<string, string | Buffer> },
): Promise<RootImage> {
  const tree = join(dir, 'rootfs');
  mkdirSync(join(tree, 'data'), { recursive: true });
  const lines: string[] = [];
  const files = 8;
  for (let i = 0; i < files; i++) {
    const bytes = randomBytes(Math.floor((opts.dataMiB * 1024 * 1024) / files));
    writeFileSync(join(tree, 'data', `f${i}.bin`), bytes);
    lines.push(`${createHash('sha256').update(bytes).digest('hex')}  data/f${i}.bin`);
  }
  for (const [p, content] of Object.entries(opts.extra ?? {})) {
    mkdirSync(join(tree, p, '..'), { recursive: true });
    // Programs and the libraries they load keep the modes they need in the image.
    writeFileSync(join(tree, p), content, { mode: /^(s?bin|lib)/.test(p) ? 0o755 : 0o644 });
  }
  const sums = `${lines.join('\n')}\n`;
  writeFileSync(join(tree, 'data', 'SHA256SUMS'), sums);
  const path = join(dir, 'root.img');
  await execa('truncate', ['-s', `${opts.sizeMiB}M`, path]);
  await execa('mkfs.ext4', ['-q', '-F', '-L', 'rootfs', '-d', tree, path, `${opts.fsMiB}M`]);
  return { path, sums };
}

/**
 * `zkluks encrypt-root --yes` on the staged tree `root` for the plain root `device`, with the
 * simulator in `simState` as the Zymkey and the recovery key written to `recoveryKeyFile`;
 * returns the LUKS UUID the next boot will give the encrypted root.
 */
export async function armEncryptRoot(opts: {
  root: string;
  device: string;
  recoveryKeyFile: string;
  simState: string;
}): Promise<string> {
  const armed = await zkluks([
    'encrypt-root',
    '--root',
    opts.root,
    '--device',
    opts.device,
    '--no-update',
    '--yes',
    '--recovery-key-file',
    opts.recoveryKeyFile,
    '--backend',
    'sim',
    '--sim-state',
    opts.simState,
    '--json',
  ]);
  if (armed.exitCode !== 0) throw new Error(`zkluks encrypt-root exited ${armed.exitCode}: ${armed.stderr}`);
  return (JSON.parse(armed.stdout) as { uuid: string }).uuid;
}
