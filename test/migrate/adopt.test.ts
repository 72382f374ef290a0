// zkluks adopt on a Pi staged the way Zymbit's mk_encr_sd_rfs.sh leaves it: recovery key first, a
// zkluks Zymkey slot, the zkluks keyscript and the distro's kernel hook, the images checked, and —
// only with --remove-old — Zymbit's slot and key.bin.lock gone. The planner's refusals are pure.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Diagnosis } from '../../src/doctor/diagnose.ts';
import type { ZkluksError } from '../../src/errors.ts';
import { createRunner } from '../../src/exec.ts';
import { readHeader } from '../../src/keyslot/header.ts';
import { debianKernelHook, readLayout } from '../../src/migrate/adopt/layout.ts';
import { planAdopt, type AdoptState, type AdoptStep } from '../../src/migrate/adopt/plan.ts';
import { opens } from '../helpers/luks.ts';
import { bootPaths } from './boot-paths.ts';
import { buildZymbitPi, ZYMBIT_CRYPTTAB, ZYMBIT_POSTINST, type ZymbitPi } from './zymbit-pi.ts';

/** The steps of a full adoption up to the initramfs rebuild, recovery key first. */
const UP_TO_THE_REBUILD = [
  'recovery-add',
  'enroll',
  'verify-zymkey',
  'keep',
  'keep',
  'keep',
  'install-boot-files',
  'restore-kernel-hook',
  'rebuild-initramfs',
];

let pi: ZymbitPi | undefined;
afterEach(() => {
  pi?.cleanup();
  pi = undefined;
});

const runner = createRunner();

async function slots(p: ZymbitPi) {
  const h = await readHeader(runner, p.volume);
  return {
    slots: h.keyslots.map((k) => k.id),
    tokens: h.tokens.map((t) => `${t.type}:${t.keyslots.join(',')}`),
  };
}

describe('zkluks adopt (--root tier)', () => {
  it('refuses a layout it does not fully recognise, naming what it found, and changes nothing', async () => {
    pi = await buildZymbitPi();
    pi.file('/etc/kernel/postinst.d/initramfs-tools', debianKernelHook(), 0o755);
    const before = await slots(pi);
    const r = await pi.zkluks(['adopt', '--root', pi.root, '--yes']);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(
      /missing \/etc\/kernel\/postinst\.d\/initramfs-tools calling update_encr_initrd/,
    );
    expect(r.stderr).toMatch(/Found: .*'cryptrfs' with keyscript \/lib\/cryptsetup\/scripts\/zk_get_key/);
    expect(await slots(pi)).toEqual(before);
    expect(pi.read('/etc/crypttab')).toBe(ZYMBIT_CRYPTTAB);
  });

  it('--dry-run prints the plan, recovery key first, and changes nothing', async () => {
    pi = await buildZymbitPi();
    const r = await pi.zkluks(['adopt', '--root', pi.root, '--dry-run', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { changed: boolean; plan: { steps: Array<{ kind: string }> } };
    expect(out.changed).toBe(false);
    expect(out.plan.steps.map((s) => s.kind)).toEqual([
      ...UP_TO_THE_REBUILD,
      'switch-config-txt',
      'verify-boot',
    ]);
    expect(await slots(pi)).toEqual({ slots: [0], tokens: [] });
    expect(pi.read('/etc/kernel/postinst.d/initramfs-tools')).toBe(ZYMBIT_POSTINST);
  });

  it('adopts end to end, keeps the originals, reports the old slot, and --remove-old finishes', async () => {
    pi = await buildZymbitPi();
    const configBefore = pi.read('/boot/firmware/config.txt');
    const file = join(pi.dir, 'recovery.txt');
    const r = await pi.zkluks(['adopt', '--root', pi.root, '--yes', '--recovery-key-file', file]);
    expect(r.exitCode, r.stderr).toBe(0);
    const recovery = readFileSync(file, 'utf8');
    // Recovery key first (slot 1), then the zkluks Zymkey slot (2); Zymbit's slot 0 is kept.
    expect(await slots(pi)).toEqual({ slots: [0, 1, 2], tokens: ['zkluks-recovery:1', 'zkluks-zymkey:2'] });
    expect(await opens(pi.volume, recovery, 1)).toBe(true);
    expect(await opens(pi.volume, pi.key, 0)).toBe(true);
    expect(pi.read('/etc/crypttab')).toMatch(
      new RegExp(
        `^cryptrfs UUID=${pi.uuid} none luks,initramfs,.*keyscript=/lib/cryptsetup/scripts/zkluks`,
        'm',
      ),
    );
    expect(pi.read('/etc/kernel/postinst.d/initramfs-tools')).toBe(debianKernelHook());
    expect(pi.read('/boot/firmware/config.txt')).not.toMatch(/initramfs initrd\.img/);
    expect(pi.read('/boot/firmware/config.txt')).toMatch(/^auto_initramfs=1$/m);
    // The originals are kept, so every change can be undone by hand.
    expect(pi.read('/var/lib/zkluks/adopt/etc_crypttab')).toBe(ZYMBIT_CRYPTTAB);
    expect(pi.read('/var/lib/zkluks/adopt/etc_kernel_postinst.d_initramfs-tools')).toBe(ZYMBIT_POSTINST);
    expect(pi.read('/var/lib/zkluks/adopt/boot_firmware_config.txt')).toBe(configBefore);
    const boot = await bootPaths(pi, recovery);
    expect(boot.new, boot.detail).toBe(true);
    expect(boot.image).toBe('/boot/firmware/initramfs8');

    const doctor = await pi.zkluks(['doctor', '--root', pi.root, '--json']);
    const d = JSON.parse(doctor.stdout) as Diagnosis;
    const old = d.findings.find((f) => f.id === 'luks.adopted-old-slot');
    expect(old?.summary).toMatch(/adopted from Zymbit's layout, old slot still present: slot 0/i);
    expect(old?.hint).toContain(`zkluks adopt --remove-old --root ${pi.root}`);
    expect(d.findings.map((f) => f.id)).not.toContain('crypttab.zymbit-keyscript');

    const again = await pi.zkluks(['adopt', '--root', pi.root, '--yes']);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^unchanged: .*adopted/);

    // The finishing command the doctor named, followed as written (plus --yes: no terminal here).
    const finish = (old?.hint ?? '').replace(/^.*: zkluks /, '').split(' ');
    const done = await pi.zkluks([...finish, '--yes']);
    expect(done.exitCode, done.stderr).toBe(0);
    expect(await slots(pi)).toEqual({ slots: [1, 2], tokens: ['zkluks-recovery:1', 'zkluks-zymkey:2'] });
    expect(pi.exists('/var/lib/zymbit/key.bin.lock')).toBe(false);
    expect((await pi.zkluks(['verify', pi.volume])).exitCode).toBe(0);
    expect(await opens(pi.volume, recovery)).toBe(true);
    const after = JSON.parse((await pi.zkluks(['doctor', '--root', pi.root, '--json'])).stdout) as Diagnosis;
    expect(after.findings.map((f) => f.id)).not.toContain('luks.adopted-old-slot');
  }, 300_000);
});

describe('the adopt planner', () => {
  const layout = (over: Partial<ReturnType<typeof readLayout>> = {}) => ({
    root: '/',
    entry: { name: 'cryptrfs', source: '/dev/mmcblk0p2', keyFile: '/etc/cryptroot/key.bin', options: [] },
    entryKind: 'zymbit' as const,
    lockPresent: true,
    kernelHook: 'zymbit' as const,
    kernelHookDpkgMd5: null,
    raspiFirmware: true,
    configTxt: '/boot/firmware/config.txt',
    configText: 'initramfs initrd.img followkernel\n',
    zymbitInitramfsLine: true,
    kept: { crypttab: false, kernelHook: false, configTxt: false },
    started: false,
    found: ['what was found'],
    ...over,
  });
  const state = (over: Partial<AdoptState> = {}): AdoptState => ({
    layout: layout(),
    volume: '/dev/mmcblk0p2',
    oldSlot: 0,
    slots: [0],
    hasRecovery: false,
    zymkeyVerified: false,
    hasZymkeyToken: false,
    bootVerified: false,
    ...over,
  });
  const opts = { escrow: null, removeOld: false };

  it('refuses without the sealed key, without raspi-firmware for the single image, or another dpkg hook', () => {
    expect(() => planAdopt(state({ layout: layout({ lockPresent: false }) }), opts)).toThrow(
      /missing \/var\/lib\/zymbit\/key\.bin\.lock\. Found: what was found/,
    );
    expect(() => planAdopt(state({ layout: layout({ raspiFirmware: false }) }), opts)).toThrow(
      /raspi-firmware is not installed/,
    );
    expect(() => planAdopt(state({ layout: layout({ kernelHookDpkgMd5: 'f'.repeat(32) }) }), opts)).toThrow(
      /dpkg records initramfs-tools/,
    );
    expect(() => planAdopt(state({ oldSlot: null }), opts)).toThrow(/opens no keyslot/);
  });

  it('the recovery add hinted for want of an authorizing key keeps the --escrow and the command adopt was given', () => {
    const started = layout({ started: true, kept: { crypttab: true, kernelHook: false, configTxt: false } });
    const again = 'zkluks adopt /dev/mmcblk0p2 --escrow age1xyz --backend sim';
    const error = (() => {
      try {
        planAdopt(state({ layout: started, oldSlot: null }), { ...opts, escrow: 'age1xyz', again });
      } catch (e) {
        return e as ZkluksError;
      }
      return null;
    })();
    expect(error?.message).toMatch(/a recovery key is still to be added, and no key authorizes it/);
    expect(error?.hint).toBe(
      `zkluks recovery add /dev/mmcblk0p2 --unlock-key-file FILE --escrow age1xyz, then ${again} (again)`,
    );
    // With the recovery key there, the Zymkey slot is what is left: enrolled with that key, never a
    // second recovery add that would only come back here.
    expect(() =>
      planAdopt(state({ layout: started, oldSlot: null, hasRecovery: true }), { ...opts, again }),
    ).toThrow(
      expect.objectContaining({
        hint: `zkluks enroll /dev/mmcblk0p2 --unlock-key-file FILE --no-recovery-key (FILE: the recovery key), then ${again} (again)`,
      }),
    );
  });

  it('a re-run plans only what is left, and removes the old slot before key.bin.lock', () => {
    const started = layout({
      entryKind: 'zkluks',
      kernelHook: 'distro',
      zymbitInitramfsLine: false,
      started: true,
      kept: { crypttab: true, kernelHook: true, configTxt: true },
    });
    const s = state({ layout: started, hasRecovery: true, zymkeyVerified: true, hasZymkeyToken: true });
    expect(planAdopt({ ...s, bootVerified: true }, opts).unchanged).toMatch(/adopted/);
    expect(planAdopt(s, opts).steps.map((x) => x.kind)).toEqual([
      'verify-zymkey',
      'install-boot-files',
      'rebuild-initramfs',
      'verify-boot',
    ]);
    expect(planAdopt({ ...s, bootVerified: true }, { ...opts, removeOld: true }).steps).toEqual([
      { kind: 'verify-zymkey' },
      { kind: 'remove-old-slot', slot: 0 },
      { kind: 'remove-key-bin-lock', path: '/var/lib/zymbit/key.bin.lock' },
    ]);
    // The old slot already wiped, key.bin.lock left over: only the file goes.
    expect(
      planAdopt({ ...s, bootVerified: true, oldSlot: null }, { ...opts, removeOld: true }).steps.map(
        (x) => x.kind,
      ),
    ).toEqual(['verify-zymkey', 'remove-key-bin-lock']);
  });

  it('on an SCM no file is in the manifest while adopt rewrites it, the loaded image is added, and a killed run is put back first', () => {
    const sb = {
      manifest: ['cmdline.txt', 'config.txt', 'initrd.img', 'kernel8.img'],
      configFile: 'config.txt',
      images: ['initramfs8'],
      takenOut: [],
    };
    const kinds = (steps: AdoptStep[]) =>
      steps.map((x) =>
        x.kind === 'manifest-in'
          ? `in ${x.files.join(',')} adding ${x.adding.join(',') || '-'}`
          : x.kind === 'manifest-out'
            ? `out ${x.files.join(',')}`
            : x.kind,
      );
    expect(kinds(planAdopt(state({ supervisedBoot: sb }), opts).steps)).toEqual([
      ...UP_TO_THE_REBUILD,
      'in initramfs8 adding initramfs8',
      'out config.txt',
      'switch-config-txt',
      'in config.txt adding -',
      'verify-boot',
    ]);
    // A run killed after taking config.txt out: it goes back in first; the image, now in the
    // manifest, is taken out around the rebuild.
    const killed = {
      ...sb,
      manifest: ['cmdline.txt', 'initramfs8', 'initrd.img', 'kernel8.img'],
      takenOut: ['config.txt'],
    };
    const started = layout({ started: true, kept: { crypttab: true, kernelHook: true, configTxt: true } });
    expect(
      kinds(
        planAdopt(
          state({ layout: started, supervisedBoot: killed, hasRecovery: true, zymkeyVerified: true }),
          opts,
        ).steps,
      ),
    ).toEqual([
      'in config.txt adding -',
      'verify-zymkey',
      'install-boot-files',
      'restore-kernel-hook',
      'out initramfs8',
      'rebuild-initramfs',
      'in initramfs8 adding -',
      'out config.txt',
      'switch-config-txt',
      'in config.txt adding -',
      'verify-boot',
    ]);
  });
});
