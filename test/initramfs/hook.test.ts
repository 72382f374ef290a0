// The rendered initramfs hook run by dash and by busybox sh with the real hook-functions, as
// mkinitramfs would run it, into a scratch DESTDIR.
import { execa } from 'execa';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOOT_PATHS, hookVars, keyscriptVars } from '../../src/initramfs/boot-files.ts';
import { render } from '../../src/initramfs/render.ts';
import { readTemplate } from '../../src/initramfs/templates.ts';
import { tokenCopies } from '../../src/doctor/gather-initramfs.ts';
import { readHeaderChecksum } from '../../src/keyslot/header.ts';
import { makeLuksImage, type TestImage } from '../helpers/luks.ts';

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

function hook(vars: { zkunlockifs: string; zymbitState: string }, keyscript?: string): string {
  const file = join(W, `hook-${Math.random().toString(36).slice(2)}`);
  writeFileSync(
    file,
    render(readTemplate('hook'), { ...hookVars(vars), ...(keyscript ? { KEYSCRIPT: keyscript } : {}) }),
  );
  chmodSync(file, 0o755);
  return file;
}

// The keyscript as `initramfs install` renders it, and a volume whose header holds a token.
const keyscript = join(W, 'keyscript');
writeFileSync(keyscript, render(readTemplate('keyscript'), keyscriptVars({ zkunlockifs: tool })));
chmodSync(keyscript, 0o755);
let volume: TestImage;
beforeAll(async () => {
  volume = await makeLuksImage();
  await execa('cryptsetup', ['token', 'import', '--token-id', '1', volume.path], {
    input: JSON.stringify({ type: 'zkluks-zymkey', keyslots: ['0'], version: 1, sealed: 'c2VhbGVk' }),
  });
});
afterAll(async () => volume?.cleanup());

describe.each([['dash'], ['busybox', 'sh']])('the hook under %s', (...shell) => {
  const [cmd = 'dash', ...pre] = shell;
  const run = (file: string, args: string[], dest: string, env: Record<string, string> = {}) =>
    execa(cmd, [...pre, file, ...args], {
      env: { DESTDIR: dest, version: '0.0.0-zkluks-test', verbose: 'n', ...env },
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

  it("puts a copy of each zkluks volume's token in the image, with the header checksum it was read under", async () => {
    const dest = join(W, `dest-copy-${cmd}`);
    mkdirSync(join(dest, 'cryptroot'), { recursive: true });
    const options = `luks,keyscript=${keyscript}`;
    // The image's crypttab names sources by UUID; /etc/crypttab as written tells where they are.
    writeFileSync(
      join(dest, 'cryptroot/crypttab'),
      `cryptroot UUID=0f6e3b55-0000-4000-8000-000000000001 none ${options}\n` +
        `gone UUID=0f6e3b55-0000-4000-8000-000000000002 none ${options}\n` +
        'plain UUID=0f6e3b55-0000-4000-8000-000000000003 none luks\n',
    );
    const crypttab = join(W, `crypttab-${cmd}`);
    writeFileSync(
      crypttab,
      `# the host's\ncryptroot ${volume.path} none ${options}\n` +
        `gone ${join(W, 'no-such-disk.img')} none ${options}\n` +
        `plain ${volume.path} none luks\n` +
        `notinimage ${volume.path} none ${options},noauto\n`,
    );
    const r = await run(hook({ zkunlockifs: tool, zymbitState: state }, keyscript), [], dest, {
      ZKLUKS_CRYPTTAB: crypttab,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    const dir = join(dest, BOOT_PATHS.tokenCopyDir);
    expect(readdirSync(dir).sort()).toEqual(['cryptroot.copy', 'cryptroot.sealed']);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const fd = openSync(volume.path, 'r');
    const csum = Buffer.alloc(64);
    readSync(fd, csum, 0, 64, 448);
    closeSync(fd);
    expect(readFileSync(join(dir, 'cryptroot.copy'), 'utf8')).toBe(`csum=${csum.toString('hex')}\ntoken=1\n`);
    expect(readFileSync(join(dir, 'cryptroot.sealed'), 'utf8')).toBe('sealed');
    // What the doctor reads back from an unpacked image, and the checksum it compares with.
    const listed = readdirSync(dir).map((f) => `${BOOT_PATHS.tokenCopyDir.slice(1)}/${f}`);
    expect(tokenCopies(dest, listed)).toEqual([
      {
        name: 'cryptroot',
        csum: csum.toString('hex'),
        token: 1,
        sealed: Buffer.from('sealed').toString('base64'),
      },
    ]);
    expect(await readHeaderChecksum(volume.path)).toBe(csum.toString('hex'));
    expect(await readHeaderChecksum(join(W, 'no-such-disk.img'))).toBeNull();
    // A source this system cannot find: a note, no copy, and the build goes on.
    expect(r.stderr).toMatch(/I: zkluks: gone: .*no-such-disk\.img is not found on this system/);
  });

  it('never runs a keyscript that makes no token copies: it would take the build for a boot', async () => {
    const dest = join(W, `dest-old-${cmd}`);
    mkdirSync(join(dest, 'cryptroot'), { recursive: true });
    const old = join(W, `old-keyscript-${cmd}`);
    writeFileSync(old, `#!/bin/sh\necho ran >'${join(W, `old-ran-${cmd}`)}'\n`);
    chmodSync(old, 0o755);
    writeFileSync(join(dest, 'cryptroot/crypttab'), `cryptroot UUID=x none luks,keyscript=${old}\n`);
    const crypttab = join(W, `crypttab-old-${cmd}`);
    writeFileSync(crypttab, `cryptroot ${volume.path} none luks,keyscript=${old}\n`);
    const r = await run(hook({ zkunlockifs: tool, zymbitState: state }, old), [], dest, {
      ZKLUKS_CRYPTTAB: crypttab,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(existsSync(join(W, `old-ran-${cmd}`))).toBe(false);
    expect(existsSync(join(dest, BOOT_PATHS.tokenCopyDir))).toBe(false);
    expect(r.stderr).toMatch(
      /I: zkluks: cryptroot: .* makes no token copies \(run: zkluks initramfs install\)/,
    );
  });
});
