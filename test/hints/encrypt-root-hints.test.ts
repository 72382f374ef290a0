// encrypt-root's hints for a staged system tree (--root DIR, its root an ext4 image file), followed as
// written: each names the tree (--root, the chroot form, the tree's files) and the image (--device),
// never lsblk and never the host, and following it arms, disarms or moves on to another state.
import { execa } from 'execa';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { simInit, simSetReachable } from '../../src/device/sim-control.ts';
import { ENCRYPT_PATHS } from '../../src/migrate/encrypt-root/layout.ts';
import { zkluks, type CliResult } from '../helpers/cli.ts';
import type { Diagnosis } from '../../src/doctor/diagnose.ts';
import { CMDLINE, dpkgStatus, plainRootImage, stagePiTree } from '../migrate/encrypt-root-fixture.ts';
import { commandsOf, follow, hintOf, printHintCounts } from './follow.ts';

const W = mkdtempSync(join(tmpdir(), 'zkluks-encrypt-hints-'));
const sim = join(W, 'sim');
let image: string;
let root: string;
let n = 0;

// The staged tree has no userland to chroot into: the chroot on PATH installs a package the way dpkg
// records it (its status entry), which is all encrypt-root's preflight reads.
const bin = join(W, 'bin');
const CHROOT = `#!/bin/sh
set -eu
root=$1; shift
[ "$1 $2" = "apt-get install" ] || { echo "chroot stand-in: only apt-get install" >&2; exit 1; }
shift 2
for p in "$@"; do
  printf '\\nPackage: %s\\nStatus: install ok installed\\nArchitecture: arm64\\nVersion: 1\\n' "$p" >>"$root/var/lib/dpkg/status"
done
`;
const env = {
  ZKLUKS_BACKEND: 'sim',
  ZKLUKS_SIM_STATE: sim,
  PATH: `${bin}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
};

beforeAll(async () => {
  simInit(sim);
  image = (await plainRootImage(W, { sizeMiB: 64, fsMiB: 64, dataMiB: 2 })).path;
  cpSync(image, join(W, 'pristine.img'));
  await execa('mkdir', ['-p', bin]);
  writeFileSync(join(bin, 'chroot'), CHROOT, { mode: 0o755 });
});
afterAll(() => {
  rmSync(W, { recursive: true, force: true });
  printHintCounts();
});
beforeEach(() => {
  root = mkdtempSync(join(W, 'root-'));
  stagePiTree(root);
  cpSync(join(W, 'pristine.img'), image);
});

const keyFile = () => join(W, `recovery-${++n}.txt`);
const arm = (extra: string[] = []) =>
  zkluks(['encrypt-root', '--root', root, '--no-update', ...extra], { env });
const armed = () => existsSync(join(root, ENCRYPT_PATHS.planConf));
// The staged tree has no update-initramfs: zkluks commands a hint names run with --no-update.
const noUpdate = (argv: string[]) => (argv[1] === 'encrypt-root' ? ['--no-update'] : []);

/** The tree's hint: --root for zkluks, the chroot form for the system, never lsblk. */
function treeHint(r: CliResult): string {
  const hint = hintOf(r);
  expect(hint).not.toMatch(/lsblk/);
  for (const argv of commandsOf(hint)) {
    if (argv[0] === 'zkluks') expect(argv, hint).toContain('--root');
    if (argv[0] === 'zkluks' && argv[1] === 'encrypt-root') expect(argv, hint).toContain('--device');
  }
  return hint;
}

describe('encrypt-root hints for a --root tree', () => {
  it('without --device: the hint repeats the command with --device, and following it arms the tree', async () => {
    const failed = await arm(['--yes', '--recovery-key-file', keyFile()]);
    expect(failed.exitCode, failed.stderr).toBe(3);
    const hint = treeHint(failed);
    expect(hint).toContain('--device DEVICE');
    await follow(hint, { values: { DEVICE: image }, env });
    expect(armed()).toBe(true);
  });

  it('a --device that does not exist exits 2 like every missing path, and its hint looks where the image should be', async () => {
    const r = await arm(['--device', join(W, 'nope.img'), '--yes', '--recovery-key-file', keyFile()]);
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^Failed to read the root device '.*nope\.img': no such file or device/m);
    const hint = hintOf(r);
    expect(hint).not.toMatch(/lsblk/);
    const { results } = await follow(hint, { env });
    expect(results[0]?.stdout).toContain('root.img');
  });

  it('unconfirmed without a terminal: the hint adds --yes to the same tree and image, and arms', async () => {
    const file = keyFile();
    const failed = await arm(['--device', image, '--recovery-key-file', file]);
    expect(failed.exitCode).toBe(2);
    const hint = treeHint(failed);
    await follow(hint, { env });
    expect(armed()).toBe(true);
    expect(existsSync(file)).toBe(true);
  });

  it('already armed: the hint disarms this tree and image, after which arming goes on', async () => {
    const again = () => arm(['--device', image, '--yes', '--recovery-key-file', keyFile()]);
    expect((await again()).exitCode).toBe(0);
    const refused = await again();
    expect(refused.exitCode).toBe(3);
    expect(refused.stderr).toContain('armed: the next boot is already armed');
    const hint = treeHint(refused);
    expect(hint).not.toMatch(/^reboot/);
    await follow(hint, { env, extra: noUpdate });
    expect(armed()).toBe(false);
    const rearmed = await again();
    expect(rearmed.exitCode, rearmed.stderr).toBe(0);
  });

  it('a missing package: the hint installs it inside the tree (chroot), then arms', async () => {
    writeFileSync(join(root, 'var/lib/dpkg/status'), dpkgStatus(['cryptsetup', 'initramfs-tools']));
    const refused = await arm(['--device', image, '--yes', '--recovery-key-file', keyFile()]);
    expect(refused.exitCode).toBe(3);
    const hint = treeHint(refused);
    expect(hint).toMatch(new RegExp(`^chroot ${root} apt-get install cryptsetup-initramfs, then zkluks`));
    await follow(hint, { env });
    expect(armed()).toBe(true);
  });

  it('an unclean filesystem: the hint checks the image itself (e2fsck), not the host, then arms', async () => {
    await execa('debugfs', ['-w', '-R', 'ssv state 0', image]);
    const refused = await arm(['--device', image, '--yes', '--recovery-key-file', keyFile()]);
    expect(refused.exitCode).toBe(3);
    const hint = treeHint(refused);
    expect(hint).not.toMatch(/forcefsck|reboot/);
    // e2fsck exits 1 when it has corrected the filesystem.
    await follow(hint, { env, exits: (argv) => (argv[0] === 'e2fsck' ? [0, 1] : [0]) });
    expect(armed()).toBe(true);
  });

  it('a Zymkey that does not answer: the doctor it hints looks at the tree', async () => {
    simSetReachable(sim, false);
    try {
      const refused = await arm(['--device', image, '--yes', '--recovery-key-file', keyFile()]);
      expect(refused.exitCode).toBe(3);
      const hint = treeHint(refused);
      const { results } = await follow(hint, { env, exits: () => [0, 1] });
      expect(results[0]?.stdout).toMatch(/Zymkey|zymkey/);
    } finally {
      simSetReachable(sim, true);
    }
  });

  it('--finish where no disk has the planned UUID: the hint names the image; disarming it moves on', async () => {
    expect((await arm(['--device', image, '--yes', '--recovery-key-file', keyFile()])).exitCode).toBe(0);
    const finish = () => zkluks(['encrypt-root', '--finish', '--root', root, '--no-update'], { env });
    const refused = await finish();
    expect(refused.exitCode).toBe(3);
    const hint = treeHint(refused);
    expect(hint).not.toMatch(/reboot/);
    // Not encrypted yet: the second way (disarm) applies.
    await follow(
      hint,
      { branch: 1, values: { DEVICE: image }, env, extra: noUpdate },
      { run: finish, failure: refused },
    );
    expect(armed()).toBe(false);
  });
  it("the doctor's hint for an arming whose cmdline.txt was never switched disarms this tree, then arms it again", async () => {
    expect((await arm(['--device', image, '--yes', '--recovery-key-file', keyFile()])).exitCode).toBe(0);
    writeFileSync(join(root, 'boot/firmware/cmdline.txt'), CMDLINE);
    const doctor = await zkluks(['doctor', '--root', root, '--json'], { env });
    const finding = (JSON.parse(doctor.stdout) as Diagnosis).findings.find(
      (f) => f.id === 'encryption.arming-incomplete',
    );
    expect(finding, doctor.stdout).toBeDefined();
    const hint = finding?.hint ?? '';
    expect(hint).not.toMatch(/reboot|lsblk/);
    // The arming it names asks for the recovery key to be confirmed: no terminal here, so it says how.
    const { results } = await follow(hint, {
      values: { DEVICE: image },
      env,
      extra: noUpdate,
      exits: (argv) => (argv.includes('--disarm') ? [0] : [2]),
    });
    expect(armed()).toBe(false);
    expect(hintOf(results[1] ?? results[0]!)).toContain('--yes');
  });
});
