// `initramfs install` and `remove` as one transaction over /etc/crypttab and the boot files, on a
// staged tree: a symlinked crypttab stays a symlink, no crypttab before means none after remove, a
// failing update-initramfs puts everything back, and no temp file of ours is ever a hook.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { atomicTempPath, writeFileAtomic } from '../../src/atomic-write.ts';
import { ZkluksError } from '../../src/errors.ts';
import type { RunResult, Runner } from '../../src/exec.ts';
import { applyPlan } from '../../src/initramfs/apply.ts';
import { BOOT_PATHS } from '../../src/initramfs/boot-files.ts';
import { ZKLUKS_KEYSCRIPT } from '../../src/initramfs/crypttab.ts';
import { gatherInstallFacts } from '../../src/initramfs/install-facts.ts';
import { planInstall, planRemove } from '../../src/initramfs/plan-install.ts';

const UUID = '0b6d4a5e-3c1f-4a8e-9d2b-7f1e2c3d4e5f';
let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'zkluks-crypttab-tx-'));
  for (const d of ['etc', 'usr/sbin', 'var/lib/zymbit', 'boot'])
    mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'usr/sbin/zkunlockifs'), '#!/bin/sh\nexit 1\n');
  chmodSync(join(root, 'usr/sbin/zkunlockifs'), 0o755);
  writeFileSync(join(root, 'var/lib/zymbit/zkenv.conf'), 'ZK_GPIO_WAKE_PIN=516\n');
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const noCalls: Runner = (file) => Promise.reject(new Error(`unexpected call: ${file}`));

function result(exitCode: number, stderr = ''): RunResult {
  return {
    command: 'update-initramfs',
    exitCode,
    stdout: '',
    stdoutBytes: Buffer.alloc(0),
    stderr,
    timedOut: false,
  };
}

async function install(runner: Runner = noCalls, noUpdate = true, signal?: AbortSignal) {
  const facts = await gatherInstallFacts({ runner: noCalls, root, volume: `UUID=${UUID}` });
  return applyPlan(planInstall(facts, { noUpdate }), { runner, root, ...(signal ? { signal } : {}) });
}

async function remove(runner: Runner = noCalls, noUpdate = true) {
  const facts = await gatherInstallFacts({ runner: noCalls, root, onlyOurs: true });
  return applyPlan(planRemove(facts, { noUpdate }), { runner, root });
}

const read = (p: string) => readFileSync(join(root, p), 'utf8');
const OURS = `cryptroot UUID=${UUID} none luks,initramfs,keyscript=${ZKLUKS_KEYSCRIPT}\n`;

describe('crypttab as a transaction', () => {
  it('writes through a symlinked /etc/crypttab (absolute target under --root) and keeps the link', async () => {
    mkdirSync(join(root, 'etc/secure'));
    writeFileSync(join(root, 'etc/secure/crypttab'), '# mine\r\n');
    symlinkSync('/etc/secure/crypttab', join(root, 'etc/crypttab'));
    await install();
    expect(lstatSync(join(root, 'etc/crypttab')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(root, 'etc/crypttab'))).toBe('/etc/secure/crypttab');
    expect(read('etc/secure/crypttab')).toBe(`# mine\r\n${OURS}`);
    await remove();
    expect(lstatSync(join(root, 'etc/crypttab')).isSymbolicLink()).toBe(true);
    expect(read('etc/secure/crypttab')).toBe('# mine\r\n');
  });

  it('keeps a relative symlink chain a chain', async () => {
    mkdirSync(join(root, 'etc/cryptsetup'));
    writeFileSync(join(root, 'etc/cryptsetup/tab'), '# mine');
    symlinkSync('tab', join(root, 'etc/cryptsetup/link'));
    symlinkSync('cryptsetup/link', join(root, 'etc/crypttab'));
    await install();
    expect(lstatSync(join(root, 'etc/cryptsetup/link')).isSymbolicLink()).toBe(true);
    expect(read('etc/cryptsetup/tab')).toBe(`# mine\n${OURS}`);
    await remove();
    expect(read('etc/cryptsetup/tab')).toBe('# mine');
  });

  it('leaves no /etc/crypttab after remove when there was none before install', async () => {
    await install();
    expect(read('etc/crypttab')).toBe(OURS);
    await remove();
    expect(existsSync(join(root, 'etc/crypttab'))).toBe(false);
    expect(readdirSync(join(root, 'etc/zkluks'))).toEqual([]);
  });

  it('keeps an empty /etc/crypttab that existed before install', async () => {
    writeFileSync(join(root, 'etc/crypttab'), '');
    await install();
    await remove();
    expect(read('etc/crypttab')).toBe('');
  });

  it('puts crypttab, the boot files and the images back when update-initramfs fails', async () => {
    const before = '# mine\r\nother /dev/sdb none luks';
    writeFileSync(join(root, 'etc/crypttab'), before);
    writeFileSync(join(root, 'boot/initrd.img-6.1.0-rpi8'), 'old image a');
    writeFileSync(join(root, 'boot/initrd.img-6.6.0-rpi8'), 'old image b');
    const failing: Runner = async (file, args) => {
      expect([file, ...args].join(' ')).toContain(`chroot ${root} update-initramfs -c -k all`);
      // One image is rebuilt (written aside and renamed, as update-initramfs does), then a hook fails.
      writeFileSync(join(root, 'boot/initrd.img-6.6.0-rpi8.new'), 'new image b');
      renameSync(join(root, 'boot/initrd.img-6.6.0-rpi8.new'), join(root, 'boot/initrd.img-6.6.0-rpi8'));
      return result(1, 'E: /etc/initramfs-tools/hooks/zkluks failed with return 1.');
    };
    const error = await install(failing, false).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ZkluksError);
    expect((error as Error).message).toMatch(/exited 1: E: \/etc\/initramfs-tools\/hooks\/zkluks failed/);
    expect((error as Error).message).toMatch(/back as they were/);
    expect(read('etc/crypttab')).toBe(before);
    for (const f of [BOOT_PATHS.keyscript, BOOT_PATHS.hook, BOOT_PATHS.kernelPostinst, BOOT_PATHS.bootConf]) {
      expect(existsSync(join(root, f)), f).toBe(false);
    }
    expect(existsSync(join(root, BOOT_PATHS.crypttabBackup))).toBe(false);
    expect(read('boot/initrd.img-6.1.0-rpi8')).toBe('old image a');
    expect(read('boot/initrd.img-6.6.0-rpi8')).toBe('old image b');
    expect(readdirSync(join(root, 'boot')).sort()).toEqual([
      'initrd.img-6.1.0-rpi8',
      'initrd.img-6.6.0-rpi8',
    ]);
  });

  it('keeps zkluks installed when update-initramfs fails during remove', async () => {
    writeFileSync(join(root, 'etc/crypttab'), '# mine\n');
    await install();
    const installed = read('etc/crypttab');
    const hook = read(BOOT_PATHS.hook);
    const error = await remove(async () => result(2, 'E: no space left'), false).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/back as they were/);
    expect(read('etc/crypttab')).toBe(installed);
    expect(read(BOOT_PATHS.hook)).toBe(hook);
    expect(read(BOOT_PATHS.crypttabBackup)).toBe('# mine\n');
  });
});

describe('signals and what a killed run left', () => {
  it('stops on a signal that came before the rebuild and leaves everything as it was', async () => {
    writeFileSync(join(root, 'etc/crypttab'), '# mine\r\n');
    writeFileSync(join(root, 'boot/initrd.img-6.6.0-rpi8'), 'old image');
    const hup = new AbortController();
    hup.abort('SIGHUP');
    const error = await install(noCalls, false, hup.signal).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(
      /^Stopped by SIGHUP before the initramfs was rebuilt\. .*back as they were/,
    );
    expect(read('etc/crypttab')).toBe('# mine\r\n');
    expect(existsSync(join(root, BOOT_PATHS.hook))).toBe(false);
    expect(readdirSync(join(root, 'boot'))).toEqual(['initrd.img-6.6.0-rpi8']);
  });

  it('puts everything back when the rebuild dies of the hangup, and finishes when it succeeded', async () => {
    writeFileSync(join(root, 'etc/crypttab'), '# mine\n');
    writeFileSync(join(root, 'boot/initrd.img-6.6.0-rpi8'), 'old image');
    const hup = new AbortController();
    const dies: Runner = async () => {
      hup.abort('SIGHUP');
      writeFileSync(join(root, 'boot/initrd.img-6.6.0-rpi8.new'), 'new');
      renameSync(join(root, 'boot/initrd.img-6.6.0-rpi8.new'), join(root, 'boot/initrd.img-6.6.0-rpi8'));
      return result(129);
    };
    await expect(install(dies, false, hup.signal)).rejects.toThrow(/back as they were/);
    expect(read('etc/crypttab')).toBe('# mine\n');
    expect(read('boot/initrd.img-6.6.0-rpi8')).toBe('old image');
    // A rebuild that outlived the signal and succeeded: the new files and images stand.
    const late = new AbortController();
    const finishes: Runner = async (file, args) => {
      if ([file, ...args].includes('update-initramfs')) late.abort('SIGHUP');
      return file === 'lsinitramfs' ? result(1, 'not an image') : result(0);
    };
    const error = await install(finishes, false, late.signal).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/^Failed to verify the initramfs/);
    expect(read('etc/crypttab')).toContain('keyscript=');
    expect(existsSync(join(root, BOOT_PATHS.hook))).toBe(true);
  });

  it('removes the temp files and kept images of a killed run, not those of a running one', async () => {
    const hooks = join(root, 'etc/initramfs-tools/hooks');
    mkdirSync(hooks, { recursive: true });
    const dead = Number(execFileSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).trim());
    const stale = `.zkluks.zkluks-${dead}-0a1b2c3d.tmp`;
    const running = '.zkluks.zkluks-1-0a1b2c3d.tmp';
    writeFileSync(join(hooks, stale), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(join(hooks, running), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(join(root, 'boot/initrd.img-6.6.0-rpi8'), 'image');
    writeFileSync(join(root, 'boot/.initrd.img-6.6.0-rpi8.zkluks-keep'), 'older image');
    await install();
    expect(readdirSync(hooks).sort()).toEqual([running, 'zkluks']);
    expect(readdirSync(join(root, 'boot'))).toEqual(['initrd.img-6.6.0-rpi8']);
  });
});

describe('temp files next to hooks', () => {
  it('names its temp files so that mkinitramfs and run-parts skip them', () => {
    const hooks = join(root, 'etc/initramfs-tools/hooks');
    mkdirSync(hooks, { recursive: true });
    writeFileSync(join(hooks, 'zkluks'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    // What a crash between write and rename would leave behind, executable.
    const tmp = atomicTempPath(join(hooks, 'zkluks'));
    expect(dirname(tmp)).toBe(hooks);
    writeFileSync(tmp, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const initlist = execFileSync(
      'sh',
      [
        '-c',
        '. /usr/share/initramfs-tools/hook-functions; initdir=$1; scriptdir=; verbose=n; set_initlist; echo $initlist',
        'sh',
        hooks,
      ],
      { encoding: 'utf8' },
    );
    expect(initlist.trim()).toBe('zkluks');
    const parts = execFileSync('run-parts', ['--test', hooks], { encoding: 'utf8' });
    expect(parts.trim()).toBe(join(hooks, 'zkluks'));
    expect(basename(tmp).startsWith('.')).toBe(true);
  });

  it('leaves no temp file when the write fails', () => {
    const dir = join(root, 'etc/initramfs-tools/hooks');
    mkdirSync(join(dir, 'zkluks', 'sub'), { recursive: true });
    expect(() => writeFileAtomic(join(dir, 'zkluks'), 'x', 0o755)).toThrow();
    expect(readdirSync(dir)).toEqual(['zkluks']);
  });
});
