// Everything encrypt-root's preflight and plan need to know, read once: fstab's root line, the
// firmware's cmdline.txt and config.txt, the root device (its kind, size, what blkid finds, the ext4
// state and minimum size), the packages, zkunlockifs, whether the Zymkey seals and unseals, and the
// device's measured read and write rate. Reads only (the rate test writes and removes a scratch file).
import { randomBytes } from 'node:crypto';
import { existsSync, realpathSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { ZymkeyPort } from '../../device/port.ts';
import { gatherPackageInstalled } from '../../doctor/gather-system.ts';
import { UsageError, ZkluksError } from '../../errors.ts';
import type { Runner } from '../../exec.ts';
import { findZkunlockifs, gatherInstallFacts, type InstallFacts } from '../../initramfs/install-facts.ts';
import { under } from '../../root-path.ts';
import { ENCRYPT_PATHS, MIB } from './layout.ts';
import { cmdlineRoot, findFstabRoot, type FstabRoot } from './root-files.ts';
import { readText } from '../../read-text.ts';

export const REQUIRED_PACKAGES = ['cryptsetup', 'cryptsetup-initramfs', 'initramfs-tools'] as const;
export type RequiredPackage = (typeof REQUIRED_PACKAGES)[number];

export interface DeviceFacts {
  path: string;
  /** partition: a block device with a partition entry; file: an image file (staged trees, tests). */
  kind: 'partition' | 'disk' | 'file' | 'other';
  bytes: number;
  /** blkid's TYPE (ext4, crypto_LUKS, …); null when blkid finds nothing. */
  type: string | null;
  /** The partition's GPT/MBR id (blkid PART_ENTRY_UUID), how the boot finds it whatever it holds. */
  partUuid: string | null;
}

export interface Ext4Facts {
  /** dumpe2fs "Filesystem state" (clean, not clean, clean with errors…). */
  state: string;
  blockSize: number;
  blockCount: number;
  /** resize2fs -P: the smallest the filesystem can be made, in blocks; null when unknown. */
  minBlocks: number | null;
}

export interface RateFacts {
  readBytesPerS: number;
  writeBytesPerS: number;
}

export interface EncryptFacts {
  root: string;
  fstab: string | null;
  fstabRoot: FstabRoot | null;
  /** The boot partition holding cmdline.txt ('/boot/firmware' or '/boot'); null when none. */
  bootDir: string | null;
  cmdline: string | null;
  configTxt: string | null;
  device: DeviceFacts | null;
  deviceError: string | null;
  ext4: Ext4Facts | null;
  packages: Record<RequiredPackage, boolean | null>;
  zkunlockifs: string | null;
  /** null: sealed and unsealed a test secret; otherwise why not. */
  zymkeyProblem: string | null;
  rate: RateFacts | null;
  rateError: string | null;
  /** plan.conf of an earlier arming, when present. */
  armed: string | null;
  install: InstallFacts;
}

const BOOT_DIRS = ['/boot/firmware', '/boot'];

async function deviceFacts(runner: Runner, path: string): Promise<DeviceFacts> {
  let stat;
  try {
    stat = statSync(path);
  } catch (error) {
    throw new ZkluksError(
      `Failed to read the root device '${path}': ${(error as NodeJS.ErrnoException).code}`,
      {
        hint: 'name the device that holds the root filesystem with --device',
      },
    );
  }
  let kind: DeviceFacts['kind'] = 'other';
  let bytes = stat.size;
  if (stat.isFile()) kind = 'file';
  else if (stat.isBlockDevice()) {
    const name = basename(realpathSync(path));
    kind = existsSync(`/sys/class/block/${name}/partition`)
      ? 'partition'
      : name.startsWith('dm-')
        ? 'other'
        : 'disk';
    bytes = Number((await runner('blockdev', ['--getsize64', path])).stdout.trim());
  }
  const probe = await runner('blkid', ['-p', '-o', 'export', path], { reject: false });
  const field = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(probe.stdout)?.[1] ?? null;
  return { path, kind, bytes, type: field('TYPE'), partUuid: field('PART_ENTRY_UUID') };
}

async function ext4Facts(runner: Runner, device: string): Promise<Ext4Facts | null> {
  const dump = await runner('dumpe2fs', ['-h', device], { reject: false });
  if (dump.exitCode !== 0) return null;
  const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(dump.stdout)?.[1]?.trim() ?? '';
  const min = await runner('resize2fs', ['-P', device], { reject: false });
  const minBlocks = /minimum size of the filesystem:\s*(\d+)/.exec(min.stdout + min.stderr)?.[1];
  return {
    state: field('Filesystem state'),
    blockSize: Number(field('Block size')),
    blockCount: Number(field('Block count')),
    minBlocks: minBlocks === undefined ? null : Number(minBlocks),
  };
}

/** The device under `/`: on the running system findmnt says; a staged tree must be told (--device). */
async function rootDevice(runner: Runner, root: string, asked: string | undefined): Promise<string> {
  if (asked !== undefined) return asked;
  if (root !== '/') {
    throw new ZkluksError(
      `Failed to find the root device of the tree '${root}': it is not the running system`,
      {
        hint: 'name the device or image that holds its root filesystem with --device',
      },
    );
  }
  const r = await runner('findmnt', ['-n', '-o', 'SOURCE', '--target', '/'], { reject: false });
  const source = r.stdout.trim();
  if (r.exitCode !== 0 || !source.startsWith('/dev/')) {
    throw new ZkluksError(`Failed to find the root device: findmnt says '${source || r.stderr.trim()}'`, {
      hint: 'name the device with --device',
    });
  }
  return source;
}

function ddRate(stderr: string): number | null {
  const m = /(\d+) bytes .* copied, ([\d.]+) s/.exec(stderr);
  if (!m) return null;
  const seconds = Number(m[2]);
  return seconds > 0 ? Number(m[1]) / seconds : null;
}

/**
 * Read 32 MiB of the device and write 32 MiB to a scratch file on the root filesystem (same
 * device), both past the page cache, and time them with dd.
 */
export async function measureRate(runner: Runner, root: string, device: string): Promise<RateFacts> {
  const direct = (flag: string) => [flag === 'if' ? 'iflag=direct' : 'oflag=direct'];
  let read = await runner('dd', [`if=${device}`, 'of=/dev/null', 'bs=4M', 'count=8', ...direct('if')], {
    reject: false,
  });
  if (read.exitCode !== 0) read = await runner('dd', [`if=${device}`, 'of=/dev/null', 'bs=4M', 'count=8']);
  const readBytesPerS = ddRate(read.stderr);
  if (readBytesPerS === null) throw new Error(`dd printed no rate: ${read.stderr.trim()}`);
  const dir = ['/var/tmp', '/tmp'].map((d) => under(root, d)).find((d) => existsSync(d));
  if (dir === undefined) return { readBytesPerS, writeBytesPerS: readBytesPerS };
  const scratch = join(dir, `zkluks-rate-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    let write = await runner(
      'dd',
      ['if=/dev/zero', `of=${scratch}`, 'bs=4M', 'count=8', 'conv=fsync', ...direct('of')],
      { reject: false },
    );
    if (write.exitCode !== 0) {
      write = await runner('dd', ['if=/dev/zero', `of=${scratch}`, 'bs=4M', 'count=8', 'conv=fsync']);
    }
    return { readBytesPerS, writeBytesPerS: ddRate(write.stderr) ?? readBytesPerS };
  } finally {
    rmSync(scratch, { force: true });
  }
}

/** Seal a random test secret and unseal it again. */
async function zymkeyRoundTrip(port: ZymkeyPort): Promise<string | null> {
  const secret = randomBytes(32);
  try {
    const back = await port.unseal(await port.seal(secret));
    return back.equals(secret) ? null : 'the Zymkey unsealed something other than what it sealed';
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    secret.fill(0);
  }
}

export interface GatherOptions {
  runner: Runner;
  root: string;
  /** The device holding the root filesystem (default: what is mounted on / of the running system). */
  device?: string;
  zymkey: () => ZymkeyPort;
  /** Skip the read/write rate test (tests of the planner). */
  measure?: boolean;
}

export async function gatherEncryptFacts(opts: GatherOptions): Promise<EncryptFacts> {
  const { runner, root } = opts;
  const fstab = readText(under(root, '/etc/fstab'));
  const bootDir = BOOT_DIRS.find((d) => existsSync(under(root, `${d}/cmdline.txt`))) ?? null;
  if (opts.device !== undefined && !existsSync(opts.device)) {
    // A path that does not exist is bad input, exit 2 in every command.
    throw new UsageError(`Failed to read the root device '${opts.device}': no such file or device`, {
      hint: opts.device.startsWith('/dev/')
        ? 'lsblk -f (name the partition that holds the root filesystem, e.g. /dev/mmcblk0p2)'
        : `ls -l '${dirname(resolve(opts.device))}' (name the image file that holds the root filesystem)`,
    });
  }
  let device: DeviceFacts | null = null;
  let deviceError: string | null = null;
  try {
    device = await deviceFacts(runner, await rootDevice(runner, root, opts.device));
  } catch (error) {
    if (!(error instanceof ZkluksError)) throw error;
    deviceError = error.message;
  }
  const ext4 = device?.type === 'ext4' ? await ext4Facts(runner, device.path) : null;
  let rate: RateFacts | null = null;
  let rateError: string | null = null;
  if (device !== null && opts.measure !== false) {
    try {
      rate = await measureRate(runner, root, device.path);
    } catch (error) {
      rateError = error instanceof Error ? error.message : String(error);
    }
  }
  const packages = Object.fromEntries(
    REQUIRED_PACKAGES.map((p) => {
      const f = gatherPackageInstalled(root, p);
      return [p, f.ok ? f.value : null];
    }),
  ) as Record<RequiredPackage, boolean | null>;
  return {
    root,
    fstab,
    fstabRoot: fstab === null ? null : findFstabRoot(fstab),
    bootDir,
    cmdline: bootDir === null ? null : readText(under(root, `${bootDir}/cmdline.txt`)),
    configTxt: bootDir === null ? null : readText(under(root, `${bootDir}/config.txt`)),
    device,
    deviceError,
    ext4,
    packages,
    zkunlockifs: findZkunlockifs(root),
    zymkeyProblem: await zymkeyRoundTrip(opts.zymkey()),
    rate,
    rateError,
    armed: readText(under(root, ENCRYPT_PATHS.planConf)),
    install: await gatherInstallFacts({ runner, root, onlyOurs: true }),
  };
}

/** Seconds to encrypt `bytes` in place: every byte is read once and written once. */
export function estimateSeconds(bytes: number, rate: RateFacts | null): number | null {
  if (rate === null || rate.readBytesPerS <= 0 || rate.writeBytesPerS <= 0) return null;
  return Math.ceil(bytes / rate.readBytesPerS + bytes / rate.writeBytesPerS);
}

export const mib = (bytes: number) => Math.floor(bytes / MIB);

export { cmdlineRoot };
