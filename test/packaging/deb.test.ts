// The Debian package for real: scripts/build-deb builds it (lintian must pass), then dpkg installs,
// upgrades, refuses to remove while crypttab uses the zkluks keyscript, removes and purges it, all
// with `dpkg --root` in a throwaway root so the machine running the tests is untouched.
import { execa } from 'execa';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cli.ts';

const work = mkdtempSync(join(tmpdir(), 'zkluks-deb-'));
const version = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version as string;
const older = '0.0.1~test1';
let deb: string;
let oldDeb: string;

const ZKLUKS_LINE =
  'cryptroot UUID=0d6f3f4e-2f1c-4c1a-9a43-5c2b8d1e7f10 none luks,initramfs,keyscript=/lib/cryptsetup/scripts/zkluks';

/** The dpkg status stanza of a package the throwaway root pretends to have. */
function installed(name: string, v: string): string {
  return [
    `Package: ${name}`,
    'Status: install ok installed',
    'Priority: optional',
    'Section: admin',
    'Maintainer: Test <test@example.org>',
    'Architecture: all',
    `Version: ${v}`,
    `Description: stand-in for ${name}`,
    '',
  ].join('\n');
}

/** A root with a dpkg database, /bin/sh (dash and its libraries) for the maintainer scripts, and the
 * given packages marked installed. */
async function throwawayRoot(packages: Record<string, string>): Promise<string> {
  const root = mkdtempSync(join(work, 'root-'));
  for (const d of ['var/lib/dpkg/info', 'var/lib/dpkg/updates', 'var/lib/dpkg/triggers', 'bin', 'etc']) {
    mkdirSync(join(root, d), { recursive: true });
  }
  writeFileSync(
    join(root, 'var/lib/dpkg/status'),
    Object.entries(packages)
      .map(([n, v]) => installed(n, v))
      .join('\n'),
  );
  copyFileSync('/bin/dash', join(root, 'bin/sh'));
  const ldd = await execa('ldd', ['/bin/dash']);
  for (const lib of ldd.stdout.match(/\/\S+/g) ?? []) {
    mkdirSync(join(root, dirname(lib)), { recursive: true });
    copyFileSync(lib, join(root, lib));
  }
  return root;
}

const DEPENDENCIES = {
  nodejs: '18.19.0+dfsg-6~deb12u1',
  'cryptsetup-bin': '2:2.6.1-4~deb12u2',
  'cryptsetup-initramfs': '2:2.6.1-4~deb12u2',
  'initramfs-tools': '0.142+deb12u1',
  busybox: '1:1.35.0-4+b3',
};

const dpkg = (root: string, args: string[], env: Record<string, string> = {}) =>
  execa('dpkg', [`--root=${root}`, '--force-not-root', ...args], { reject: false, all: true, env });

async function status(root: string): Promise<string> {
  const r = await execa('dpkg-query', [`--root=${root}`, '-W', '-f=${Status} ${Version}', 'zkluks'], {
    reject: false,
  });
  return r.exitCode === 0 ? r.stdout : 'not-installed';
}

beforeAll(async () => {
  const build = await execa(join(repoRoot, 'scripts/build-deb'), ['--out', join(work, 'debs')], {
    reject: false,
    all: true,
  });
  // build-deb runs lintian with --fail-on down to pedantic: a zero exit means lintian is clean.
  expect(build.exitCode, build.all).toBe(0);
  deb = build.stdout.trim().split('\n').at(-1)!;
  const old = await execa(
    join(repoRoot, 'scripts/build-deb'),
    ['--version', older, '--out', join(work, 'debs'), '--no-lintian'],
    { all: true },
  );
  oldDeb = old.stdout.trim().split('\n').at(-1)!;
}, 600_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('zkluks .deb', () => {
  it('is named zkluks_<version>_all.deb and says what it depends on', async () => {
    expect(deb.endsWith(`/zkluks_${version}_all.deb`)).toBe(true);
    const info = await execa('dpkg-deb', [
      '-f',
      deb,
      'Package',
      'Architecture',
      'Depends',
      'Recommends',
      'Suggests',
    ]);
    expect(info.stdout).toMatch(/^Architecture: all$/m);
    expect(info.stdout).toMatch(
      /^Depends: .*nodejs \(>= 18\.19\).*cryptsetup-bin.*cryptsetup-initramfs.*initramfs-tools/m,
    );
    expect(info.stdout).toMatch(/^Recommends: .*age.*qrencode/m);
    expect(info.stdout).toMatch(/^Suggests: .*zksaapps/m);
    const files = (await execa('dpkg-deb', ['-c', deb])).stdout;
    expect(files).toMatch(/ \.\/usr\/bin\/zkluks$/m);
    expect(files).toMatch(/ \.\/usr\/lib\/zkluks\/zkluks\.mjs$/m);
    expect(files).toMatch(/ \.\/usr\/share\/bash-completion\/completions\/zkluks$/m);
    expect(files).toMatch(/ \.\/usr\/share\/doc\/zkluks\/copyright$/m);
    for (const page of ['zkluks', 'zkluks-enroll', 'zkluks-initramfs', 'zkluks-doctor', 'zkluks-recovery']) {
      expect(files).toMatch(new RegExp(` \\./usr/share/man/man1/${page}\\.1\\.gz$`, 'm'));
    }
  });

  it('refuses to install without Node 18.19 or newer', async () => {
    const root = await throwawayRoot({ ...DEPENDENCIES, nodejs: '18.13.0+dfsg1-1' });
    const r = await dpkg(root, ['-i', deb]);
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(/zkluks depends on nodejs \(>= 18\.19\)/);
    expect(await status(root)).toMatch(/unpacked|half-configured/);
  });

  it('installs, upgrades over an older build, refuses removal while crypttab uses it, then removes and purges', async () => {
    const root = await throwawayRoot(DEPENDENCIES);
    let r = await dpkg(root, ['-i', oldDeb]);
    expect(r.exitCode, r.all).toBe(0);
    expect(await status(root)).toBe(`install ok installed ${older}`);

    r = await dpkg(root, ['-i', deb]);
    expect(r.exitCode, r.all).toBe(0);
    expect(await status(root)).toBe(`install ok installed ${version}`);
    expect(readFileSync(join(root, 'usr/bin/zkluks'), 'utf8')).toMatch(
      /exec node \/usr\/lib\/zkluks\/zkluks\.mjs/,
    );
    // The installed bundle runs (with the node running the tests; the wrapper names /usr/lib/zkluks).
    const v = await execa(process.execPath, [join(root, 'usr/lib/zkluks/zkluks.mjs'), '--version']);
    expect(v.stdout.trim()).toBe(version);

    // The boot path: a crypttab line using the keyscript, and the keyscript `initramfs install` wrote.
    writeFileSync(join(root, 'etc/crypttab'), `# <target> <source> <key> <options>\n${ZKLUKS_LINE}\n`);
    mkdirSync(join(root, 'lib/cryptsetup/scripts'), { recursive: true });
    writeFileSync(join(root, 'lib/cryptsetup/scripts/zkluks'), '#!/bin/sh\n');
    r = await dpkg(root, ['-r', 'zkluks']);
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toContain('zkluks: not removing');
    expect(r.all).toContain(ZKLUKS_LINE);
    expect(r.all).toContain("run 'zkluks initramfs remove' first");
    // Still installed and configured (dpkg only records that removal was asked for).
    expect(await status(root)).toMatch(new RegExp(` ok installed ${version.replace(/\./g, '\\.')}$`));
    expect(existsSync(join(root, 'usr/lib/zkluks/zkluks.mjs'))).toBe(true);

    // A commented-out line does not count; after `zkluks initramfs remove` put crypttab back, removal works.
    writeFileSync(join(root, 'etc/crypttab'), `#${ZKLUKS_LINE}\ncryptroot UUID=0d6f none luks,initramfs\n`);
    r = await dpkg(root, ['-r', 'zkluks']);
    expect(r.exitCode, r.all).toBe(0);
    expect(existsSync(join(root, 'usr/bin/zkluks'))).toBe(false);
    expect(existsSync(join(root, 'usr/lib/zkluks'))).toBe(false);
    expect(await status(root)).toMatch(/^deinstall ok config-files|not-installed/);

    r = await dpkg(root, ['--purge', 'zkluks']);
    expect(r.exitCode, r.all).toBe(0);
    expect(await status(root)).toMatch(/not-installed|unknown ok not-installed/);
    // Purge never touches boot files the package does not own.
    expect(existsSync(join(root, 'lib/cryptsetup/scripts/zkluks'))).toBe(true);
  });

  it('with ZKLUKS_REMOVE_KEEP_BOOT=1 removes the package and leaves the boot files working as they were', async () => {
    const root = await throwawayRoot(DEPENDENCIES);
    expect((await dpkg(root, ['-i', deb])).exitCode).toBe(0);
    writeFileSync(
      join(root, 'etc/crypttab'),
      `${ZKLUKS_LINE.replace('keyscript=/lib/cryptsetup/scripts/zkluks', 'keyscript=zkluks')}\n`,
    );
    expect((await dpkg(root, ['-r', 'zkluks'])).exitCode).not.toBe(0);
    const r = await dpkg(root, ['--purge', 'zkluks'], { ZKLUKS_REMOVE_KEEP_BOOT: '1' });
    expect(r.exitCode, r.all).toBe(0);
    expect(await status(root)).toMatch(/not-installed/);
    expect(readFileSync(join(root, 'etc/crypttab'), 'utf8')).toContain('keyscript=zkluks');
  });
});
