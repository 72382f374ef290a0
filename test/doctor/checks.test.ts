// The checks are pure: facts in, findings out. These cover what the scenario tests do not build.
import { describe, expect, it } from 'vitest';
import { diagnose } from '../../src/doctor/diagnose.ts';
import {
  known,
  missing,
  unavailable,
  unreadable,
  type Facts,
  type InitramfsFacts,
} from '../../src/doctor/facts.ts';

function healthy(): Facts {
  return {
    root: '/mnt/pi',
    live: false,
    volume: known({
      name: '/dev/mmcblk0p2',
      path: '/mnt/pi/dev/mmcblk0p2',
      from: 'crypttab',
      crypttabName: 'cryptroot',
    }),
    crypttab: known({
      path: '/etc/crypttab',
      entries: [
        {
          name: 'cryptroot',
          source: '/dev/mmcblk0p2',
          keyFile: 'none',
          options: ['luks', 'initramfs', 'keyscript=/lib/cryptsetup/scripts/zkluks'],
          line: 1,
          keyscriptPresent: true,
        },
      ],
    }),
    header: known({
      uuid: 'u',
      keyslots: [
        { id: 0, kdf: 'argon2id', priority: 'normal' },
        { id: 1, kdf: 'pbkdf2', priority: 'prefer' },
        { id: 2, kdf: 'argon2id', priority: 'normal' },
      ],
      tokens: [
        { id: 0, type: 'zkluks-zymkey', keyslots: [1], valid: true, problem: null, sealed: 'AA==' },
        { id: 1, type: 'zkluks-recovery', keyslots: [2], valid: true, problem: null, slotMatch: 'match' },
      ],
    }),
    initramfs: unavailable('not built'),
    keyMaterial: [],
    kernel: { running: null, installed: ['6.6.51+rpt-rpi-v8'], bootImages: [] },
    firmwareConfig: known({
      path: '/boot/firmware/config.txt',
      lines: ['dtparam=i2c_arm=on', 'auto_initramfs=1'],
    }),
    kernelCmdline: missing('none'),
    zkenv: known({ path: '/var/lib/zymbit/zkenv.conf', wakePin: '516' }),
    piModel: known('Raspberry Pi 4 Model B Rev 1.4'),
    zymbitState: known({ path: '/var/lib/zymbit', files: [] }),
    initramfsModules: known('most'),
    unattendedUpgrades: known(false),
    cpuGovernor: known('performance'),
    kernelPostinstHook: missing('none'),
    zkifc: unavailable('sim'),
    bootRecord: missing('none'),
    zymkey: known({
      backend: 'sim',
      info: known({ model: 'ZYMKEY4i', serial: 'S1', firmware: '1' }),
      binding: known({ mode: 'developer', bound: true }),
      perimeter: known([
        { channel: 0, action: 'none', firstBreach: null },
        { channel: 1, action: 'none', firstBreach: null },
      ]),
      rng: known(true),
      unseal: known({ source: 'token 0', tokenId: 0, opensSlot: true }),
    }),
    i2c: unavailable('not live'),
    led: null,
  };
}

const ids = (facts: Facts) => diagnose(facts).findings.map((f) => `${f.id}:${f.severity}`);

/** The image the firmware loads, for the current kernel, with `more` of its facts. */
const firmwareImage = (more: Partial<InitramfsFacts> = {}) =>
  known<InitramfsFacts>({
    image: '/boot/firmware/initramfs8',
    chosenBecause: 'auto',
    files: [],
    kernelVersions: ['6.6.51+rpt-rpi-v8'],
    zymbitState: [],
    ...more,
  });

describe('doctor checks', () => {
  it('finds nothing wrong in healthy facts', () => {
    expect(ids(healthy()).filter((i) => /:(warning|error)$/.test(i))).toEqual([
      'initramfs.image-unreadable:warning',
    ]);
  });

  it('survives every source missing at once', () => {
    const none: Facts = {
      ...healthy(),
      volume: missing('no crypttab'),
      crypttab: missing('no crypttab'),
      header: unavailable('no volume'),
      initramfs: missing('no image'),
      firmwareConfig: missing('no config.txt'),
      zkenv: missing('no zkenv'),
      piModel: missing('no model'),
      zymbitState: missing('none'),
      initramfsModules: missing('none'),
      unattendedUpgrades: missing('no dpkg'),
      cpuGovernor: missing('no sys'),
      zymkey: unreadable('cannot open the port'),
      kernel: { running: null, installed: [], bootImages: [] },
    };
    const d = diagnose(none);
    expect(d.findings.length).toBeGreaterThan(0);
    expect(ids(none)).toEqual(
      expect.arrayContaining([
        'zymkey.not-asked:warning',
        'crypttab.missing:warning',
        'luks.no-volume:warning',
      ]),
    );
  });

  it("for a --root tree without config.txt, names the tree's boot partition and the doctor with --root", () => {
    const f = diagnose({ ...healthy(), firmwareConfig: missing('no config.txt') }).findings.find(
      (x) => x.id === 'firmware.config-missing',
    );
    expect(f?.hint).toBe(
      'mount the boot partition at /mnt/pi/boot/firmware (or /mnt/pi/boot), then zkluks doctor --root /mnt/pi',
    );
  });

  it('asks for the Pi 5 rev 1.0 wake pin on kernel 6.6 and flags a 6.6 number on an older kernel', () => {
    const f = healthy();
    f.zkenv = known({ path: '/var/lib/zymbit/zkenv.conf', wakePin: null });
    f.piModel = known('Raspberry Pi 5 Model B Rev 1.0');
    expect(diagnose(f).findings.find((x) => x.id === 'i2c.wake-pin-unset')?.hint).toContain(
      'ZK_GPIO_WAKE_PIN=575',
    );
    const old = healthy();
    old.kernel = { running: null, installed: ['6.1.21-v8+'], bootImages: [] };
    expect(ids(old)).toContain('i2c.wake-pin-wrong:warning');
  });

  it('flags 1-Wire on GPIO4 but not on another pin', () => {
    const f = healthy();
    f.firmwareConfig = known({
      path: '/boot/firmware/config.txt',
      lines: ['dtparam=i2c_arm=on', 'auto_initramfs=1', 'dtoverlay=w1-gpio'],
    });
    expect(ids(f)).toContain('firmware.one-wire-gpio4:error');
    f.firmwareConfig = known({
      path: '/boot/firmware/config.txt',
      lines: ['dtparam=i2c_arm=on', 'auto_initramfs=1', 'dtoverlay=w1-gpio,gpiopin=17'],
    });
    expect(ids(f)).not.toContain('firmware.one-wire-gpio4:error');
  });

  it('warns about MODULES=dep, unattended-upgrades, the ondemand governor and a stopped zkifc', () => {
    const f = healthy();
    f.initramfs = firmwareImage();
    f.initramfsModules = known('dep');
    f.unattendedUpgrades = known(true);
    f.cpuGovernor = known('ondemand');
    f.zymkey = known({ ...(f.zymkey.ok ? f.zymkey.value : ({} as never)), backend: 'zymbit' });
    f.zkifc = known({ activeState: 'failed', journal: ['zkifc[412]: i2c transfer timed out'] });
    const d = diagnose(f);
    expect(ids(f)).toEqual(
      expect.arrayContaining([
        'initramfs.modules-dep:warning',
        'initramfs.unattended-upgrades:warning',
        'i2c.cpu-governor:warning',
        'zymkey.zkifc-inactive:warning',
      ]),
    );
    expect(d.findings.find((x) => x.id === 'zymkey.zkifc-inactive')?.evidence).toEqual([
      'journal: zkifc[412]: i2c transfer timed out',
    ]);
  });

  it('explains an unreachable module and a key the slot rejects', () => {
    const f = healthy();
    const z = f.zymkey.ok ? f.zymkey.value : (undefined as never);
    f.zymkey = known({
      ...z,
      unseal: unreadable('no answer on I2C', 'unreachable'),
      rng: unreadable('no answer', 'unreachable'),
    });
    expect(ids(f)).toContain('zymkey.unreachable:error');
    f.zymkey = known({ ...z, unseal: known({ source: 'token 0', tokenId: 0, opensSlot: false }) });
    expect(ids(f)).toContain('zymkey.key-rejected:error');
  });

  it('names a self-destruct from the LED alone when the module is in production mode', () => {
    const f = healthy();
    const z = f.zymkey.ok ? f.zymkey.value : (undefined as never);
    f.zymkey = known({
      ...z,
      binding: known({ mode: 'production', bound: true }),
      unseal: unavailable('no sealed key'),
      rng: known(true),
    });
    f.led = '5 slow blinks';
    expect(diagnose(f).verdict.summary).toMatch(/destroyed its key material/);
  });

  it('a hung tool is no reason: with the API silent, the LED the admin reports names the failure', () => {
    const f = healthy();
    const z = f.zymkey.ok ? f.zymkey.value : (undefined as never);
    const silent = unreadable<never>('the API call failed', 'unknown');
    f.zymkey = known({
      ...z,
      info: silent,
      binding: silent,
      perimeter: silent,
      rng: unreadable('zkgrifs gave no answer', 'timeout'),
      unseal: unreadable('zkunlockifs gave no answer', 'timeout'),
    });
    expect(ids(f)).toContain('zymkey.failed:error');
    f.led = '5-slow';
    expect(ids(f)).toContain('zymkey.self-destructed:error');
    f.led = 'off';
    expect(ids(f)).toContain('zymkey.host-mismatch:error');
  });

  it('for a self-destruct with no other keyslot, says a reboot loses the data and gives the in-memory volume key rescue', () => {
    const f = healthy();
    f.header = known({ uuid: 'u', keyslots: [{ id: 0, kdf: 'argon2id', priority: 'normal' }], tokens: [] });
    f.zymbitState = known({ path: '/var/lib/zymbit', files: [{ path: 'key.bin.lock', sha256: 'x' }] });
    const z = f.zymkey.ok ? f.zymkey.value : (undefined as never);
    f.zymkey = known({ ...z, unseal: unreadable('self-destructed', 'self-destructed') });
    const sd = diagnose(f).findings.find((x) => x.id === 'zymkey.self-destructed');
    expect(sd?.summary).toMatch(/no other keyslot opens this volume: after a reboot the data is gone/);
    expect(sd?.hint).toMatch(
      /before any reboot: the volume key is only in memory.*dmsetup table --showkeys cryptroot/,
    );
    expect(sd?.hint).toMatch(/cryptsetup luksAddKey --volume-key-file/);
  });

  it('warns when no keyslot belongs to the Zymkey', () => {
    const f = healthy();
    f.header = known({ uuid: 'u', keyslots: [{ id: 0, kdf: 'argon2id', priority: 'normal' }], tokens: [] });
    const z = f.zymkey.ok ? f.zymkey.value : (undefined as never);
    f.zymkey = known({ ...z, unseal: unavailable('no sealed key') });
    // The path the header was read from: the tree's /dev entry, which a command can open.
    expect(diagnose(f).findings.find((x) => x.id === 'luks.not-enrolled')?.hint).toBe(
      "zkluks enroll '/mnt/pi/dev/mmcblk0p2'",
    );
  });

  it('counts I2C drivers built into the image kernel (modules.builtin) as present', () => {
    const f = healthy();
    const image = (builtinModules: string[] | undefined, files: string[] = []) =>
      firmwareImage({ files, ...(builtinModules ? { builtinModules } : {}) });
    f.initramfs = image(['i2c-dev', 'i2c-bcm2835']);
    expect(ids(f).filter((i) => i.startsWith('initramfs.i2c-modules'))).toEqual([]);
    f.initramfs = image(
      ['i2c-dev'],
      ['usr/lib/modules/6.6.51+rpt-rpi-v8/kernel/drivers/i2c/busses/i2c-bcm2835.ko'],
    );
    expect(ids(f).filter((i) => i.startsWith('initramfs.i2c-modules'))).toEqual([]);
    f.initramfs = image(['ext4']);
    const missing = diagnose(f).findings.find((x) => x.id === 'initramfs.i2c-modules');
    expect(missing?.summary).toMatch(/no i2c-dev and no I2C bus driver \(i2c-bcm2835\) module/);
    expect(missing?.evidence).toContain('modules.builtin lists no I2C driver');
  });

  it("a zkluks-recovery token copied from another volume is not named as this volume's recovery key", () => {
    const f = healthy();
    const recovery = (slotMatch: 'match' | 'mismatch') => ({
      id: 1,
      type: 'zkluks-recovery',
      keyslots: [0],
      valid: true,
      problem: null,
      slotMatch,
    });
    const zymkey = {
      id: 0,
      type: 'zkluks-zymkey',
      keyslots: [1],
      valid: true,
      problem: null,
      sealed: 'AA==',
    };
    const keyslots = [
      { id: 0, kdf: 'argon2id', priority: 'normal' as const },
      { id: 1, kdf: 'pbkdf2', priority: 'prefer' as const },
    ];
    const summary = () => diagnose(f).findings.find((x) => x.id === 'luks.recovery-path')?.summary;
    f.header = known({ uuid: 'u', keyslots, tokens: [zymkey, recovery('match')] });
    expect(summary()).toMatch(/recovery key in slot 0 opens without the Zymkey/);
    f.header = known({ uuid: 'u', keyslots, tokens: [zymkey, recovery('mismatch')] });
    expect(summary()).toBeUndefined();
    expect(ids(f)).toContain('luks.token-foreign:warning');
    expect(ids(f)).toContain('luks.recovery-path-unproven:warning');
  });

  it('a passphrase slot without a token is not a proven recovery path: a warning says what is known and how to test it', () => {
    const f = healthy();
    const keyslots = [
      { id: 0, kdf: 'argon2id', priority: 'normal' as const },
      { id: 1, kdf: 'pbkdf2', priority: 'prefer' as const },
    ];
    const zymkey = {
      id: 0,
      type: 'zkluks-zymkey',
      keyslots: [1],
      valid: true,
      problem: null,
      sealed: 'AA==',
    };
    f.header = known({ uuid: 'u', keyslots, tokens: [zymkey] });
    const d = diagnose(f);
    expect(d.findings.map((x) => x.id)).not.toContain('luks.recovery-path');
    expect(d.findings.map((x) => x.id)).not.toContain('luks.no-recovery-path');
    const w = d.findings.find((x) => x.id === 'luks.recovery-path-unproven');
    expect(w?.severity).toBe('warning');
    expect(w?.summary).toBe(
      "No proven recovery path: slot 0 has no token: zkluks cannot tell whether a passphrase opens it or a key nobody holds; test a passphrase on it: cryptsetup open --test-passphrase --key-slot 0 '/mnt/pi/dev/mmcblk0p2'.",
    );
    expect(w?.hint).toMatch(/^zkluks recovery add '\/mnt\/pi\/dev\/mmcblk0p2'/);
    // A self-destruct stops at the prompt, where nothing proven waits.
    const z = f.zymkey.ok ? f.zymkey.value : (undefined as never);
    f.zymkey = known({ ...z, unseal: unreadable('self-destructed', 'self-destructed') });
    const sd = diagnose(f).findings.find((x) => x.id === 'zymkey.self-destructed');
    expect(sd?.summary).toMatch(
      /stop at the passphrase prompt, and no recovery key is proven to open the volume: slot 0 has no token/,
    );
    expect(sd?.hint).toMatch(
      /'zkluks recovery add \S+ --unlock-key-file FILE' with the passphrase of slot 0 in FILE/,
    );
  });

  it('a recovery slot of priority ignore is not a recovery path: the boot prompt never tries it', () => {
    const f = healthy();
    const h = f.header.ok ? f.header.value : (undefined as never);
    f.header = known({
      ...h,
      keyslots: h.keyslots.map((k) => (k.id === 2 ? { ...k, priority: 'ignore' as const } : k)),
    });
    const d = diagnose(f);
    expect(d.findings.map((x) => x.id)).not.toContain('luks.recovery-path');
    const w = d.findings.find((x) => x.id === 'luks.recovery-path-unproven');
    expect(w?.summary).toMatch(/slot 2 has priority ignore: the boot prompt never tries it/);
    expect(w?.hint).toMatch(/cryptsetup config --priority normal --key-slot 2 '\/mnt\/pi\/dev\/mmcblk0p2'/);
  });

  it('says of a boot whose unseal hung that the Zymkey did not answer within its time, and what to do', () => {
    const f = healthy();
    const lastBoot = (detail: string) => {
      f.bootRecord = known({
        path: '/run/zkluks/cryptroot.record',
        fields: { method: 'passphrase', reason: 'timeout', tried: '0', elapsed_ms: '10020', detail },
        writtenAt: '2026-12-07T00:00:00Z',
      });
      return diagnose(f).findings.find((x) => x.id === 'last-boot.fallback');
    };
    const unseal = lastBoot(
      'the Zymkey did not answer within 9.8 s: /usr/sbin/zkunlockifs had printed no key at the deadline (ZKLUKS_TIMEOUT=10) and was stopped; type the passphrase or recovery key, and once booted run: zkluks doctor',
    );
    expect(unseal?.summary).toContain('the Zymkey did not answer within 9.8 s');
    expect(unseal?.summary).not.toContain('(timeout)');
    expect(unseal?.hint).toContain('zkluks device probe');
    expect(unseal?.hint).toContain('zkluks initramfs install --timeout');
    const header = lastBoot(
      'the LUKS2 header of /dev/mmcblk0p2 could not be read within 10.0 s: cryptsetup luksDump gave no answer by the deadline (ZKLUKS_TIMEOUT=10) and was stopped',
    );
    expect(header?.summary).toContain('reading the LUKS2 header took longer than 10.0 s');
    expect(header?.hint).toMatch(/^zkluks verify '\S+mmcblk0p2'$/);
  });

  it("the image's token copy: nothing when current, info when the header changed since, a warning when it was altered", () => {
    const f = healthy();
    const csum = 'ab'.repeat(64);
    const withCopy = (copy: { csum: string; token: number; sealed: string }, checksum: string | null) => {
      f.initramfs = firmwareImage({ tokenCopies: [{ name: 'cryptroot', ...copy }] });
      if (f.header.ok) f.header.value.checksum = checksum;
      return ids(f).filter((i) => i.startsWith('initramfs.token-copy'));
    };
    expect(withCopy({ csum, token: 0, sealed: 'AA==' }, csum)).toEqual([]);
    expect(withCopy({ csum, token: 0, sealed: 'AA==' }, 'cd'.repeat(64))).toEqual([
      'initramfs.token-copy-stale:info',
    ]);
    expect(withCopy({ csum, token: 0, sealed: 'QUJD' }, csum)).toEqual([
      'initramfs.token-copy-altered:warning',
    ]);
    expect(withCopy({ csum, token: 3, sealed: 'AA==' }, csum)).toEqual([
      'initramfs.token-copy-altered:warning',
    ]);
    // A token that does not parse has its own findings: the copy is not compared with it.
    if (f.header.ok)
      f.header.value.tokens[0] = { ...f.header.value.tokens[0]!, sealed: undefined, valid: false };
    expect(withCopy({ csum, token: 0, sealed: 'QUJD' }, csum)).toEqual([]);
    if (f.header.ok) f.header.value.tokens[0] = { ...f.header.value.tokens[0]!, sealed: 'AA==', valid: true };
    // No checksum read (the volume is not here): nothing said either way.
    expect(withCopy({ csum, token: 0, sealed: 'QUJD' }, null)).toEqual([]);
    const altered = diagnose(f).findings;
    expect(altered.every((x) => !x.id.startsWith('initramfs.token-copy'))).toBe(true);
    withCopy({ csum, token: 0, sealed: 'QUJD' }, csum);
    const warning = diagnose(f).findings.find((x) => x.id === 'initramfs.token-copy-altered');
    expect(warning?.hint).toBe(
      'chroot /mnt/pi update-initramfs -c -k all, then zkluks initramfs check --root /mnt/pi',
    );
    expect(warning?.evidence.at(-1)).toBe('token 0 holds another sealed key');
  });
});
