// Supervised Boot on a Zymbit SCM, end to end on a staged tree and the simulated module: every
// zkluks change that rewrites a boot file signs it in the SCM's manifest before the next boot, or
// refuses first; without that the simulated module destroys its keys at the next boot, as the real
// one does in production; the doctor reports a manifest the files no longer match, and its hint
// makes the next boot safe. The rebuild is a stand-in for update-initramfs (through chroot).
import { execa } from 'execa';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { simBindLock, simBoot, simInit, simZkifc } from '../../src/device/sim-control.ts';
import { SimZymkey } from '../../src/device/sim.ts';
import { BOOT_PATHS, kernelPostinstVars } from '../../src/initramfs/boot-files.ts';
import { MANIFEST_OUT } from '../../src/initramfs/supervised-boot.ts';
import { render } from '../../src/initramfs/render.ts';
import { readTemplate } from '../../src/initramfs/templates.ts';
import { bundle, nodeBin, zkluks } from '../helpers/cli.ts';
import { luksImage, type TestImage } from '../helpers/luks.ts';
import { follow } from '../hints/follow.ts';
import { buildZymbitPi, type ZymbitPi } from '../migrate/zymbit-pi.ts';
import { plainRootImage, stagePiTree } from '../migrate/encrypt-root-fixture.ts';
import { simScmAddOrUpdate, simScmBootDir, simScmManifest, simScmRemove } from '../../src/device/sim-scm.ts';

/**
 * Zymbit's layout on a Pi with an SCM in production mode, its manifest holding the boot files
 * Zymbit's own set-up signs.
 */
async function zymbitScmPi(): Promise<ZymbitPi> {
  const pi = await buildZymbitPi({ model: 'SCM' });
  simScmBootDir(pi.simState, join(pi.root, 'boot/firmware'));
  for (const f of ['cmdline.txt', 'config.txt', 'initrd.img', 'kernel8.img'])
    simScmAddOrUpdate(pi.simState, f);
  simBindLock(pi.simState);
  return pi;
}

/** `zkluks adopt` on that Pi, confirmed, its recovery key written to `keyFile` in the Pi's directory. */
const adoptArgs = (pi: ZymbitPi, keyFile: string) => [
  'adopt',
  '--root',
  pi.root,
  '--yes',
  '--recovery-key-file',
  join(pi.dir, keyFile),
];

/** A staged Pi tree (under W/pi) with an SCM simulator (W/sim-pi) and a plain root image to encrypt. */
async function scmPiWithPlainRoot(): Promise<{ pi: string; image: string; sim: string }> {
  const pi = join(W, 'pi');
  mkdirSync(pi);
  stagePiTree(pi);
  const image = (await plainRootImage(W, { sizeMiB: 64, fsMiB: 64, dataMiB: 4 })).path;
  const sim = join(W, 'sim-pi');
  simInit(sim, { model: 'SCM', boot: join(pi, 'boot/firmware') });
  return { pi, image, sim };
}

// The stand-in for `chroot ROOT update-initramfs …`: writes a new /boot/initrd.img (different bytes
// every time) listing what a real build would put in; lsinitramfs lists it.
const CHROOT = `#!/bin/sh
root=$1; shift
[ "$1" = update-initramfs ] || exit 64
{
	[ -e "$root/lib/cryptsetup/scripts/zkluks" ] && echo lib/cryptsetup/scripts/zkluks
	printf '%s\\n' usr/sbin/zkunlockifs var/lib/zymbit/zkenv.conf etc/zkluks/boot.conf \\
		lib/modules/6.12.25/kernel/drivers/i2c/i2c-dev.ko lib/cryptsetup/askpass sbin/cryptsetup
	echo "# built $(od -An -N8 -tx1 /dev/urandom | tr -d ' \\n')"
} >"$root/boot/initrd.img.new" && mv "$root/boot/initrd.img.new" "$root/boot/initrd.img"
`;
const LSINITRAMFS = `#!/bin/sh\ngrep -v '^#' "$1"\n`;

let W: string;
let root: string;
let state: string;
let bin: string;
let volume: TestImage;
let env: Record<string, string>;
const key = Buffer.alloc(32, 9);

beforeEach(async () => {
  W = mkdtempSync(join(tmpdir(), 'zkluks-scm-'));
  root = join(W, 'root');
  state = join(W, 'state');
  bin = join(W, 'bin');
  for (const d of ['etc', 'usr/sbin', 'var/lib/zymbit', 'boot'])
    mkdirSync(join(root, d), { recursive: true });
  mkdirSync(bin);
  writeFileSync(join(root, 'usr/sbin/zkunlockifs'), '#!/bin/sh\nexit 1\n');
  chmodSync(join(root, 'usr/sbin/zkunlockifs'), 0o755);
  writeFileSync(join(root, 'var/lib/zymbit/zkenv.conf'), 'ZK_GPIO_WAKE_PIN=516\n');
  writeFileSync(join(root, 'boot/config.txt'), 'dtparam=i2c_arm=on\ninitramfs initrd.img followkernel\n');
  writeFileSync(join(root, 'boot/cmdline.txt'), 'console=tty1 root=/dev/mapper/cryptroot rootwait\n');
  writeFileSync(join(root, 'boot/kernel8.img'), 'kernel 6.12.25\n');
  writeFileSync(join(root, 'boot/initrd.img'), '# as shipped\n');
  writeFileSync(join(bin, 'chroot'), CHROOT);
  writeFileSync(join(bin, 'lsinitramfs'), LSINITRAMFS);
  for (const f of ['chroot', 'lsinitramfs']) chmodSync(join(bin, f), 0o755);
  volume = await luksImage();
  await execa('cryptsetup', ['token', 'import', volume.path], {
    input: JSON.stringify({ type: 'zkluks-zymkey', keyslots: ['0'], version: 1, sealed: 'AAAA' }),
  });
  writeFileSync(join(root, 'etc/crypttab'), `cryptroot ${volume.path} none luks\n`);
  // An SCM as shipped (its image's boot files signed), bound for production: a failure destroys.
  simInit(state, { model: 'SCM', boot: join(root, 'boot') });
  simBindLock(state);
  env = { PATH: `${bin}:${process.env.PATH}`, ZKLUKS_BACKEND: 'sim', ZKLUKS_SIM_STATE: state };
});
afterEach(() => rmSync(W, { recursive: true, force: true }));

const sealKey = () => new SimZymkey(state).seal(key);
const unsealed = async (blob: Buffer) => (await new SimZymkey(state).unseal(blob)).equals(key);
const install = () => zkluks(['initramfs', 'install', volume.path, '--root', root], { env });
const rebuildByHand = () => execa(join(bin, 'chroot'), [root, 'update-initramfs', '-u', '-k', 'all']);
const initrd = () => readFileSync(join(root, 'boot/initrd.img'), 'utf8');

describe('Supervised Boot (SCM)', () => {
  it('initramfs install signs the rebuilt initrd.img before the next boot: the boot verifies and the keys survive', async () => {
    const blob = await sealKey();
    const r = await install();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(initrd()).toContain('lib/cryptsetup/scripts/zkluks');
    expect(r.stderr).toContain("supervised boot: signed initrd.img in the SCM's manifest");
    expect(existsSync(join(root, BOOT_PATHS.supervisedBootRecord))).toBe(true);
    const boot = simBoot(state);
    expect(boot.supervisedBoot).toMatchObject({ result: 'verified', failed: [] });
    expect(await unsealed(blob)).toBe(true);

    // remove rebuilds too, and signs again.
    const rm = await zkluks(['initramfs', 'remove', volume.path, '--root', root], { env });
    expect(rm.exitCode, rm.stderr).toBe(0);
    expect(initrd()).not.toContain('lib/cryptsetup/scripts/zkluks');
    expect(simBoot(state).supervisedBoot.result).toBe('verified');
    expect(await unsealed(blob)).toBe(true);
  });

  it('sim scm add and sim boot: the admin side of the simulated SCM', async () => {
    await rebuildByHand();
    const add = await zkluks(['sim', 'scm', 'add', 'initrd.img'], { env });
    expect(add.exitCode, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/supervised boot {2}policy destroy, 4 file\(s\) in the manifest/);
    const boot = await zkluks(['sim', 'boot', '--json'], { env });
    expect(boot.exitCode, boot.stderr).toBe(0);
    expect(JSON.parse(boot.stdout)).toMatchObject({ supervisedBoot: { result: 'verified' } });
  });

  it('the same rebuild without signing (the model): the next boot destroys every key', async () => {
    const blob = await sealKey();
    await rebuildByHand();
    const boot = simBoot(state);
    expect(boot.supervisedBoot).toMatchObject({
      result: 'destroyed',
      failed: [{ file: 'initrd.img', why: 'changed' }],
    });
    await expect(new SimZymkey(state).unseal(blob)).rejects.toThrow(/self-destructed|Supervised Boot/);
  });

  it('refuses with exit 3, before changing anything, when the manifest cannot be read (zkifc stopped)', async () => {
    const before = initrd();
    simZkifc(state, 'stopped');
    const r = await install();
    expect(r.exitCode, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/Refusing to install the boot files: this Pi has a Zymbit SCM/);
    expect(r.stderr).toMatch(
      /hint: systemctl start zkifc, then run it again;.*add_or_update_supervised_boot_file\("initrd.img", 15\)/,
    );
    expect(initrd()).toBe(before);
    expect(readFileSync(join(root, 'etc/crypttab'), 'utf8')).toBe(`cryptroot ${volume.path} none luks\n`);
    simZkifc(state, 'running');
    expect(simBoot(state).supervisedBoot.result).toBe('verified');
  });

  it('install --no-update names the command that signs the image after the rebuild', async () => {
    const r = await zkluks(['initramfs', 'install', volume.path, '--root', root, '--no-update'], { env });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `sign what changed before any reboot: zkluks supervised-boot update initrd.img --root ${root}`,
    );
  });

  it('doctor reports a manifest that no longer matches the files on disk; its hint makes the next boot safe', async () => {
    const blob = await sealKey();
    expect((await install()).exitCode).toBe(0);
    const doctor = async () => {
      const r = await zkluks(['doctor', volume.path, '--root', root, '--json'], { env });
      return JSON.parse(r.stdout) as {
        findings: { id: string; severity: string; summary: string; hint: string }[];
      };
    };
    expect((await doctor()).findings.map((f) => f.id)).not.toContain('supervised-boot.changed');

    await rebuildByHand();
    const found = (await doctor()).findings.find((f) => f.id === 'supervised-boot.changed');
    expect(found?.severity).toBe('error');
    expect(found?.summary).toMatch(/\/boot\/initrd.img changed since it was signed/);
    expect(found?.hint).toMatch(new RegExp(`^zkluks supervised-boot update initrd.img --root ${root} `));
    await follow(found?.hint ?? '', { env });

    expect((await doctor()).findings.find((f) => f.id === 'supervised-boot.changed')).toBeUndefined();
    expect(simBoot(state).supervisedBoot.result).toBe('verified');
    expect(await unsealed(blob)).toBe(true);
  });

  it("the kernel hook signs the files a kernel's installation changed", async () => {
    const blob = await sealKey();
    expect((await install()).exitCode).toBe(0);
    // The hook as installed, with its record under the staged tree and zkluks working on that tree.
    const hook = join(W, 'zz-zkluks');
    const vars = { ...kernelPostinstVars({ zkunlockifs: '/usr/sbin/zkunlockifs' }) };
    vars.SB_RECORD = join(root, BOOT_PATHS.supervisedBootRecord);
    vars.BOOT_DIR = join(root, 'boot');
    writeFileSync(hook, render(readTemplate('kernel-postinst'), vars));
    writeFileSync(join(bin, 'zkluks'), `#!/bin/sh\nexec '${nodeBin}' '${bundle}' "$@" --root '${root}'\n`);
    writeFileSync(
      join(bin, 'update-initramfs'),
      `#!/bin/sh\nexec '${join(bin, 'chroot')}' '${root}' update-initramfs "$@"\n`,
    );
    for (const f of ['zkluks', 'update-initramfs']) chmodSync(join(bin, f), 0o755);
    // The kernel package replaced the kernel; its initramfs hook built an image without ours.
    writeFileSync(join(root, 'boot/kernel8.img'), 'kernel 6.12.34\n');
    writeFileSync(join(root, 'boot/initrd.img'), '# built by the distribution\n');
    const r = await execa('sh', [hook, '6.12.34', join(root, 'boot/vmlinuz-6.12.34')], {
      env: { ...env },
      reject: false,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    // zkluks speaks on stderr in the hook: run-parts output is the kernel package's.
    expect(r.stderr).toContain('signed initrd.img, kernel8.img');
    expect(simBoot(state).supervisedBoot.result).toBe('verified');
    expect(await unsealed(blob)).toBe(true);
  });

  it('the kernel hook says DO NOT REBOOT when it cannot sign', async () => {
    expect((await install()).exitCode).toBe(0);
    const hook = join(W, 'zz-zkluks');
    const vars = { ...kernelPostinstVars({ zkunlockifs: '/usr/sbin/zkunlockifs' }) };
    vars.SB_RECORD = join(root, BOOT_PATHS.supervisedBootRecord);
    writeFileSync(hook, render(readTemplate('kernel-postinst'), vars));
    writeFileSync(join(bin, 'zkluks'), `#!/bin/sh\nexec '${nodeBin}' '${bundle}' "$@" --root '${root}'\n`);
    chmodSync(join(bin, 'zkluks'), 0o755);
    writeFileSync(join(root, 'boot/kernel8.img'), 'kernel 6.12.34\n');
    simZkifc(state, 'stopped');
    const r = await execa('sh', [hook, '6.12.34'], { env: { ...env }, reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/DO NOT REBOOT before 'zkluks supervised-boot update --changed' succeeds/);
  });

  it("adopt on an SCM signs the config.txt it switches: the next boot verifies and Zymbit's sealed key still unseals", async () => {
    const pi = await zymbitScmPi();
    try {
      const lock = readFileSync(pi.lock);
      const r = await pi.zkluks(adoptArgs(pi, 'recovery.txt'));
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toContain("supervised boot: signed config.txt in the SCM's manifest");
      expect(simBoot(pi.simState).supervisedBoot.result).toBe('verified');
      expect((await new SimZymkey(pi.simState).unseal(lock)).equals(pi.key)).toBe(true);
      // The image auto_initramfs=1 loads is in the manifest: the SCM goes on verifying the initramfs.
      expect(r.stdout).toContain("done: add initramfs8 to the SCM's Supervised Boot manifest");
      expect(simScmManifest(pi.simState)).toEqual(expect.arrayContaining(['config.txt', 'initramfs8']));
      const check = await pi.zkluks(['initramfs', 'check', '--root', pi.root]);
      expect(check.stdout + check.stderr).not.toContain("not in the SCM's Supervised Boot manifest");
      expect(pi.exists('/var/lib/zkluks/adopt/supervised-boot-out')).toBe(false);
    } finally {
      pi.cleanup();
    }
  }, 120_000);

  it('adopt run again on an SCM adopted without the loaded image in its manifest adds it, and changes nothing else', async () => {
    const pi = await zymbitScmPi();
    try {
      expect((await pi.zkluks(adoptArgs(pi, 'rk'))).exitCode).toBe(0);
      simScmRemove(pi.simState, 'initramfs8');
      const config = pi.read('/boot/firmware/config.txt');
      const again = await pi.zkluks(adoptArgs(pi, 'rk2'));
      expect(again.exitCode, again.stderr).toBe(0);
      const done = again.stdout.split('\n').filter((l) => l.includes('done:'));
      expect(done).toEqual([
        expect.stringContaining('verify the zkluks Zymkey keyslot opens'),
        expect.stringContaining("add initramfs8 to the SCM's Supervised Boot manifest"),
      ]);
      expect(simScmManifest(pi.simState)).toContain('initramfs8');
      expect(pi.read('/boot/firmware/config.txt')).toBe(config);
      expect(simBoot(pi.simState).supervisedBoot.result).toBe('verified');
    } finally {
      pi.cleanup();
    }
  }, 120_000);

  it('a file an interrupted adopt left out of the manifest is a warning in check and doctor; adopt, as hinted, signs it back in', async () => {
    const pi = await zymbitScmPi();
    try {
      expect((await pi.zkluks(adoptArgs(pi, 'rk'))).exitCode).toBe(0);
      // Killed between taking config.txt out of the manifest and signing it back in.
      simScmRemove(pi.simState, 'config.txt');
      mkdirSync(dirname(join(pi.root, MANIFEST_OUT)), { recursive: true });
      writeFileSync(join(pi.root, MANIFEST_OUT), 'config.txt\n');
      const check = await pi.zkluks(['initramfs', 'check', '--root', pi.root, '--json']);
      const findings = (
        JSON.parse(check.stdout) as { findings: { level: string; message: string; hint?: string }[] }
      ).findings;
      const hinted = `zkluks adopt --root ${pi.root}`;
      expect(findings).toContainEqual(
        expect.objectContaining({
          level: 'warning',
          message: expect.stringMatching(
            /^config\.txt is out of the SCM's Supervised Boot manifest: an adopt that did not finish/,
          ),
          hint: expect.stringContaining(hinted),
        }),
      );
      const doctor = await pi.zkluks(['doctor', '--root', pi.root, '--json']);
      const found = (
        JSON.parse(doctor.stdout) as { findings: { id: string; severity: string; hint: string }[] }
      ).findings;
      expect(found).toContainEqual(
        expect.objectContaining({
          id: 'supervised-boot.taken-out',
          severity: 'warning',
          hint: expect.stringContaining(hinted),
        }),
      );
      // The hint as written, with what a run without a terminal adds: --yes and where the new
      // recovery key goes.
      const hint = found.find((f) => f.id === 'supervised-boot.taken-out')?.hint ?? '';
      await follow(hint, {
        env: pi.env,
        extra: () => ['--yes', '--recovery-key-file', join(pi.dir, 'rk2')],
      });
      expect(simScmManifest(pi.simState)).toContain('config.txt');
      expect(pi.exists(MANIFEST_OUT)).toBe(false);
      expect(simBoot(pi.simState).supervisedBoot.result).toBe('verified');
      const after = await pi.zkluks(['initramfs', 'check', '--root', pi.root]);
      expect(after.stdout + after.stderr).not.toContain('out of the SCM');
    } finally {
      pi.cleanup();
    }
  }, 120_000);

  it('encrypt-root on an SCM signs the cmdline.txt it switches; --disarm signs it back', async () => {
    const { pi, image, sim } = await scmPiWithPlainRoot();
    writeFileSync(join(pi, 'boot/firmware/initramfs8'), '# the image as shipped\n');
    simScmAddOrUpdate(sim, 'initramfs8');
    simBindLock(sim);
    const blob = await new SimZymkey(sim).seal(key);
    const args = ['--root', pi, '--device', image, '--no-update', '--backend', 'sim', '--sim-state', sim];
    const armed = await zkluks(['encrypt-root', ...args, '--yes', '--recovery-key-file', join(W, 'rk.txt')]);
    expect(armed.exitCode, armed.stderr).toBe(0);
    expect(armed.stderr).toContain("supervised boot: signed cmdline.txt in the SCM's manifest");
    // --no-update leaves the rebuild to the admin: the image it changes must be signed after it.
    expect(armed.stderr).toContain(
      `after rebuilding the initramfs, sign what changed before any reboot: zkluks supervised-boot update initramfs8 --root ${pi}`,
    );
    expect(simBoot(sim).supervisedBoot.result).toBe('verified');
    const disarmed = await zkluks(['encrypt-root', ...args, '--disarm']);
    expect(disarmed.exitCode, disarmed.stderr).toBe(0);
    expect(disarmed.stderr).toContain('after rebuilding the initramfs, sign what changed before any reboot');
    expect(simBoot(sim).supervisedBoot.result).toBe('verified');
    expect((await new SimZymkey(sim).unseal(blob)).equals(key)).toBe(true);
  }, 120_000);
});

describe('Supervised Boot (SCM): every --dry-run says what the run would sign, or refuses as the run would', () => {
  const manifestUntouched = () => {
    expect(existsSync(join(root, BOOT_PATHS.supervisedBootRecord))).toBe(false);
    expect(simBoot(state).supervisedBoot.result).toBe('verified');
  };

  it('initramfs install --dry-run names the image it would sign, and changes nothing', async () => {
    const before = initrd();
    const r = await zkluks(['initramfs', 'install', volume.path, '--root', root, '--dry-run'], { env });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      "supervised boot: would sign in the SCM's manifest, right after the change and before any reboot: initrd.img (if the rebuild changes it)",
    );
    const json = await zkluks(['initramfs', 'install', volume.path, '--root', root, '--dry-run', '--json'], {
      env,
    });
    expect(JSON.parse(json.stdout)).toMatchObject({
      dryRun: true,
      supervisedBoot: { scm: true, sign: [{ file: 'initrd.img', because: 'rebuild' }] },
    });
    expect(initrd()).toBe(before);
    manifestUntouched();
  });

  it('initramfs install --dry-run refuses with exit 3 and the fixing command when the manifest cannot be read, as the run does', async () => {
    simZkifc(state, 'stopped');
    const r = await zkluks(['initramfs', 'install', volume.path, '--root', root, '--dry-run'], { env });
    expect(r.exitCode, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/Refusing to install the boot files: this Pi has a Zymbit SCM/);
    expect(r.stderr).toMatch(/hint: systemctl start zkifc, then run it again/);
  });

  it('initramfs install --no-update --dry-run names the command that signs the image after the rebuild', async () => {
    const r = await zkluks(
      ['initramfs', 'install', volume.path, '--root', root, '--no-update', '--dry-run'],
      { env },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `sign what changed before any reboot: zkluks supervised-boot update initrd.img --root ${root}`,
    );
    manifestUntouched();
  });

  it('initramfs remove --dry-run names the image it would sign', async () => {
    expect((await install()).exitCode).toBe(0);
    const before = initrd();
    const r = await zkluks(['initramfs', 'remove', volume.path, '--root', root, '--dry-run'], { env });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/would sign in the SCM's manifest.*: initrd.img \(if the rebuild changes it\)/);
    expect(initrd()).toBe(before);
  });

  it('without an SCM a dry run says nothing of Supervised Boot', async () => {
    const plain = join(W, 'plain-state');
    simInit(plain, { model: 'ZYMKEY4i' });
    const r = await zkluks(['initramfs', 'install', volume.path, '--root', root, '--dry-run', '--json'], {
      env: { ...env, ZKLUKS_SIM_STATE: plain },
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ supervisedBoot: { scm: false, sign: [] } });
  });

  it('adopt --dry-run on an SCM names the config.txt it switches and the image it rebuilds', async () => {
    const pi = await buildZymbitPi({ model: 'SCM' });
    try {
      const boot = join(pi.root, 'boot/firmware');
      simScmBootDir(pi.simState, boot);
      for (const f of ['cmdline.txt', 'config.txt', 'initrd.img', 'kernel8.img'])
        simScmAddOrUpdate(pi.simState, f);
      const r = await pi.zkluks(['adopt', '--root', pi.root, '--dry-run']);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toContain(
        "supervised boot: would sign in the SCM's manifest, right after the change and before any reboot: config.txt, initrd.img (if the rebuild changes it)",
      );
      // The steps the run takes: the loaded image added after the rebuild, config.txt out while rewritten.
      const steps = r.stdout.split('\n').filter((l) => /^ {2}\d+\. /.test(l));
      const at = (text: string) => steps.findIndex((l) => l.includes(text));
      expect(at("add initramfs8 to the SCM's Supervised Boot manifest")).toBeGreaterThan(at('run chroot'));
      expect(at("take config.txt out of the SCM's Supervised Boot manifest")).toBeGreaterThan(
        at("add initramfs8 to the SCM's Supervised Boot manifest"),
      );
      expect(at("replace 'initramfs initrd.img followkernel'")).toBe(
        at("take config.txt out of the SCM's Supervised Boot manifest") + 1,
      );
      expect(steps[at("replace 'initramfs initrd.img followkernel'") + 1]).toContain(
        "sign config.txt in the SCM's Supervised Boot manifest",
      );
      expect(r.stdout).toContain(
        "supervised boot: would add to the SCM's manifest, before config.txt loads it: initramfs8",
      );
      const json = await pi.zkluks(['adopt', '--root', pi.root, '--dry-run', '--json']);
      expect(JSON.parse(json.stdout).supervisedBoot.add).toEqual(['initramfs8']);
      expect(JSON.parse(json.stdout).plan.steps).toEqual(
        expect.arrayContaining([
          { kind: 'manifest-in', files: ['initramfs8'], adding: ['initramfs8'] },
          { kind: 'manifest-out', files: ['config.txt'] },
          { kind: 'manifest-in', files: ['config.txt'], adding: [] },
        ]),
      );
      expect(simScmManifest(pi.simState)).not.toContain('initramfs8');
      simZkifc(pi.simState, 'stopped');
      const refused = await pi.zkluks(['adopt', '--root', pi.root, '--dry-run']);
      expect(refused.exitCode, refused.stderr).toBe(3);
      expect(refused.stderr).toMatch(/Refusing to adopt the boot files: this Pi has a Zymbit SCM/);
    } finally {
      pi.cleanup();
    }
  }, 120_000);

  it('encrypt-root --dry-run on an SCM names the cmdline.txt it switches; --disarm --dry-run the one it restores', async () => {
    const { pi, image, sim } = await scmPiWithPlainRoot();
    simBindLock(sim);
    const args = ['--root', pi, '--device', image, '--backend', 'sim', '--sim-state', sim];
    const dry = await zkluks(['encrypt-root', ...args, '--dry-run']);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(
      /would sign in the SCM's manifest, right after the change and before any reboot: .*cmdline\.txt/,
    );
    expect(simBoot(sim).supervisedBoot.result).toBe('verified');

    const armed = await zkluks([
      'encrypt-root',
      ...args,
      '--no-update',
      '--yes',
      '--recovery-key-file',
      join(W, 'rk.txt'),
    ]);
    expect(armed.exitCode, armed.stderr).toBe(0);
    const disarm = await zkluks(['encrypt-root', ...args, '--no-update', '--disarm', '--dry-run', '--json']);
    expect(disarm.exitCode, disarm.stderr).toBe(0);
    expect(JSON.parse(disarm.stdout)).toMatchObject({
      supervisedBoot: { scm: true, sign: [{ file: 'cmdline.txt', because: 'written' }] },
    });
  }, 120_000);
});

describe('Supervised Boot (SCM): initramfs check reports the manifest against the disk', () => {
  const check = async () => {
    const r = await zkluks(['initramfs', 'check', volume.path, '--root', root, '--json'], { env });
    return {
      exitCode: r.exitCode,
      report: JSON.parse(r.stdout) as {
        ok: boolean;
        supervisedBoot: { status: string; entries?: { file: string; state: string }[] };
        findings: { level: string; message: string; hint?: string }[];
      },
    };
  };

  it('each manifest file matches after install; a rebuild nobody signed fails the check with the command that signs it', async () => {
    const blob = await sealKey();
    expect((await install()).exitCode).toBe(0);
    const good = await check();
    expect(good.exitCode).toBe(0);
    expect(good.report.supervisedBoot.status).toBe('read');
    expect(good.report.supervisedBoot.entries).toContainEqual(
      expect.objectContaining({ file: 'initrd.img', state: 'matches' }),
    );
    const human = await zkluks(['initramfs', 'check', volume.path, '--root', root], { env });
    expect(human.stdout).toContain('manifest   /boot/initrd.img: matches what zkluks signed or saw');

    await rebuildByHand();
    const bad = await check();
    expect(bad.exitCode).toBe(1);
    expect(bad.report.ok).toBe(false);
    expect(bad.report.supervisedBoot.entries).toContainEqual(
      expect.objectContaining({ file: 'initrd.img', state: 'changed' }),
    );
    const found = bad.report.findings.find((f) =>
      /Supervised Boot manifest no longer matches/.test(f.message),
    );
    expect(found?.level).toBe('error');
    expect(found?.message).toMatch(/\/boot\/initrd.img changed since it was signed/);
    expect(found?.hint).toMatch(new RegExp(`^zkluks supervised-boot update initrd.img --root ${root} `));
    await follow(found?.hint ?? '', { env });

    const again = await check();
    expect(again.exitCode).toBe(0);
    expect(again.report.findings.some((f) => /Supervised Boot/.test(f.message))).toBe(false);
    expect(simBoot(state).supervisedBoot.result).toBe('verified');
    expect(await unsealed(blob)).toBe(true);
  });

  it('an image the firmware loads that the manifest leaves out is a warning naming the call that adds it', async () => {
    expect((await install()).exitCode).toBe(0);
    // The firmware now loads initramfs8 (auto_initramfs), which the SCM's manifest does not hold.
    writeFileSync(join(root, 'boot/config.txt'), 'dtparam=i2c_arm=on\nauto_initramfs=1\n');
    writeFileSync(join(root, 'boot/initramfs8'), initrd());
    simScmAddOrUpdate(state, 'config.txt');
    const unsupervised = (r: Awaited<ReturnType<typeof check>>) =>
      r.report.findings.filter((f) => /which is not in the SCM's Supervised Boot manifest/.test(f.message));
    const r = await check();
    expect(unsupervised(r)).toEqual([
      expect.objectContaining({
        level: 'warning',
        message: expect.stringContaining('/boot/initramfs8 (config.txt: auto_initramfs=1 with kernel8.img)'),
        hint: expect.stringContaining('add_or_update_supervised_boot_file("initramfs8", 15)'),
      }),
    ]);
    simScmAddOrUpdate(state, 'initramfs8');
    expect(unsupervised(await check())).toEqual([]);
  });

  it('an unreadable manifest is a warning naming how to read it; without an SCM nothing is said', async () => {
    expect((await install()).exitCode).toBe(0);
    simZkifc(state, 'stopped');
    const r = await check();
    expect(r.report.supervisedBoot.status).toBe('unreadable');
    expect(r.report.findings).toContainEqual(
      expect.objectContaining({
        level: 'warning',
        hint: `systemctl start zkifc, then zkluks initramfs check --root ${root}`,
      }),
    );
    const plain = join(W, 'plain-state');
    simInit(plain, { model: 'ZYMKEY4i' });
    const none = await zkluks(['initramfs', 'check', volume.path, '--root', root, '--json'], {
      env: { ...env, ZKLUKS_SIM_STATE: plain },
    });
    expect(JSON.parse(none.stdout)).toMatchObject({ supervisedBoot: { status: 'none' } });
  });
});
