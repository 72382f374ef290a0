// The rendered initramfs hook run by dash and by busybox sh with the real hook-functions, as
// mkinitramfs would run it, into a scratch DESTDIR.
import { execa } from 'execa';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BOOT_PATHS, hookVars } from '../../src/initramfs/boot-files.ts';
import { render } from '../../src/initramfs/render.ts';
import { readTemplate } from '../../src/initramfs/templates.ts';

const W = mkdtempSync(join(tmpdir(), 'zkluks-hook-'));
afterAll(() => rmSync(W, { recursive: true, force: true }));

const tool = join(W, 'bin', 'zkunlockifs');
const state = join(W, 'zymbit');
mkdirSync(join(W, 'bin'));
mkdirSync(join(state, '4a1b'), { recursive: true });
writeFileSync(tool, '#!/bin/sh\nexit 1\n');
chmodSync(tool, 0o755);
writeFileSync(join(state, 'zkenv.conf'), 'ZK_GPIO_WAKE_PIN=516\n');
writeFileSync(join(state, '4a1b', 's1_fp_salt.bin'), 'salt');

function hook(vars: { zkunlockifs: string; zymbitState: string }): string {
  const file = join(W, `hook-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, render(readTemplate('hook'), hookVars(vars)));
  chmodSync(file, 0o755);
  return file;
}

describe.each([['dash'], ['busybox', 'sh']])('the hook under %s', (...shell) => {
  const [cmd = 'dash', ...pre] = shell;
  const run = (file: string, args: string[], dest: string) =>
    execa(cmd, [...pre, file, ...args], {
      env: { DESTDIR: dest, version: '0.0.0-zkluks-test', verbose: 'n' },
      reject: false,
    });

  it('names cryptroot as its prerequisite', async () => {
    const r = await run(hook({ zkunlockifs: tool, zymbitState: state }), ['prereqs'], W);
    expect(r.stdout).toBe('cryptroot');
  });

  it('copies zkunlockifs and the Zymbit state with zkenv.conf into the image tree', async () => {
    const dest = join(W, `dest-${cmd}`);
    mkdirSync(dest);
    const r = await run(hook({ zkunlockifs: tool, zymbitState: state }), [], dest);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(existsSync(join(dest, tool))).toBe(true);
    expect(readFileSync(join(dest, 'var/lib/zymbit/zkenv.conf'), 'utf8')).toBe('ZK_GPIO_WAKE_PIN=516\n');
    expect(readFileSync(join(dest, 'var/lib/zymbit/4a1b/s1_fp_salt.bin'), 'utf8')).toBe('salt');
    // The keyscript's scratch directory, private, so that the keyscript need not make it at boot.
    expect(statSync(join(dest, BOOT_PATHS.workDir)).mode & 0o7777).toBe(0o700);
    expect(statSync(join(dest, BOOT_PATHS.workDir)).isDirectory()).toBe(true);
    // No modules for this made-up kernel: a warning, not a failed build.
    expect(r.stderr).toMatch(/W: zkluks: no I2C module found for kernel 0\.0\.0-zkluks-test/);
  });

  it('warns but does not break the build when zkunlockifs or the Zymbit state is missing', async () => {
    const dest = join(W, `dest-missing-${cmd}`);
    mkdirSync(dest);
    const r = await run(hook({ zkunlockifs: join(W, 'nope'), zymbitState: join(W, 'nostate') }), [], dest);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/W: zkluks: .*nope is missing/);
    expect(r.stderr).toMatch(/W: zkluks: .*nostate is missing/);
  });
});
