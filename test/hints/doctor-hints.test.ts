// The doctor's hints, scenario by scenario, followed as written on real system trees (the doctor
// scenarios' tree: a LUKS2 image, the simulator, crypttab, an initramfs image). Each followed hint
// must run and make its finding go away. Counted in the run's one "hints: N followed, N worked" line.
import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { commandLineProblem } from '../../src/cli/command-spec.ts';
import type { Diagnosis } from '../../src/doctor/diagnose.ts';
import { zkluks } from '../helpers/cli.ts';
import { addKey, makeLuksImage } from '../helpers/luks.ts';
import { buildTree, KERNEL, type Tree } from '../doctor/system-tree.ts';
import { CHROOT_SHIM } from '../migrate/zymbit-pi.ts';
import { commandsOf, follow, printHintCounts } from './follow.ts';

const PI_DEVICE = existsSync('/dev/mmcblk0p2') ? '/dev/mmcblk9p2' : '/dev/mmcblk0p2';
const KEYSCRIPT = 'keyscript=/lib/cryptsetup/scripts/zkluks';
let tree: Tree | undefined;

afterEach(() => tree?.cleanup());
afterAll(printHintCounts);

async function doctor(t: Tree, volume: string[] = []): Promise<Diagnosis> {
  const r = await zkluks(['doctor', ...volume, '--root', t.root, '--backend', 'sim', '--json'], {
    env: t.env,
  });
  expect([0, 1], r.stderr).toContain(r.exitCode);
  return JSON.parse(r.stdout) as Diagnosis;
}

const hintOf = (d: Diagnosis, id: string): string => {
  const f = d.findings.find((x) => x.id === id);
  expect(f, `no finding ${id} in ${d.findings.map((x) => x.id).join(', ')}`).toBeDefined();
  return f?.hint ?? '';
};
const ids = (d: Diagnosis) => d.findings.map((f) => f.id);
const env = (t: Tree) => ({ ...t.env, ZKLUKS_BACKEND: 'sim' });
/**
 * `env` with the chroot shim first on PATH: `chroot TREE update-initramfs …` builds the tree's images.
 * As update-initramfs does, `-u -k all` refreshes only images that exist; `-c` creates them.
 */
function withChroot(t: Tree): Record<string, string> {
  const bin = join(t.dir, 'chroot-bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'chroot-build'), CHROOT_SHIM, { mode: 0o755 });
  writeFileSync(
    join(bin, 'chroot'),
    `#!/bin/sh\ncase " $* " in *" -u "*) ls "$1"/boot/initrd.img-* >/dev/null 2>&1 || exit 0 ;; esac\nexec "$(dirname "$0")/chroot-build" "$@"\n`,
    { mode: 0o755 },
  );
  return { ...env(t), PATH: `${bin}:${t.env.PATH ?? process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` };
}
// The doctor exits 1 while any other error remains; the hint is judged by its own finding.
const doctorExits = (argv: string[]) => (argv[1] === 'doctor' ? [0, 1] : [0]);

/** Every hint of a --root diagnosis names commands for that tree: parsing, chrooted, on paths that exist. */
async function expectTreeHints(d: Diagnosis, t: Tree): Promise<void> {
  for (const f of d.findings) {
    for (const [program, ...args] of commandsOf(f.hint)) {
      if (program === 'zkluks') expect(await commandLineProblem(args), `${f.id}: ${f.hint}`).toBeNull();
      if (program === 'update-initramfs') throw new Error(`${f.id} rebuilds the host's initramfs: ${f.hint}`);
      if (program === 'chroot') expect(args[0], f.hint).toBe(t.root);
      if (program === 'cryptsetup' && args[0] === 'luksDump')
        expect(existsSync(args[1] ?? ''), f.hint).toBe(true);
    }
  }
}

describe('doctor hints on a --root tree', () => {
  it(`crypttab naming ${PI_DEVICE}: no luksDump of a missing path, no LUKS1 advice; the link it names lets the doctor read the header`, async () => {
    const t = (tree = await buildTree());
    t.file('/etc/crypttab', `cryptroot ${PI_DEVICE} none luks,initramfs,${KEYSCRIPT}\n`);
    const before = await doctor(t);
    const hint = hintOf(before, 'luks.header-unreadable');
    expect(hint).not.toMatch(/luksDump|LUKS1|convert/);
    await expectTreeHints(before, t);
    await follow(hint, { values: { DEVICE: t.volume }, env: env(t), exits: doctorExits });
    const after = await doctor(t);
    expect(ids(after)).not.toContain('luks.header-unreadable');
    expect(ids(after)).not.toContain('luks.no-volume');
  });

  it('a LUKS1 volume gets the convert advice, and following it makes the header readable', async () => {
    const t = (tree = await buildTree());
    const v1 = await makeLuksImage({ type: 'luks1' });
    try {
      const before = await doctor(t, [v1.path]);
      const hint = hintOf(before, 'luks.header-unreadable');
      expect(hint).toMatch(/convert --type luks2/);
      await follow(hint, {
        values: { '/root/luks1-header.img': join(v1.dir, 'luks1-header.img') },
        input: (argv) => (argv[1] === 'convert' ? 'YES\n' : undefined),
        env: env(t),
      });
      expect(ids(await doctor(t, [v1.path]))).not.toContain('luks.header-unreadable');
    } finally {
      await v1.cleanup();
    }
  });

  it('no recovery path: the hint adds a recovery key and backs up the header, and the error goes', async () => {
    const t = (tree = await buildTree({ recovery: false }));
    await t.cryptsetup('luksKillSlot', '--batch-mode', t.volume, '0');
    const before = await doctor(t, [t.volume]);
    const hint = hintOf(before, 'luks.no-recovery-path');
    await expectTreeHints(before, t);
    mkdirSync(join(t.dir, 'backup'));
    await follow(hint, { values: { '/root/header.img': join(t.dir, 'backup/header.img') }, env: env(t) });
    expect(existsSync(join(t.dir, 'backup/header.img'))).toBe(true);
    expect(ids(await doctor(t, [t.volume]))).not.toContain('luks.no-recovery-path');
  });

  it('a passphrase slot without a token is no proven recovery path: the warning tells how to test it, and its hint makes one', async () => {
    const t = (tree = await buildTree({ recovery: false }));
    const before = await doctor(t, [t.volume]);
    expect(ids(before)).not.toContain('luks.recovery-path');
    const f = before.findings.find((x) => x.id === 'luks.recovery-path-unproven');
    expect(f?.severity).toBe('warning');
    expect(f?.summary).toMatch(/slot 0 has no token: zkluks cannot tell whether a passphrase opens it/);
    // The test the summary names works as written: the tree's passphrase opens slot 0.
    const test = commandsOf(f?.summary ?? '').find(([p, a]) => p === 'cryptsetup' && a === 'open');
    expect(test).toEqual(['cryptsetup', 'open', '--test-passphrase', '--key-slot', '0', t.volume]);
    const [program, ...args] = test as string[];
    await execa(program as string, [...args, '--key-file', t.passphraseFile]);
    await expectTreeHints(before, t);
    mkdirSync(join(t.dir, 'backup'));
    await follow(f?.hint ?? '', {
      values: { '/root/header.img': join(t.dir, 'backup/header.img') },
      env: env(t),
    });
    const after = await doctor(t, [t.volume]);
    expect(ids(after)).not.toContain('luks.recovery-path-unproven');
    expect(ids(after)).toContain('luks.recovery-path');
  });

  it('keyslot= in crypttab: the --root install it names rewrites the line', async () => {
    const t = (tree = await buildTree());
    t.file('/etc/crypttab', `cryptroot UUID=${t.uuid} none luks,initramfs,keyslot=1,${KEYSCRIPT}\n`);
    const before = await doctor(t, [t.volume]);
    const id =
      before.findings.find((f) => f.area === 'crypttab' && /keyslot/.test(f.hint))?.id ?? 'crypttab.keyslot';
    const hint = hintOf(before, id);
    await expectTreeHints(before, t);
    // Followed as typed, rebuild included: the staged tree has no userland to chroot into, so the
    // chroot on PATH is the shim that builds each kernel's image from the tree's files as
    // initramfs-tools would (test/migrate/zymbit-pi.ts), and raspi-firmware's hook places it.
    t.file('/etc/initramfs/post-update.d/z50-raspi-firmware', '#!/bin/sh\n', 0o755);
    t.remove('/boot/firmware/initramfs8');
    await follow(hint, { env: withChroot(t) });
    expect(t.read('/etc/crypttab')).not.toContain('keyslot=');
    expect(existsSync(join(t.root, `boot/initrd.img-${KERNEL}`))).toBe(true);
    const after = await doctor(t, [t.volume]);
    expect(ids(after)).not.toContain(id);
    expect(ids(after)).not.toContain('initramfs.image-unreadable');
  });

  it('a missing initramfs image: the rebuild hint is the tree-chrooted form that creates it', async () => {
    const t = (tree = await buildTree());
    t.remove('/boot/firmware/initramfs8');
    const d = await doctor(t, [t.volume]);
    const hint = hintOf(d, 'initramfs.image-unreadable');
    expect(hint).toContain(`chroot ${t.root} update-initramfs -c -k all`);
    await expectTreeHints(d, t);
    // Followed as typed: the image is made again (raspi-firmware's hook places it); the check it names
    // then finds this tree's boot files older than this zkluks, and its own hint brings them up to date.
    t.file('/etc/initramfs/post-update.d/z50-raspi-firmware', '#!/bin/sh\n', 0o755);
    const { results } = await follow(hint, {
      env: withChroot(t),
      exits: (argv) => (argv[0] === 'zkluks' ? [0, 1] : [0]),
    });
    expect(existsSync(join(t.root, 'boot/firmware/initramfs8'))).toBe(true);
    const check = results.at(-1);
    if (check && check.exitCode !== 0) {
      const next = /^ {2}hint: (.*)$/m.exec(check.stdout)?.[1] ?? '';
      expect(next).toBe(`zkluks initramfs install --root ${t.root}`);
      await follow(next, { env: withChroot(t) });
    }
    expect(ids(await doctor(t, [t.volume]))).not.toContain('initramfs.image-unreadable');
  });
});

describe('doctor hints for tokens and keyslots (scenarios 8 and 8b)', () => {
  /** A zkluks command run without a terminal exits 2 and names its --…-file option: follow that too. */
  async function followAll(hint: string, t: Tree, values: Record<string, string> = {}) {
    const first = await follow(hint, {
      values,
      env: env(t),
      input: (argv) => (argv[1] === 'luksKillSlot' ? 'correct horse battery staple' : undefined),
      exits: (argv) => (argv[0] === 'zkluks' ? [0, 2] : [0]),
    });
    for (const r of first.results.filter((x) => x.exitCode === 2)) {
      await follow(hintOfResult(r), { values: { FILE: t.passphraseFile, ...values }, env: env(t) });
    }
    return first;
  }
  const hintOfResult = (r: { stderr: string }) => {
    const line = r.stderr.split('\n').find((l) => l.startsWith('hint: '));
    expect(line, r.stderr).toBeDefined();
    return (line ?? '').slice('hint: '.length);
  };

  it('8: a zkluks-zymkey token naming a slot that is gone: removing it and enrolling, as hinted, makes the Zymkey slot work again', async () => {
    const t = (tree = await buildTree());
    await t.cryptsetup('luksKillSlot', '--batch-mode', t.volume, String(t.zymkeySlot));
    const before = await doctor(t, [t.volume]);
    const hint = hintOf(before, 'luks.token-dangling');
    await expectTreeHints(before, t);
    await followAll(hint, t);
    const after = await doctor(t, [t.volume]);
    expect(ids(after)).not.toContain('luks.token-dangling');
    expect(ids(after)).toContain('luks.tokens');
    const verify = await zkluks(['verify', t.volume], { env: env(t) });
    expect(verify.exitCode, verify.stderr).toBe(0);
  });

  it("8: a 'prefer' keyslot no token names: a new Zymkey slot and the dead slot wiped, as hinted", async () => {
    const t = (tree = await buildTree());
    await addKey(t.volume, readFileSync(t.passphraseFile), 'orphan-key-material-0123456789', 5);
    await t.cryptsetup('config', '--priority', 'prefer', '--key-slot', '5', t.volume);
    const before = await doctor(t, [t.volume]);
    const hint = hintOf(before, 'luks.slot-without-token');
    await expectTreeHints(before, t);
    await followAll(hint, t);
    const after = await doctor(t, [t.volume]);
    expect(ids(after)).not.toContain('luks.slot-without-token');
    expect(ids(after)).toContain('luks.tokens');
    expect((await zkluks(['verify', t.volume], { env: env(t) })).exitCode).toBe(0);
  });

  it('8b: a zkluks-zymkey token copied onto the passphrase slot: verify, then enroll --force, as hinted, settle it', async () => {
    const t = (tree = await buildTree());
    const original = JSON.parse(await t.cryptsetup('token', 'export', '--token-id', '0', t.volume)) as object;
    await execa('cryptsetup', ['token', 'import', '--token-id', '3', t.volume], {
      input: JSON.stringify({ ...original, keyslots: ['0'] }),
    });
    const before = await doctor(t, [t.volume]);
    const hint = hintOf(before, 'luks.token-foreign');
    await expectTreeHints(before, t);
    await followAll(hint, t);
    const after = await doctor(t, [t.volume]);
    expect(ids(after)).not.toContain('luks.token-foreign');
    // The passphrase the Zymkey's key never opened is kept.
    const opened = await execa(
      'cryptsetup',
      ['open', '--test-passphrase', '--key-file', t.passphraseFile, t.volume],
      { reject: false },
    );
    expect(opened.exitCode).toBe(0);
    expect((await zkluks(['verify', t.volume], { env: env(t) })).exitCode).toBe(0);
  });
});
