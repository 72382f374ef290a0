// zkluks encrypt-root as an admin runs it on a staged Raspberry Pi OS tree whose root is a real
// plain ext4 image (--root, --device, --no-update; the simulator stands in for the Zymkey): the
// dry-run, arming (files before and after, byte for byte), each preflight refusal, --disarm and
// --finish.
import { execa } from 'execa';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { simInit, simSetReachable } from '../../src/device/sim-control.ts';
import { SimZymkey } from '../../src/device/sim.ts';
import { parseRecoveryToken, parseZymkeyToken } from '../../src/keyslot/token.ts';
import { zkluks } from '../helpers/cli.ts';
import { addKey, formatLuks } from '../helpers/luks.ts';
import {
  CMDLINE,
  CONFIG_TXT,
  CRYPTTAB,
  FSTAB,
  PART_UUID,
  dpkgStatus,
  plainRootImage,
  stagePiTree,
} from './encrypt-root-fixture.ts';

const W = mkdtempSync(join(tmpdir(), 'zkluks-encrypt-root-'));
const sim = join(W, 'sim');
let image: string;
let root: string;

beforeAll(async () => {
  simInit(sim);
  image = (await plainRootImage(join(W), { sizeMiB: 64, fsMiB: 64, dataMiB: 4 })).path;
});
afterAll(() => rmSync(W, { recursive: true, force: true }));

beforeEach(() => {
  root = mkdtempSync(join(W, 'root-'));
  stagePiTree(root);
});

const simArgs = () => ['--backend', 'sim', '--sim-state', sim];
const arm = (extra: string[] = [], device = image) =>
  zkluks(['encrypt-root', '--root', root, '--device', device, '--no-update', ...simArgs(), ...extra]);

/** Every file under `dir` with its content, for before/after comparisons. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const p = join(rel, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isSymbolicLink()) out[p] = `-> ${readlinkSync(join(dir, p))}`;
      else out[p] = readFileSync(join(dir, p), 'latin1');
    }
  };
  walk('');
  return out;
}

describe('zkluks encrypt-root (arming)', () => {
  it('--dry-run prints every step of the journey, including the boot, and changes nothing', async () => {
    const before = snapshot(root);
    const r = await arm(['--dry-run']);
    expect(r.exitCode, r.stderr).toBe(0);
    for (const text of [
      'now (arming the next boot):',
      'generate the Zymkey key',
      'shown once on the terminal',
      '/etc/zkluks/encrypt-root/keys.sealed (0600)',
      `crypttab: cryptroot UUID=`,
      `last: /boot/firmware/cmdline.txt: root=PARTUUID=${PART_UUID} -> root=/dev/mapper/cryptroot`,
      'at the next boot (in the initramfs):',
      'e2fsck -f -p',
      'resize2fs to 32 MiB',
      'cryptsetup reencrypt --encrypt --reduce-device-size 32M',
      'after a power cut the next boot resumes',
      'at the first boot afterwards:',
      'zkluks encrypt-root --finish',
      'estimated time at boot:',
    ]) {
      expect(r.stdout).toContain(text);
    }
    expect(snapshot(root)).toEqual(before);
  });

  it('arms the next boot: keys only sealed, recovery key to a 0600 file, boot files switched byte-exactly', async () => {
    const keyFile = join(root, '..', `recovery-${Date.now()}.txt`);
    const r = await arm(['--recovery-key-file', keyFile, '--yes', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { uuid: string; name: string; armed: boolean };
    expect(out).toMatchObject({ armed: true, name: 'cryptroot' });
    const key = readFileSync(keyFile, 'utf8');
    expect(key).toMatch(/^([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}$/);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);

    // Only root=, the root line's device and the crypttab line changed; originals kept.
    const mapper = '/dev/mapper/cryptroot';
    expect(readFileSync(join(root, 'boot/firmware/cmdline.txt'), 'utf8')).toBe(
      CMDLINE.replace(`root=PARTUUID=${PART_UUID}`, `root=${mapper}`),
    );
    expect(readFileSync(join(root, 'etc/fstab'), 'utf8')).toBe(
      FSTAB.replace(`PARTUUID=${PART_UUID}  /  `, `${mapper}  /  `),
    );
    expect(readFileSync(join(root, 'boot/firmware/config.txt'), 'utf8')).toBe(CONFIG_TXT);
    expect(readFileSync(join(root, 'etc/crypttab'), 'utf8')).toBe(
      `${CRYPTTAB}cryptroot UUID=${out.uuid} none luks,initramfs,keyscript=/lib/cryptsetup/scripts/zkluks\n`,
    );
    expect(readFileSync(join(root, 'boot/firmware/cmdline.txt.zkluks-orig'), 'utf8')).toBe(CMDLINE);
    expect(readFileSync(join(root, 'etc/zkluks/encrypt-root/orig/fstab'), 'utf8')).toBe(FSTAB);
    expect(readFileSync(join(root, 'etc/zkluks/crypttab.orig'), 'utf8')).toBe(CRYPTTAB);

    // The plan the boot reads, and the boot files.
    const conf = readFileSync(join(root, 'etc/zkluks/encrypt-root/plan.conf'), 'utf8');
    expect(conf).toContain(`ZKLUKS_ENC_UUID=${out.uuid}\n`);
    expect(conf).toContain(`ZKLUKS_ENC_DEVICE=PARTUUID=${PART_UUID}\n`);
    expect(conf).toContain('ZKLUKS_ENC_ZKUNLOCKIFS=/usr/sbin/zkunlockifs\n');
    for (const f of [
      'etc/initramfs-tools/hooks/zkluks-encrypt-root',
      'etc/initramfs-tools/scripts/local-top/zkluks-encrypt-root',
      'lib/cryptsetup/scripts/zkluks',
      'etc/initramfs-tools/hooks/zkluks',
    ]) {
      expect(statSync(join(root, f)).mode & 0o111, f).not.toBe(0);
    }
    expect(
      readlinkSync(
        join(root, 'etc/systemd/system/multi-user.target.wants/zkluks-encrypt-root-finish.service'),
      ),
    ).toBe('/etc/systemd/system/zkluks-encrypt-root-finish.service');
    expect(readFileSync(join(root, 'etc/systemd/system/zkluks-encrypt-root-finish.service'), 'utf8')).toMatch(
      /^ExecStart=\S+ \S+zkluks\.mjs encrypt-root --finish --yes$/m,
    );

    // The keys exist only sealed: the Zymkey opens the bundle to the Zymkey key and the recovery key.
    const sealedPath = join(root, 'etc/zkluks/encrypt-root/keys.sealed');
    expect(statSync(sealedPath).mode & 0o777).toBe(0o600);
    const port = new SimZymkey(sim);
    const bundle = await port.unseal(readFileSync(sealedPath));
    expect(bundle.length).toBe(64 + key.length);
    expect(bundle.subarray(64).toString()).toBe(key);
    const zymkeyKey = bundle.subarray(0, 64);
    const zToken = parseZymkeyToken(
      readFileSync(join(root, 'etc/zkluks/encrypt-root/zymkey-token.json'), 'utf8'),
    );
    expect(zToken.keyslots).toEqual(['1']);
    expect((await port.unseal(Buffer.from(zToken.sealed, 'base64'))).equals(zymkeyKey)).toBe(true);
    const rToken = parseRecoveryToken(
      readFileSync(join(root, 'etc/zkluks/encrypt-root/recovery-token.json'), 'utf8'),
    );
    expect(rToken.keyslots).toEqual(['0']);
    for (const [path, content] of Object.entries(snapshot(root))) {
      expect(content.includes(key), path).toBe(false);
      expect(Buffer.from(content, 'latin1').includes(zymkeyKey), path).toBe(false);
    }
  });

  it('refuses a second arming, and --disarm puts every file back byte for byte', async () => {
    const before = snapshot(root);
    expect((await arm(['--recovery-key-file', join(root, '..', `k-${Date.now()}`), '--yes'])).exitCode).toBe(
      0,
    );
    const again = await arm(['--yes', '--recovery-key-file', join(root, '..', `k2-${Date.now()}`)]);
    expect(again.exitCode).toBe(3);
    expect(again.stderr).toContain('armed: the next boot is already armed to encrypt the root');
    const r = await zkluks(['encrypt-root', '--disarm', '--root', root, '--device', image, '--no-update']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('disarmed');
    expect(snapshot(root)).toEqual(before);
  });

  it('without --yes and without a terminal it refuses to go on unconfirmed and changes nothing', async () => {
    const before = snapshot(root);
    const keyFile = join(root, '..', `unconfirmed-${Date.now()}`);
    const r = await arm(['--recovery-key-file', keyFile]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('Failed to confirm that the recovery key is stored');
    expect(existsSync(keyFile)).toBe(false);
    expect(snapshot(root)).toEqual(before);
  });
});

describe('zkluks encrypt-root preflight refusals (exit 3, reason and fix, nothing changed)', () => {
  const cases: Array<{
    name: string;
    setup: () => Promise<string | void> | string | void;
    expect: string[];
  }> = [
    {
      name: 'the root is already LUKS',
      setup: async () => {
        const p = join(W, `luks-${Date.now()}.img`);
        await execa('truncate', ['-s', '32M', p]);
        await formatLuks(p, 'x');
        return p;
      },
      expect: ['already-luks: ', 'is already LUKS', 'fix: zkluks enroll'],
    },
    {
      name: 'the root is not ext4',
      setup: async () => {
        const p = join(W, `xfs-${Date.now()}.img`);
        await execa('truncate', ['-s', '64M', p]);
        await execa('mkfs.ext2', ['-q', '-F', p]);
        return p;
      },
      expect: ['not-ext4: the root filesystem is ext2, not ext4'],
    },
    {
      name: 'the filesystem has no room for the LUKS2 header',
      setup: async () =>
        (await plainRootImage(mkdtempSync(join(W, 'full-')), { sizeMiB: 48, fsMiB: 48, dataMiB: 24 })).path,
      expect: ['room: the filesystem needs at least', 'remain beside the LUKS2 header', 'fix: free at least'],
    },
    {
      name: 'the filesystem is not clean',
      setup: async () => {
        const p = join(W, `unclean-${Date.now()}.img`);
        cpSync(image, p);
        await execa('debugfs', ['-w', '-R', 'ssv state 0', p]);
        return p;
      },
      expect: ['unclean: the filesystem on', "is 'not clean'", 'fix: e2fsck -f -p '],
    },
    {
      name: 'cryptsetup-initramfs is not installed',
      setup: () =>
        writeFileSync(join(root, 'var/lib/dpkg/status'), dpkgStatus(['cryptsetup', 'initramfs-tools'])),
      expect: ['packages: not installed: cryptsetup-initramfs', 'apt-get install cryptsetup-initramfs, then'],
    },
    {
      name: 'the firmware loads no initramfs',
      setup: () =>
        writeFileSync(join(root, 'boot/firmware/config.txt'), 'dtparam=i2c_arm=on\n#auto_initramfs=1\n'),
      expect: ['initramfs: the firmware loads no initramfs', '/boot/firmware/config.txt'],
    },
    {
      name: 'zkunlockifs is missing',
      setup: () => rmSync(join(root, 'usr/sbin/zkunlockifs')),
      expect: ['zkunlockifs: zkunlockifs is not installed', 'apt-get install zksaapps'],
    },
    {
      name: 'the Zymkey cannot seal and unseal',
      setup: () => {
        simSetReachable(sim, false);
      },
      expect: ['zymkey: the Zymkey did not seal and unseal a test secret', 'fix: zkluks doctor'],
    },
    {
      name: 'fstab has no root line',
      setup: () => writeFileSync(join(root, 'etc/fstab'), 'proc /proc proc defaults 0 0\n'),
      expect: ['fstab: /etc/fstab has no line for /'],
    },
    {
      name: 'cmdline.txt is missing (not a Raspberry Pi boot partition)',
      setup: () => rmSync(join(root, 'boot/firmware/cmdline.txt')),
      expect: ['cmdline: no cmdline.txt in /boot/firmware or /boot'],
    },
  ];
  for (const c of cases) {
    it(`refuses when ${c.name}`, async () => {
      const device = (await c.setup()) ?? image;
      try {
        const before = snapshot(root);
        const r = await arm(['--yes', '--recovery-key-file', join(W, `never-${Date.now()}`)], device);
        expect(r.exitCode, r.stderr).toBe(3);
        expect(r.stderr).toContain('Refusing to encrypt the root filesystem');
        for (const text of c.expect) expect(r.stderr).toContain(text);
        expect(snapshot(root)).toEqual(before);
      } finally {
        simSetReachable(sim, true);
      }
    });
  }
});

describe('zkluks encrypt-root --finish', () => {
  it('refuses while the volume is not encrypted, and removes the leftovers once it is', async () => {
    const keyFile = join(W, `finish-${Date.now()}`);
    const armed = await arm(['--recovery-key-file', keyFile, '--yes', '--json']);
    expect(armed.exitCode, armed.stderr).toBe(0);
    const { uuid } = JSON.parse(armed.stdout) as { uuid: string };
    const dir = join(root, 'etc/zkluks/encrypt-root');

    // What the encrypting boot makes, made here on a copy of the image (no resize2fs: the
    // filesystem is 64 MiB in a 96 MiB file).
    const vol = join(W, `enc-${Date.now()}.img`);
    await execa('truncate', ['-s', '96M', vol]);
    await execa('dd', [`if=${image}`, `of=${vol}`, 'conv=notrunc', 'status=none']);
    const notYet = await zkluks(['encrypt-root', '--finish', '--root', root, '--device', vol, '--no-update']);
    expect(notYet.exitCode).not.toBe(0);
    await execa('cryptsetup', [
      'reencrypt',
      '--encrypt',
      '--batch-mode',
      '--disable-locks',
      '--type',
      'luks2',
      '--reduce-device-size',
      '32M',
      '--uuid',
      uuid,
      '--key-slot',
      '0',
      '--pbkdf',
      'pbkdf2',
      '--pbkdf-force-iterations',
      '1000',
      '--key-file',
      keyFile,
      vol,
    ]);
    const missingTokens = await zkluks([
      'encrypt-root',
      '--finish',
      '--root',
      root,
      '--device',
      vol,
      '--no-update',
    ]);
    expect(missingTokens.exitCode).toBe(3);
    expect(missingTokens.stderr).toContain('token yet');
    for (const [id, f] of [
      ['0', 'zymkey-token.json'],
      ['1', 'recovery-token.json'],
    ] as const) {
      if (id === '0') {
        const bundle = await new SimZymkey(sim).unseal(readFileSync(join(dir, 'keys.sealed')));
        await addKey(vol, readFileSync(keyFile), bundle.subarray(0, 64), 1);
      }
      await execa('cryptsetup', ['token', 'import', '--token-id', id, '--json-file', join(dir, f), vol]);
    }
    const r = await zkluks(['encrypt-root', '--finish', '--root', root, '--device', vol, '--no-update']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`is LUKS2 ${uuid} with a Zymkey keyslot and a recovery keyslot`);
    // The boot's tokens were written before their keyslots existed; --finish records each slot's salt.
    const meta = JSON.parse(
      (await execa('cryptsetup', ['luksDump', '--dump-json-metadata', vol])).stdout,
    ) as {
      keyslots: Record<string, { kdf: { salt: string } }>;
      tokens: Record<string, { type: string; keyslots: string[]; keyslot_salt?: string }>;
    };
    for (const [id, type, slot] of [
      ['0', 'zkluks-zymkey', '1'],
      ['1', 'zkluks-recovery', '0'],
    ] as const) {
      expect(meta.tokens[id], type).toMatchObject({ type, keyslots: [slot] });
      expect(meta.tokens[id]?.keyslot_salt, type).toBe(meta.keyslots[slot]?.kdf.salt);
    }
    expect(r.stdout).toContain("recorded keyslot 0's salt in its zkluks-recovery token 1");
    for (const f of ['plan.conf', 'keys.sealed', 'zymkey-token.json', 'recovery-token.json']) {
      expect(existsSync(join(dir, f)), f).toBe(false);
    }
    expect(existsSync(join(root, 'etc/initramfs-tools/hooks/zkluks-encrypt-root'))).toBe(false);
    expect(existsSync(join(root, 'etc/initramfs-tools/scripts/local-top/zkluks-encrypt-root'))).toBe(false);
    expect(existsSync(join(root, 'etc/systemd/system/zkluks-encrypt-root-finish.service'))).toBe(false);
    expect(readFileSync(join(dir, 'orig/fstab'), 'utf8')).toBe(FSTAB);
    // The zkluks boot files for the normal unlock path stay.
    expect(existsSync(join(root, 'lib/cryptsetup/scripts/zkluks'))).toBe(true);
    const verify = await zkluks(['verify', vol, ...simArgs()]);
    expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
  });
});
