// encrypt-root's pure pieces: the fstab and cmdline.txt edits keep every byte zkluks does not own,
// the preflight names each problem with its fix, and the planner commits the next boot last.
import { describe, expect, it } from 'vitest';
import type { EncryptFacts } from '../../src/migrate/encrypt-root/facts.ts';
import { renderBootScript, renderHook } from '../../src/migrate/encrypt-root/boot-files.ts';
import { planEncryptRoot } from '../../src/migrate/encrypt-root/plan.ts';
import { firmwareLoadsInitramfs, preflight } from '../../src/migrate/encrypt-root/preflight.ts';
import {
  cmdlineRoot,
  findFstabRoot,
  setCmdlineRoot,
  setFstabRoot,
} from '../../src/migrate/encrypt-root/root-files.ts';
import { CMDLINE, CONFIG_TXT, FSTAB } from './encrypt-root-fixture.ts';

describe('fstab and cmdline.txt edits', () => {
  it('switch only the root device field of fstab, keeping tabs, comments and CRLF lines', () => {
    const fstab =
      '# root\r\nproc /proc proc defaults 0 0\r\n/dev/mmcblk0p2\t/\text4\tdefaults,noatime\t0\t1\r\n';
    expect(findFstabRoot(fstab)).toMatchObject({ spec: '/dev/mmcblk0p2', fstype: 'ext4', line: 2 });
    expect(setFstabRoot(fstab, '/dev/mapper/cryptroot')).toBe(
      '# root\r\nproc /proc proc defaults 0 0\r\n/dev/mapper/cryptroot\t/\text4\tdefaults,noatime\t0\t1\r\n',
    );
    expect(findFstabRoot('#PARTUUID=x / ext4 defaults 0 1\n')).toBeNull();
  });

  it('switch every root= word of cmdline.txt and nothing else', () => {
    expect(cmdlineRoot(CMDLINE)).toBe('PARTUUID=6c586e13-02');
    expect(setCmdlineRoot('root=/dev/sda2 ro root=PARTUUID=ab-02 quiet\n', '/dev/mapper/r')).toBe(
      'root=/dev/mapper/r ro root=/dev/mapper/r quiet\n',
    );
    expect(setCmdlineRoot('console=tty1 noroot=x root=UUID=1 rootwait', '/dev/mapper/r')).toBe(
      'console=tty1 noroot=x root=/dev/mapper/r rootwait',
    );
    expect(() => setCmdlineRoot('console=tty1', '/dev/mapper/r')).toThrow(/no root=/);
  });

  it('see an initramfs in config.txt only when auto_initramfs=1 or an initramfs line is in effect', () => {
    expect(firmwareLoadsInitramfs(CONFIG_TXT)).toBe(true);
    expect(firmwareLoadsInitramfs('initramfs initrd.img followkernel\n')).toBe(true);
    expect(firmwareLoadsInitramfs('#auto_initramfs=1\nauto_initramfs=0\n')).toBe(false);
  });
});

function facts(over: Partial<EncryptFacts> = {}): EncryptFacts {
  return {
    root: '/',
    fstab: FSTAB,
    fstabRoot: findFstabRoot(FSTAB),
    bootDir: '/boot/firmware',
    cmdline: CMDLINE,
    configTxt: CONFIG_TXT,
    device: {
      path: '/dev/mmcblk0p2',
      kind: 'partition',
      bytes: 8 * 2 ** 30,
      type: 'ext4',
      partUuid: '6c586e13-02',
    },
    deviceError: null,
    ext4: { state: 'clean', blockSize: 4096, blockCount: 2 ** 21, minBlocks: 500_000 },
    packages: { cryptsetup: true, 'cryptsetup-initramfs': true, 'initramfs-tools': true },
    zkunlockifs: '/usr/sbin/zkunlockifs',
    zymkeyProblem: null,
    rate: { readBytesPerS: 40 * 2 ** 20, writeBytesPerS: 20 * 2 ** 20 },
    rateError: null,
    armed: null,
    install: {
      root: '/',
      crypttab: '',
      crypttabWasAbsent: false,
      crypttabBackup: null,
      installed: {},
      zkunlockifs: '/usr/sbin/zkunlockifs',
      zymbitState: true,
      zkenv: true,
      volume: { name: null, uuid: null, device: null, entry: null, hasZymkeyToken: null, headerError: null },
      modules: 'most',
      bootImages: { kind: 'raspberry-pi', bootPartition: '/boot/firmware', images: [] },
      kernels: [],
      console: null,
    },
    ...over,
  };
}

const opts = { escrow: null, recoveryKeyFile: null, noUpdate: false, zkluks: '/usr/bin/zkluks' };
const gen = { uuid: '0B8F64E2-6B11-4D53-9B7A-2B3C4D5E6F70', now: new Date('2026-12-07T12:00:00Z') };

describe('encrypt-root preflight and plan', () => {
  it('passes a plain ext4 Pi root, and refuses a whole disk or a device-mapper root', () => {
    expect(preflight(facts())).toEqual([]);
    const disk = preflight(facts({ device: { ...facts().device!, path: '/dev/sda', kind: 'disk' } }));
    expect(disk).toEqual([
      expect.objectContaining({ check: 'partition', reason: '/dev/sda is a whole disk' }),
    ]);
    const dm = preflight(facts({ device: { ...facts().device!, path: '/dev/dm-0', kind: 'other' } }));
    expect(dm[0]?.reason).toContain('not a partition');
  });

  it('lists every problem at once, each with its fix', () => {
    const problems = preflight(
      facts({
        zkunlockifs: null,
        zymkeyProblem: 'unreachable',
        packages: { cryptsetup: true, 'cryptsetup-initramfs': false, 'initramfs-tools': null },
      }),
    );
    expect(problems.map((p) => p.check)).toEqual(['packages', 'zkunlockifs', 'zymkey']);
    expect(problems[0]?.fix).toBe(
      'apt-get install cryptsetup-initramfs initramfs-tools, then zkluks encrypt-root',
    );
    expect(() => planEncryptRoot(facts({ zkunlockifs: null }), opts, gen)).toThrow(/preflight check failed/);
  });

  it('plans the estimate from the measured rate and switches cmdline.txt last, after the initramfs', () => {
    const plan = planEncryptRoot(facts(), opts, gen);
    // 8 GiB read at 40 MiB/s and written at 20 MiB/s.
    expect(plan.estimateSeconds).toBe(Math.ceil((8 * 1024) / 40 + (8 * 1024) / 20));
    expect(plan.uuid).toBe(gen.uuid.toLowerCase());
    expect(plan.bootDevice).toBe('PARTUUID=6c586e13-02');
    const kinds = plan.steps.map((s) => s.kind);
    expect(kinds.slice(0, 2)).toEqual(['generate-keys', 'deliver-recovery-key']);
    expect(kinds.at(-2)).toBe('update-initramfs');
    expect(kinds.at(-1)).toBe('switch-cmdline');
    expect(plan.fsBytes).toBe(8 * 2 ** 30 - 32 * 2 ** 20);
  });

  it('renders the boot script and hook with no placeholder left', () => {
    expect(renderBootScript()).not.toMatch(/@[A-Z_]+@/);
    expect(renderBootScript()).toContain('CONF=${ZKLUKS_ENC_CONF:-/etc/zkluks/encrypt-root/plan.conf}');
    expect(renderHook()).toContain("FILES='plan.conf keys.sealed zymkey-token.json recovery-token.json'");
  });
});
