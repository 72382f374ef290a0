// Boot tier for encrypt-root: a plain ext4 root (several MiB of checksummed files) on a GPT disk,
// a staged Raspberry Pi OS tree armed by `zkluks encrypt-root` (simulator on the host as the
// Zymkey), one initramfs built from it by mkinitramfs, and the disk booted in QEMU with its writes
// kept: (a) the armed boot encrypts, the root is reached with every checksum matching, the next boot
// unlocks through the Zymkey and the recovery key opens the volume; (b) the VM is killed at the first
// progress line past the first step and the next boot resumes and completes; (c) a filesystem with no room to shrink
// boots the plain root and the record says why.
import { execa } from 'execa';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simInit } from '../../src/device/sim-control.ts';
import { repoRoot, zkluks } from '../helpers/cli.ts';
import { armEncryptRoot, plainRootImage, stagePiTree } from '../migrate/encrypt-root-fixture.ts';
import { buildInitramfs, stageTree } from './initramfs-build.ts';
import { testKernel, type TestKernel } from './kernel.ts';
import { bootVm, withSimulator, type BootResult } from './qemu.ts';

const W = mkdtempSync(join(tmpdir(), 'zkluks-boot-encrypt-'));
const simState = join(W, 'sim');
const recoveryKeyFile = join(W, 'recovery.key');
const PART_UUID = '2f0c3a6e-57c4-4b5e-9d0e-6a1f2b3c4d5e';
const PART_MIB = 64;
let kernel: TestKernel;
let initrd: string;
let uuid: string;
let sums: string;

/** The root filesystem's programs: busybox and the libraries it loads, and the test init. */
async function rootPrograms(): Promise<Record<string, Buffer>> {
  const files: Record<string, Buffer> = {
    'bin/busybox': readFileSync('/bin/busybox'),
    'sbin/init': readFileSync(join(repoRoot, 'test/boot/guest/encrypt-root-init.sh')),
  };
  const ldd = (await execa('ldd', ['/bin/busybox'])).stdout;
  for (const m of ldd.matchAll(/(\/\S+\.so[.\d]*)/g)) {
    const lib = m[1] ?? '';
    files[lib.slice(1)] = readFileSync(lib);
  }
  return files;
}

/** A GPT disk whose one partition (PARTUUID fixed) holds a copy of the image `part`. */
async function makeDisk(part: string, out: string): Promise<string> {
  await execa('truncate', ['-s', `${PART_MIB + 2}M`, out]);
  await execa('sfdisk', ['-q', out], {
    input: `label: gpt\nstart=2048, size=${PART_MIB * 2048}, type=L, uuid=${PART_UUID}\n`,
  });
  await execa('dd', [`if=${part}`, `of=${out}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
  return out;
}

/** The partition back out of a disk image, for cryptsetup on the host. */
async function partitionOf(disk: string, out: string): Promise<string> {
  await execa('dd', [`if=${disk}`, `of=${out}`, 'bs=1M', 'skip=1', `count=${PART_MIB}`, 'status=none']);
  return out;
}

async function rootImage(dir: string, dataMiB: number): Promise<{ path: string; sums: string }> {
  mkdirSync(dir, { recursive: true });
  const files = await rootPrograms();
  const img = await plainRootImage(dir, {
    sizeMiB: PART_MIB,
    fsMiB: PART_MIB,
    dataMiB,
    extra: { ...files, 'proc/.keep': '', 'sys/.keep': '', 'dev/.keep': '', 'run/.keep': '', 'tmp/.keep': '' },
  });
  return img;
}

let plainPart: string;
let fullPart: string;

beforeAll(async () => {
  kernel = await testKernel();
  simInit(simState);
  const small = await rootImage(join(W, 'small'), 6);
  plainPart = small.path;
  sums = small.sums;
  fullPart = (await rootImage(join(W, 'full'), 40)).path;
  for (const p of [plainPart, fullPart]) chmodSync(p, 0o644);

  const stage = stagePiTree(stageTree(join(W, 'root')), {
    cmdline: `console=ttyS0 root=PARTUUID=${PART_UUID} rootfstype=ext4 rootwait panic=-1\n`,
    fstab: `PARTUUID=${PART_UUID}  /  ext4  defaults,noatime  0  1\n`,
  });
  // The keyscript's own time bound is the boot tier's subject elsewhere (boot.test.ts); here the
  // emulated boot shares two cores with other jobs, so the admin setting gives the unseal more time.
  mkdirSync(join(stage, 'etc/zkluks'), { recursive: true });
  writeFileSync(join(stage, 'etc/zkluks/boot.conf'), 'ZKLUKS_TIMEOUT=60\nZKLUKS_BUS_WAIT=5\n');
  uuid = await armEncryptRoot({ root: stage, device: plainPart, recoveryKeyFile, simState });
  expect(readFileSync(join(stage, 'boot/firmware/cmdline.txt'), 'utf8')).toContain(
    'root=/dev/mapper/cryptroot ',
  );
  initrd = join(W, 'initrd.img');
  await buildInitramfs({ kernel, stage, out: initrd });
}, 600_000);

afterAll(() => rmSync(W, { recursive: true, force: true }));

async function boot(
  disk: string,
  killWhen?: (console: string) => boolean,
  diskBytesPerSecond?: number,
): Promise<BootResult> {
  const { value } = await withSimulator(simState, W, (socket) =>
    bootVm({
      kernel,
      initrd,
      disk,
      simSocket: socket,
      persist: true,
      timeoutMs: 900_000,
      ...(killWhen ? { killWhen } : {}),
      ...(diskBytesPerSecond ? { diskBytesPerSecond } : {}),
    }),
  );
  return value;
}

function record(result: BootResult, file: string): Record<string, string> {
  const re = new RegExp(`^BOOTREC ${file.replace('.', '\\.')}: ([a-z_]+)=(.*?)\\r?$`, 'gm');
  return Object.fromEntries([...result.console.matchAll(re)].map((m) => [m[1], m[2]]));
}

/** The first progress percentage above 0 and below 100 on the console. */
function midway(console: string): string | undefined {
  for (const m of console.matchAll(new RegExp(PROGRESS.source, 'g'))) {
    const p = Number(m[1]);
    if (p > 0 && p < 100) return m[1];
  }
  return undefined;
}

const fileCount = () => sums.trim().split('\n').length;
const PROGRESS =
  /zkluks: encrypt-root: encrypting \/dev\/vda1: (\d+\.\d)% of \d+ MiB, [\d.]+ MiB\/s, \d\d:\d\d left/;

describe('encrypt-root in the initramfs', () => {
  it('(a) encrypts the armed plain root, boots into it with every checksum matching; the next boot unlocks with the Zymkey; the recovery key opens it', async () => {
    const disk = await makeDisk(plainPart, join(W, 'a.img'));
    const first = await boot(disk);
    console.log(`boot (encrypting): ${Math.round(first.durationMs)} ms`);
    const c = first.console;
    expect(c, c).toContain('MARKER-ROOT-REACHED');
    expect(c).toContain('zkluks: encrypt-root: checking the filesystem on /dev/vda1');
    expect(c).toMatch(/shrinking the filesystem on \/dev\/vda1 to 32 MiB/);
    expect(c).toMatch(PROGRESS);
    expect(c).toContain(`zkluks: encrypt-root: /dev/vda1 is encrypted (LUKS2 UUID ${uuid})`);
    expect(c).toContain('cryptroot: set up successfully');
    expect(c).toMatch(/ROOT-MOUNT \/dev\/mapper\/cryptroot \/ ext4/);
    expect(c).toContain(`CHECKSUMS ok=${fileCount()} failed=0`);
    expect(record(first, 'encrypt-root.record')).toMatchObject({
      state: 'encrypted',
      reason: 'ok',
      uuid,
      resumed: '0',
    });
    expect(record(first, 'cryptroot.record')).toMatchObject({ method: 'zymkey', reason: 'ok' });

    const second = await boot(disk);
    console.log(`boot (after): ${Math.round(second.durationMs)} ms`);
    expect(second.console, second.console).toContain(`CHECKSUMS ok=${fileCount()} failed=0`);
    expect(second.console).not.toMatch(PROGRESS);
    expect(record(second, 'encrypt-root.record')).toMatchObject({ state: 'encrypted' });
    expect(record(second, 'cryptroot.record')).toMatchObject({ method: 'zymkey', reason: 'ok', tried: '0' });

    const part = await partitionOf(disk, join(W, 'a.part'));
    const opens = await execa(
      'cryptsetup',
      ['open', '--test-passphrase', '--key-slot', '0', '--key-file', recoveryKeyFile, part],
      { reject: false },
    );
    expect(opens.exitCode, opens.stderr).toBe(0);
    expect((await execa('cryptsetup', ['luksUUID', part])).stdout.trim()).toBe(uuid);
    const verify = await zkluks(['verify', part, '--backend', 'sim', '--sim-state', simState]);
    expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
  }, 1_800_000);

  it('(b) resumes after the VM is killed mid-encryption, completes, and every checksum matches', async () => {
    const disk = await makeDisk(plainPart, join(W, 'b.img'));
    // Killed at the first progress line past the first step and short of the end: LUKS2 has
    // committed a step to its header and the encryption is not complete. The disk is held to
    // 1 MiB/s for this boot, so the encryption spans several progress reports (one every 2 s)
    // however fast the host is; on an idle host it would otherwise end within the first one.
    const killed = await boot(disk, (c) => midway(c) !== undefined, 1024 * 1024);
    const at = midway(killed.console);
    console.log(`boot (killed at ${at}%): ${Math.round(killed.durationMs)} ms`);
    expect(killed.killed, killed.console).toBe(true);
    expect(killed.console).not.toContain('MARKER-ROOT-REACHED');
    const part = await partitionOf(disk, join(W, 'b.part'));
    const dump = await execa('cryptsetup', ['luksDump', '--dump-json-metadata', part]);
    expect(dump.stdout, 'the header records an unfinished encryption').toMatch(/online-reencrypt/);

    const resumed = await boot(disk);
    console.log(`boot (resumed): ${Math.round(resumed.durationMs)} ms`);
    const c = resumed.console;
    expect(c, c).toContain('zkluks: encrypt-root: resuming the interrupted encryption of /dev/vda1');
    expect(c).toContain(`CHECKSUMS ok=${fileCount()} failed=0`);
    expect(record(resumed, 'encrypt-root.record')).toMatchObject({ state: 'encrypted', resumed: '1' });
    expect(record(resumed, 'cryptroot.record')).toMatchObject({ method: 'zymkey' });
  }, 1_800_000);

  it('(c) boots the plain root when the filesystem has no room to shrink, and the record says why', async () => {
    const disk = await makeDisk(fullPart, join(W, 'c.img'));
    const result = await boot(disk);
    console.log(`boot (no room): ${Math.round(result.durationMs)} ms`);
    const c = result.console;
    expect(c, c).toContain('MARKER-ROOT-REACHED');
    expect(c).toContain('zkluks: encrypt-root: not encrypting: the filesystem needs');
    expect(c).toMatch(/ROOT-MOUNT \/dev\/vda1 \/ ext4/);
    expect(c).not.toMatch(PROGRESS);
    expect(record(result, 'encrypt-root.record')).toMatchObject({ state: 'not-started', reason: 'no-room' });
    const part = await partitionOf(disk, join(W, 'c.part'));
    expect((await execa('blkid', ['-p', '-s', 'TYPE', '-o', 'value', part])).stdout.trim()).toBe('ext4');
    copyFileSync(part, join(W, 'c.check'));
    const fsck = await execa('e2fsck', ['-f', '-n', join(W, 'c.check')], { reject: false });
    expect(fsck.exitCode, fsck.stdout).toBe(0);
  });
});
