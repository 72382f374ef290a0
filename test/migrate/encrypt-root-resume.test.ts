// Volume tier for the encrypting boot's resume: the rendered encrypt-root boot script runs under
// busybox sh (its applets first on PATH after the tools the initramfs copies) against a plain ext4
// image file armed by `zkluks encrypt-root` on the simulator. `cryptsetup reencrypt --encrypt` is
// killed with SIGKILL at a chosen write to the volume (strace's fault injection, so the point is
// the same on every run), as a power cut stops it; the script then runs again, as the next boot
// does, and must finish the encryption with every file intact and both keyslots and tokens made.
import { execa } from 'execa';
import { createDecipheriv, createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simInit, simZkifc } from '../../src/device/sim-control.ts';
import { installBusyboxApplets } from '../helpers/busybox.ts';
import { zkluks } from '../helpers/cli.ts';
import { armEncryptRoot, plainRootImage, stagePiTree } from './encrypt-root-fixture.ts';

const W = mkdtempSync(join(tmpdir(), 'zkluks-encrypt-resume-'));
const sim = join(W, 'sim');
const stage = join(W, 'stage');
const recoveryKey = join(W, 'recovery.key');
const tools = join(W, 'tools');
const bb = join(W, 'busybox');
const sbin = join(W, 'sbin');
let busybox: string;
let pristine: string;
let sums: string;
let uuid: string;

beforeAll(async () => {
  simInit(sim);
  // The filesystem already has the size the boot would shrink it to (resize2fs would truncate a
  // file); the boot's own shrink is the boot tier's subject.
  const img = await plainRootImage(join(W, 'plain'), { sizeMiB: 64, fsMiB: 32, dataMiB: 6 });
  pristine = img.path;
  sums = img.sums;
  stagePiTree(stage);
  uuid = await armEncryptRoot({ root: stage, device: pristine, recoveryKeyFile: recoveryKey, simState: sim });
  simZkifc(sim, 'stopped');
  expect((await zkluks(['sim', 'install-tools', tools])).exitCode).toBe(0);
  busybox = await installBusyboxApplets(bb);
  // What the initramfs has from outside busybox: cryptsetup, e2fsprogs, util-linux's blkid.
  mkdirSync(sbin);
  for (const t of ['blkid', 'e2fsck', 'dumpe2fs', 'resize2fs']) {
    const where = (await execa('sh', ['-c', `command -v ${t}`])).stdout.trim();
    await execa('ln', ['-s', where, join(sbin, t)]);
  }
  // cryptsetup, except that the encryption is killed at the ZKLUKS_TEST_KILL_AT-th write to the volume.
  writeFileSync(
    join(sbin, 'cryptsetup'),
    [
      '#!/bin/sh',
      'case " $* " in',
      '*" --encrypt "*)',
      '  [ -z "$ZKLUKS_TEST_KILL_AT" ] || exec /usr/bin/strace -f -o /dev/null -P "$ZKLUKS_ENC_DEV" -e trace=write \\',
      '    -e inject=write:signal=SIGKILL:when="$ZKLUKS_TEST_KILL_AT" /usr/sbin/cryptsetup "$@" ;;',
      'esac',
      'exec /usr/sbin/cryptsetup "$@"',
      '',
    ].join('\n'),
  );
  chmodSync(join(sbin, 'cryptsetup'), 0o755);
}, 120_000);
afterAll(() => rmSync(W, { recursive: true, force: true }));

interface Run {
  record: Record<string, string>;
  output: string;
}

/** One boot's run of the encrypt-root script against `dev`. */
async function boot(dir: string, dev: string, killAt?: number): Promise<Run> {
  const sys = join(dir, 'sys');
  mkdirSync(join(sys, 'root.img'), { recursive: true });
  writeFileSync(join(sys, 'root.img', 'size'), `${statSync(dev).size / 512}\n`);
  writeFileSync(join(dir, 'cmdline'), 'console=ttyS0 root=/dev/mapper/cryptroot rootwait\n');
  writeFileSync(join(dir, 'crypttab'), `cryptroot UUID=${uuid} none luks,initramfs\n`);
  const enc = join(stage, 'etc/zkluks/encrypt-root');
  const r = await execa(
    busybox,
    ['sh', join(stage, 'etc/initramfs-tools/scripts/local-top/zkluks-encrypt-root')],
    {
      env: {
        PATH: `${sbin}:${bb}`,
        ZKLUKS_SIM_STATE: sim,
        ZKLUKS_ENC_CONF: join(enc, 'plan.conf'),
        ZKLUKS_ENC_SEALED: join(enc, 'keys.sealed'),
        ZKLUKS_ENC_ZTOKEN: join(enc, 'zymkey-token.json'),
        ZKLUKS_ENC_RTOKEN: join(enc, 'recovery-token.json'),
        ZKLUKS_ENC_RECORD: join(dir, 'encrypt-root.record'),
        ZKLUKS_ENC_ZKENV: join(stage, 'var/lib/zymbit/zkenv.conf'),
        ZKLUKS_ENC_PARAM_CONF: join(dir, 'param.conf'),
        ZKLUKS_ENC_TABFILE: join(dir, 'crypttab'),
        ZKLUKS_ENC_CMDLINE: join(dir, 'cmdline'),
        ZKLUKS_ENC_WORK: join(dir, 'work'),
        ZKLUKS_ENC_SYSBLOCK: sys,
        ZKLUKS_ENC_DEV: dev,
        ZKLUKS_ENC_UNLOCK: join(tools, 'zkunlockifs'),
        ...(killAt === undefined ? {} : { ZKLUKS_TEST_KILL_AT: String(killAt) }),
      },
      extendEnv: false,
      all: true,
      reject: false,
    },
  );
  expect(r.exitCode, r.all).toBe(0);
  const text = readFileSync(join(dir, 'encrypt-root.record'), 'utf8');
  const record = Object.fromEntries(
    text
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  return { record, output: r.all ?? '' };
}

type Header = {
  segments: Record<string, { type: string; size: string; flags?: string[] }>;
  config: { requirements?: { mandatory?: string[] } };
};

/** Where a killed encryption left the volume, read from its header. */
async function stateOf(dev: string): Promise<'plain' | 'resumable' | 'all-encrypted' | 'finished'> {
  const type = (await execa('blkid', ['-p', '-s', 'TYPE', '-o', 'value', dev], { reject: false })).stdout;
  if (type.trim() === 'ext4') return 'plain';
  const h = JSON.parse(
    (await execa('cryptsetup', ['luksDump', '--dump-json-metadata', dev])).stdout,
  ) as Header;
  if (!h.config.requirements?.mandatory?.includes('online-reencrypt-v2')) return 'finished';
  const live = Object.values(h.segments).filter((s) => !(s.flags ?? []).some((f) => f.startsWith('backup-')));
  return live.length === 1 && live[0]?.type === 'crypt' && live[0].size === 'dynamic' && !live[0].flags
    ? 'all-encrypted'
    : 'resumable';
}

/**
 * The plain filesystem inside a finished volume, decrypted on the host (no device-mapper here):
 * aes-xts-plain64 with the volume key the recovery key opens.
 */
async function decrypt(dev: string, out: string): Promise<void> {
  const h = JSON.parse((await execa('cryptsetup', ['luksDump', '--dump-json-metadata', dev])).stdout) as {
    segments: Record<string, { offset: string; encryption: string; sector_size: number; iv_tweak: string }>;
  };
  const segs = Object.values(h.segments);
  expect(segs).toHaveLength(1);
  const seg = segs[0]!;
  expect(seg.encryption).toBe('aes-xts-plain64');
  const vkFile = join(W, 'vk.bin');
  await execa('cryptsetup', [
    'luksDump',
    '--batch-mode',
    '--dump-volume-key',
    '--volume-key-file',
    vkFile,
    '--key-file',
    recoveryKey,
    dev,
  ]);
  const vk = readFileSync(vkFile);
  rmSync(vkFile);
  // The filesystem's 32 MiB are all that hold data.
  const data = readFileSync(dev).subarray(Number(seg.offset), Number(seg.offset) + 32 * 1024 * 1024);
  const plain = Buffer.alloc(data.length);
  const ss = seg.sector_size;
  for (let s = 0; s * ss < data.length; s++) {
    const iv = Buffer.alloc(16);
    iv.writeBigUInt64LE(BigInt(seg.iv_tweak) + BigInt((s * ss) / 512));
    const d = createDecipheriv('aes-256-xts', vk, iv).setAutoPadding(false);
    Buffer.concat([d.update(data.subarray(s * ss, (s + 1) * ss)), d.final()]).copy(plain, s * ss);
  }
  writeFileSync(out, plain);
}

/** Every checksummed file of the decrypted filesystem, read with debugfs (no mount needed). */
async function checkFiles(fs: string): Promise<void> {
  const fsck = await execa('e2fsck', ['-f', '-n', fs], { reject: false });
  expect(fsck.exitCode, fsck.stdout).toBe(0);
  const out = join(fs, '..', 'files');
  mkdirSync(out);
  await execa('debugfs', ['-R', `rdump /data ${out}`, fs]);
  for (const line of sums.trim().split('\n')) {
    const [sum, file] = line.split(/\s+/);
    const got = createHash('sha256')
      .update(readFileSync(join(out, file ?? '')))
      .digest('hex');
    expect(got, file).toBe(sum);
  }
}

async function expectFinished(dev: string, dir: string): Promise<void> {
  expect(await stateOf(dev)).toBe('finished');
  expect((await execa('cryptsetup', ['luksUUID', dev])).stdout.trim()).toBe(uuid);
  const verify = await zkluks(['verify', dev, '--backend', 'sim', '--sim-state', sim]);
  expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
  const fs = join(dir, 'plain.img');
  await decrypt(dev, fs);
  await checkFiles(fs);
}

describe('the encrypting boot after a power cut (cryptsetup killed at a write to the volume)', () => {
  // Writes of cryptsetup 2.6.1 to a 64 MiB volume: 1 moves the first 16 MiB to the end, 3-8 place the
  // header, 9 encrypts the first step, 22 the last (the moved data), 29-44 wipe the moved copy,
  // 45-51 clear the header (primary, then secondary). Write 2 leaves the plain filesystem, so its
  // next boot is the whole encryption from the start.
  it.each([
    { at: 2, left: 'plain', resumed: '0' },
    { at: 9, left: 'resumable', resumed: '1' },
    { at: 22, left: 'resumable', resumed: '1' },
    { at: 30, left: 'all-encrypted', resumed: '1' },
    { at: 49, left: 'finished', resumed: '0' },
  ] as const)(
    'killed at write $at ($left), the next boot completes with every file intact',
    async ({ at, left, resumed }) => {
      const dir = mkdtempSync(join(W, `kill-${at}-`));
      const dev = join(dir, 'root.img');
      copyFileSync(pristine, dev);
      const killed = await boot(dir, dev, at);
      expect(killed.output).toMatch(/zkluks: encrypt-root: encrypting .* in place/);
      expect(await stateOf(dev), killed.output).toBe(left);
      if (left !== 'plain') expect(killed.record, killed.output).toMatchObject({ state: 'failed' });

      const next = await boot(dir, dev);
      if (left === 'all-encrypted') {
        expect(next.output).toContain(
          'is encrypted; clearing the interrupted encryption from its LUKS2 header',
        );
      }
      if (resumed === '1') expect(next.output).toContain('resuming the interrupted encryption');
      expect(next.record, next.output).toMatchObject({ state: 'encrypted', reason: 'ok', resumed });
      await expectFinished(dev, dir);
    },
    120_000,
  );
});
