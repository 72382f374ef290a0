// The hint of an `initramfs install` whose rebuild failed or was killed part-way, followed as written
// on a staged tree with the real mkinitramfs (private mount namespace, as the image tier builds): it
// names the admin's own command (the volume, --root), and after it the image is rebuilt with the
// zkluks files and `zkluks initramfs check` is clean.
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { zkluks } from '../helpers/cli.ts';
import { simInit } from '../../src/device/sim-control.ts';
import { serializeToken, zymkeyToken } from '../../src/keyslot/token.ts';
import { withLoopDevice } from '../helpers/loop.ts';
import { makeLuksImage, type TestImage } from '../helpers/luks.ts';
import { mkinitramfsScript, stageTree } from '../boot/initramfs-build.ts';
import { testKernel, type TestKernel } from '../boot/kernel.ts';
import { commandsOf, follow, hintOf, printHintCounts } from './follow.ts';

const W = mkdtempSync(join(tmpdir(), 'zkluks-rebuild-hints-'));
let kernel: TestKernel;
let volume: TestImage;

beforeAll(async () => {
  kernel = await testKernel();
  volume = await makeLuksImage();
  await execa('cryptsetup', ['token', 'import', volume.path], {
    input: JSON.stringify({ type: 'zkluks-zymkey', keyslots: ['0'], version: 1, sealed: 'AAAA' }),
  });
}, 300_000);
afterAll(async () => {
  rmSync(W, { recursive: true, force: true });
  await volume?.cleanup();
  printHintCounts();
});

/**
 * A staged tree with the test kernel installed, and a `chroot` on PATH that takes
 * `chroot TREE update-initramfs -c -k all` (a staged tree has no userland to chroot into) and runs the
 * real mkinitramfs from the tree's files. Once, it fails as a hook would (`fail`) or dies of the
 * signal that stopped zkluks (`kill`: SIGTERM to zkluks, then the exit of a process killed by it).
 */
function tree(name: string, once?: 'fail' | 'kill') {
  const root = join(W, name);
  stageTree(root, { crypttab: '# staged system\n' });
  symlinkSync(kernel.vmlinuz, join(root, 'boot', `vmlinuz-${kernel.version}`));
  mkdirSync(join(root, 'usr/lib/modules'), { recursive: true });
  symlinkSync(join(kernel.usrLib, 'modules', kernel.version), join(root, 'usr/lib/modules', kernel.version));
  const bin = join(W, `${name}-bin`);
  mkdirSync(bin);
  const script = join(bin, 'mkinitramfs.sh');
  writeFileSync(script, mkinitramfsScript(kernel, root, join(root, 'boot', `initrd.img-${kernel.version}`)));
  const flag = join(bin, once ?? 'none');
  if (once) writeFileSync(flag, '');
  writeFileSync(
    join(bin, 'chroot'),
    `#!/bin/sh
set -eu
[ "$1" = '${root}' ] && [ "$2" = update-initramfs ] || { echo "chroot stand-in: only update-initramfs in ${root}" >&2; exit 1; }
if [ -e '${join(bin, 'fail')}' ]; then
  rm -f '${join(bin, 'fail')}'
  echo "E: /etc/initramfs-tools/hooks/zz-zkluks-test failed with return 1." >&2
  exit 1
fi
if [ -e '${join(bin, 'kill')}' ]; then
  rm -f '${join(bin, 'kill')}'
  kill -TERM $PPID
  exit 143
fi
exec unshare -m sh '${script}'
`,
    { mode: 0o755 },
  );
  const env = { PATH: `${bin}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` };
  const image = join(root, 'boot', `initrd.img-${kernel.version}`);
  return { root, env, image, once: flag };
}

describe('the interrupted-rebuild hint, followed on a real mkinitramfs build', () => {
  for (const once of ['fail', 'kill'] as const) {
    it(`install whose update-initramfs ${once === 'fail' ? 'fails' : 'is killed'}: the hint reinstalls this volume in this tree, and check is clean`, async () => {
      const t = tree(`tree-${once}`, once);
      const install = () => zkluks(['initramfs', 'install', volume.path, '--root', t.root], { env: t.env });
      const failed = await install();
      expect(failed.exitCode, failed.stderr).not.toBe(0);
      expect(failed.stderr).toMatch(
        once === 'fail'
          ? /^Failed to rebuild the initramfs: .* exited 1: E: .*zz-zkluks-test failed/m
          : /^Stopped by SIGTERM while the initramfs was rebuilt .*exited 143/m,
      );
      expect(failed.stderr).toMatch(/back as they were/);
      expect(existsSync(t.once)).toBe(false);
      const hint = hintOf(failed);
      const zk = commandsOf(hint).find((c) => c[0] === 'zkluks');
      expect(zk, hint).toEqual(['zkluks', 'initramfs', 'install', volume.path, '--root', t.root]);
      await follow(hint, { env: t.env }, { run: install, failure: failed });
      expect(existsSync(t.image)).toBe(true);
      const listed = await execa('lsinitramfs', [t.image]);
      expect(listed.stdout).toContain('lib/cryptsetup/scripts/zkluks');
      const check = await zkluks(['initramfs', 'check', '--root', t.root]);
      expect(check.exitCode, check.stdout + check.stderr).toBe(0);
    }, 300_000);
  }
});

describe("the doctor's stale token copy hint, followed on a real mkinitramfs build", () => {
  it('a header change after the build: boots read the header, and the rebuild the doctor hints makes the copy current', async () => {
    const t = tree('tree-copy');
    const own = await makeLuksImage();
    try {
      const token = zymkeyToken({
        keyslot: 0,
        sealed: Buffer.from('a sealed key'),
        backend: 'sim',
        zymkey: { model: 'ZYMKEY4i', serial: 'SIM-TEST', binding: 'developer' },
        created: new Date(),
      });
      await execa('cryptsetup', ['token', 'import', own.path], { input: serializeToken(token) });
      const sim = join(W, 'copy-sim');
      simInit(sim);
      const installed = await zkluks(['initramfs', 'install', own.path, '--root', t.root, '--no-update']);
      expect(installed.exitCode, installed.stderr).toBe(0);
      const copyFindings = async () => {
        const r = await zkluks([
          'doctor',
          own.path,
          '--root',
          t.root,
          '--backend',
          'sim',
          '--sim-state',
          sim,
          '--json',
        ]);
        const report = JSON.parse(r.stdout) as {
          findings: Array<{ id: string; severity: string; hint: string }>;
        };
        return report.findings.filter((f) => f.id.startsWith('initramfs.token-copy'));
      };
      // The volume is a block device of the build host while the image is built, as on a Pi.
      await withLoopDevice(own.path, async () => {
        const built = await execa('chroot', [t.root, 'update-initramfs', '-c', '-k', 'all'], { env: t.env });
        expect(built.stderr).not.toMatch(/I: zkluks:/);
        expect((await execa('lsinitramfs', [t.image])).stdout).toMatch(
          /etc\/zkluks\/tokens\/cryptroot\.copy/,
        );
        expect(await copyFindings()).toEqual([]);
        const check = await zkluks(['initramfs', 'check', '--root', t.root]);
        expect(check.stdout).toMatch(/^ +token copy: cryptroot \(boots skip the header read/m);
        // A header change after the build (as a rotate makes).
        await execa('cryptsetup', ['config', '--label', 'rotated', own.path]);
        const stale = await copyFindings();
        expect(stale.map((f) => `${f.id}:${f.severity}`)).toEqual(['initramfs.token-copy-stale:info']);
        await follow(stale[0]?.hint ?? '', { env: t.env });
        expect(await copyFindings()).toEqual([]);
      });
    } finally {
      await own.cleanup();
    }
  }, 300_000);
});
