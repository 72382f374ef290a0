// Image tier: `zkluks initramfs install --root` into a staged tree, then a real mkinitramfs build
// with the zkluks hook (private mount namespace; the host's /boot, /lib/modules and /etc/crypttab
// stay untouched), verified by `zkluks initramfs check`, by `zkluks doctor` and by listing the image.
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  chmodSync,
  mkdirSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simInit } from '../../src/device/sim-control.ts';
import { createRunner } from '../../src/exec.ts';
import { linkedLibraries } from '../../src/initramfs/inspect.ts';
import { zkluks } from '../helpers/cli.ts';
import { makeLuksImage, type TestImage } from '../helpers/luks.ts';
import { buildInitramfs, stageTree, type BuildResult } from '../boot/initramfs-build.ts';
import { testKernel, type TestKernel } from '../boot/kernel.ts';

const W = mkdtempSync(join(tmpdir(), 'zkluks-image-'));
const stage = join(W, 'root');
let kernel: TestKernel;
let volume: TestImage;
let build: BuildResult;
let hostBefore: string;
let standin: string;

interface DoctorReport {
  verdict: { status: string };
  findings: Array<{ id: string; area: string; severity: string; summary: string; evidence: string[] }>;
}

/** `zkluks doctor` on the staged tree and the volume its crypttab names, with a fresh simulator. */
async function doctor(): Promise<DoctorReport> {
  const simState = join(W, 'sim');
  if (!existsSync(simState)) simInit(simState);
  const r = await zkluks([
    'doctor',
    volume.path,
    '--root',
    stage,
    '--backend',
    'sim',
    '--sim-state',
    simState,
    '--json',
  ]);
  expect(r.stdout, r.stderr).not.toBe('');
  return JSON.parse(r.stdout) as DoctorReport;
}

let healthy: Promise<DoctorReport> | undefined;
/** The doctor's report on the tree as built (run once, shared by the tests that read it). */
function healthyReport(): Promise<DoctorReport> {
  healthy ??= doctor();
  return healthy;
}

/**
 * A dynamically linked zkunlockifs stand-in, built with gcc: it links a shared library of its own,
 * found through its RUNPATH ($ORIGIN/../lib/zkluks-test), so the image holds that library only if the
 * hook's copy_exec followed the stand-in's libraries. A shell-script stand-in links nothing, and a
 * check of its libraries could not fail.
 */
const STANDIN_LIB = 'libzk_standin.so';
async function buildLinkedStandin(tree: string): Promise<string> {
  const src = join(W, 'standin-src');
  const libDir = join(tree, 'usr/lib/zkluks-test');
  mkdirSync(src, { recursive: true });
  mkdirSync(libDir, { recursive: true });
  writeFileSync(join(src, 'lib.c'), 'int zk_standin(void) { return 42; }\n');
  writeFileSync(
    join(src, 'main.c'),
    '#include <stdio.h>\nint zk_standin(void);\nint main(void) { fputs("zkunlockifs stand-in\\n", stderr); return zk_standin() == 42 ? 1 : 2; }\n',
  );
  await execa('gcc', ['-shared', '-fPIC', '-o', join(libDir, STANDIN_LIB), join(src, 'lib.c')]);
  const program = join(tree, 'usr/sbin/zkunlockifs');
  rmSync(program, { force: true });
  await execa('gcc', [
    '-o',
    program,
    join(src, 'main.c'),
    `-L${libDir}`,
    '-l:' + STANDIN_LIB,
    '-Wl,-rpath,$ORIGIN/../lib/zkluks-test',
  ]);
  return program;
}

function hostFingerprint(): string {
  const h = createHash('sha256');
  for (const dir of ['/boot', '/lib/modules', '/usr/lib/modules', '/etc/initramfs-tools/hooks']) {
    h.update(`${dir}:${existsSync(dir) ? readdirSync(dir).sort().join(',') : '-'}\n`);
  }
  h.update(existsSync('/etc/crypttab') ? readFileSync('/etc/crypttab') : 'no crypttab');
  return h.digest('hex');
}

beforeAll(async () => {
  hostBefore = hostFingerprint();
  kernel = await testKernel();
  volume = await makeLuksImage();
  await execa('cryptsetup', ['token', 'import', volume.path], {
    input: JSON.stringify({ type: 'zkluks-zymkey', keyslots: ['0'], version: 1, sealed: 'AAAA' }),
  });
  stageTree(stage, { crypttab: '# staged system\nswap /dev/sdb2 /dev/urandom swap\n' });
  standin = await buildLinkedStandin(stage);
  const installed = await zkluks(['initramfs', 'install', volume.path, '--root', stage, '--no-update']);
  expect(installed.exitCode, installed.stderr).toBe(0);
  build = await buildInitramfs({ kernel, stage, out: join(stage, 'boot', `initrd.img-${kernel.version}`) });
  // The test kernel, installed in the tree as on a real system: its image next to the initramfs (the
  // bootloader loads initrd.img-<version> with vmlinuz-<version>) and its modules directory.
  symlinkSync(kernel.vmlinuz, join(stage, 'boot', `vmlinuz-${kernel.version}`));
  mkdirSync(join(stage, 'usr/lib/modules'), { recursive: true });
  symlinkSync(join(kernel.usrLib, 'modules', kernel.version), join(stage, 'usr/lib/modules', kernel.version));
}, 300_000);

afterAll(async () => {
  rmSync(W, { recursive: true, force: true });
  await volume?.cleanup();
});

describe('an initramfs built by mkinitramfs with the zkluks hook', () => {
  it('passes zkluks initramfs check', async () => {
    const r = await zkluks(['initramfs', 'check', '--root', stage, '--json']);
    const report = JSON.parse(r.stdout);
    expect(report.findings.filter((f: { level: string }) => f.level === 'error')).toEqual([]);
    expect(r.exitCode).toBe(0);
    expect(report.images).toHaveLength(1);
    expect(report.images[0]).toMatchObject({
      image: `/boot/initrd.img-${kernel.version}`,
      kernelVersions: [kernel.version],
      inside: {
        keyscript: true,
        zkunlockifs: true,
        zymbitState: true,
        zkenv: true,
        bootConf: true,
        askpass: true,
        cryptsetup: true,
        missingLibraries: [],
      },
    });
    expect(report.images[0].inside.i2cModules).toContain('i2c-dev');
    // This build host does not have the volume its crypttab names by UUID: no token copy.
    expect(report.images[0].inside.tokenCopies).toEqual([]);
    // The stand-in links a library of its own, so `missingLibraries: []` says the hook copied it.
    const libs = await linkedLibraries(createRunner(), standin);
    expect(
      libs.some((l) => l.endsWith(`/zkluks-test/${STANDIN_LIB}`)),
      libs.join(' '),
    ).toBe(true);
    const listing = await execa('lsinitramfs', [join(stage, 'boot', `initrd.img-${kernel.version}`)]);
    expect(listing.stdout).toMatch(new RegExp(`^usr/lib/zkluks-test/${STANDIN_LIB}$`, 'm'));
    console.log(`image tier: mkinitramfs took ${Math.round(build.durationMs)} ms`);
  });

  it('passes the initramfs checks of zkluks doctor: kernel, keyscript, zkunlockifs, Zymbit state', async () => {
    const report = await healthyReport();
    // The doctor found the crypttab entry, so it checks the image for the keyscript that entry names.
    expect(report.findings.find((f) => f.id === 'crypttab.entry')).toMatchObject({ severity: 'ok' });
    const initramfs = report.findings.filter((f) => f.area === 'initramfs');
    expect(initramfs.filter((f) => f.severity === 'error')).toEqual([]);
    const kernelFinding = initramfs.find((f) => f.id === 'initramfs.kernel');
    expect(kernelFinding, JSON.stringify(initramfs, null, 2)).toMatchObject({ severity: 'ok' });
    expect(kernelFinding?.summary).toContain(`built for kernel ${kernel.version}, the newest installed`);
    expect(kernelFinding?.evidence.join('\n')).toContain(`image: /boot/initrd.img-${kernel.version}`);
    expect(initramfs.map((f) => f.id)).not.toContain('initramfs.missing-files');
    expect(initramfs.map((f) => f.id)).not.toContain('initramfs.zymbit-state-drift');
    expect(initramfs.map((f) => f.id)).not.toContain('initramfs.plaintext-key');
  });

  // The test kernel builds its I2C bus driver (i2c-designware-platform) into the kernel: the image's
  // lib/modules/<version>/modules.builtin says so, and both `zkluks initramfs check` and the doctor
  // count it.
  it('zkluks doctor counts an I2C bus driver built into the kernel as present', async () => {
    const report = await healthyReport();
    const initramfs = report.findings.filter((f) => f.area === 'initramfs');
    expect(initramfs.filter((f) => f.severity !== 'ok')).toEqual([]);
    expect(initramfs.map((f) => f.id).sort()).toEqual(['initramfs.contents', 'initramfs.kernel']);
  });

  it('zkluks doctor reports an image built for an older kernel than the newest installed', async () => {
    const newer = join(stage, 'usr/lib/modules', '99.0.0-1-amd64');
    mkdirSync(newer);
    try {
      const report = await doctor();
      const mismatch = report.findings.find((f) => f.id === 'initramfs.kernel-mismatch');
      expect(mismatch, JSON.stringify(report.findings, null, 2)).toMatchObject({ severity: 'error' });
      expect(mismatch?.summary).toContain(`built for kernel ${kernel.version}`);
      expect(mismatch?.summary).toContain('newest installed kernel is 99.0.0-1-amd64');
    } finally {
      rmSync(newer, { recursive: true });
    }
  });

  it('carries the crypttab line naming the keyscript, the Zymbit state and the force-loaded I2C modules', async () => {
    const dir = join(W, 'unpacked');
    await execa('unmkinitramfs', [build.image, dir]);
    const main = existsSync(join(dir, 'main')) ? join(dir, 'main') : dir;
    expect(readFileSync(join(main, 'cryptroot/crypttab'), 'utf8')).toMatch(
      /^cryptroot UUID=[0-9a-f-]+ none luks,initramfs,keyscript=\/lib\/cryptsetup\/scripts\/zkluks/m,
    );
    expect(readFileSync(join(main, 'var/lib/zymbit/zkenv.conf'), 'utf8')).toBe('ZK_GPIO_WAKE_PIN=516\n');
    expect(readFileSync(join(main, 'var/lib/zymbit/4a1b/s1_fp_salt.bin'), 'utf8')).toBe('test salt\n');
    expect(readFileSync(join(main, 'conf/modules'), 'utf8')).toMatch(/^i2c-dev$/m);
    expect(readFileSync(join(main, 'etc/zkluks/boot.conf'), 'utf8')).toContain('ZKLUKS_TIMEOUT=10');
    // crypttab names the volume by UUID, which no block device of this build host carries: the image
    // holds no copy of its token (boots read the header), and the build says so without failing.
    expect(existsSync(join(main, 'etc/zkluks/tokens'))).toBe(false);
    expect(build.stderr).toMatch(
      /^I: zkluks: cryptroot: UUID=[0-9a-f-]+ is not found on this system, so the image holds no copy of its token; boots read the LUKS2 header/m,
    );
  });

  it('leaves the host /boot, module directories and /etc/crypttab as they were', () => {
    expect(hostFingerprint()).toBe(hostBefore);
  });

  it('fails zkluks initramfs check for an image without the zkluks files', async () => {
    const bare = join(W, 'bare');
    mkdirSync(join(bare, 'etc'), { recursive: true });
    writeFileSync(join(bare, 'etc/hostname'), 'x\n');
    const cpio = await execa('sh', ['-c', `cd ${bare} && find . | cpio -o -H newc --quiet | zstd -q`], {
      encoding: 'buffer',
      stripFinalNewline: false,
    });
    writeFileSync(join(stage, 'boot', 'bare.img'), Buffer.from(cpio.stdout));
    const r = await zkluks(['initramfs', 'check', '--root', stage, '--image', '/boot/bare.img']);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/error: \/boot\/bare\.img: the keyscript .* is missing/);
    expect(r.stdout).toMatch(/zkunlockifs is missing/);
    // The library check can fail: the stand-in's own library is not in this image.
    expect(r.stdout).toContain(`${STANDIN_LIB}, needed by zkunlockifs, is missing`);
  });

  it('the kernel hook leaves a complete image alone and rebuilds one that lacks the zkluks files', async () => {
    const calls = join(W, 'update-initramfs.calls');
    const bin = join(W, 'fake-bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'update-initramfs'), `#!/bin/sh\necho "$*" >> ${calls}\n`);
    chmodSync(join(bin, 'update-initramfs'), 0o755);
    const hook = join(stage, 'etc/kernel/postinst.d/zz-zkluks');
    const env = { PATH: `${bin}:${process.env.PATH}` };
    for (const shell of ['dash', 'busybox sh']) {
      const [cmd = 'dash', ...pre] = shell.split(' ');
      const ok = await execa(
        cmd,
        [...pre, hook, kernel.version, join(stage, 'boot', `vmlinuz-${kernel.version}`)],
        { env },
      );
      expect(ok.exitCode).toBe(0);
      expect(existsSync(calls)).toBe(false);
    }
    const other = join(W, 'boot2');
    mkdirSync(other);
    copyFileSync(join(stage, 'boot', 'bare.img'), join(other, 'initrd.img-9.9.9'));
    const r = await execa('dash', [hook, '9.9.9', join(other, 'vmlinuz-9.9.9')], { env });
    expect(r.exitCode).toBe(0);
    expect(readFileSync(calls, 'utf8')).toBe('-u -k 9.9.9\n');
    expect(r.stderr).toMatch(/still lacks the zkluks boot files/);
  });
});
