// Every hint works when followed literally: for each failure and refusal an admin meets, the printed
// hint is followed as written (placeholders filled in as a user would) and must parse, run and move
// the volume or tree to a different state, never back to the same refusal. Counted in the run's one
// "hints: N followed, N worked" line (test/hints/summary.ts).
import { execa } from 'execa';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { commandLineProblem } from '../../src/cli/command-spec.ts';
import { createRunner } from '../../src/exec.ts';
import { readHeader } from '../../src/keyslot/header.ts';
import { zkluks } from '../helpers/cli.ts';
import { luksImage, opens } from '../helpers/luks.ts';
import { simEnv, simStateDir } from '../keyslot/sim-fixture.ts';
import { CHROOT_SHIM, KERNEL } from '../migrate/zymbit-pi.ts';
import { commandsOf, follow, printHintCounts, hintOf } from './follow.ts';

const runner = createRunner();
// The name the Pi gives its SD card; a host that has such a device gets a name it has not.
const PI_DEVICE = existsSync('/dev/mmcblk0p2') ? '/dev/mmcblk9p2' : '/dev/mmcblk0p2';

afterAll(printHintCounts);

/** An image enrolled with the simulator: Zymkey slot, recovery key in a file, passphrase slot 0. */
async function enrolled(options: { escrow?: string } = {}) {
  const img = await luksImage();
  const sim = await simStateDir();
  const env = simEnv(sim);
  const passphraseFile = join(img.dir, 'passphrase');
  writeFileSync(passphraseFile, img.passphrase, { mode: 0o600 });
  const recoveryFile = join(img.dir, 'recovery.txt');
  const r = await zkluks(
    [
      'enroll',
      img.path,
      '--unlock-key-file',
      passphraseFile,
      '--recovery-key-file',
      recoveryFile,
      ...(options.escrow ? ['--escrow', options.escrow] : []),
    ],
    { env },
  );
  expect(r.exitCode, r.stderr).toBe(0);
  return { img, sim, env, passphraseFile, recoveryFile, recoveryKey: readFileSync(recoveryFile, 'utf8') };
}

describe('keyslot hints', () => {
  it('recovery verify without a terminal names --recovery-key-file, and following it verifies the key', async () => {
    const { img, env, recoveryFile } = await enrolled();
    const failed = await zkluks(['recovery', 'verify', img.path], { env });
    expect(failed.exitCode).toBe(2);
    const hint = hintOf(failed);
    expect(hint).toContain('--recovery-key-file');
    const { results } = await follow(hint, { values: { FILE: recoveryFile }, env });
    expect(results.at(-1)?.stdout).toMatch(/^ok: the recovery key opens keyslot/);

    // A mistyped flag names the real one and the subcommand's --help, which works.
    const typo = await zkluks(['recovery', 'verify', img.path, '--unlock-key-file', recoveryFile], { env });
    expect(typo.exitCode).toBe(2);
    expect(typo.stderr).toContain('has no option --unlock-key-file (did you mean --recovery-key-file?)');
    expect(typo.stderr).not.toContain('unlockKeyFile');
    await follow(hintOf(typo), { env });
  });

  it('recovery remove refused for want of another way in says to add a passphrase; after that it goes', async () => {
    const { img, env, recoveryKey } = await enrolled();
    await runner('cryptsetup', ['luksKillSlot', '--batch-mode', img.path, '0']);
    const remove = () => zkluks(['recovery', 'remove', img.path], { env });
    const refused = await remove();
    expect(refused.exitCode).toBe(3);
    const hint = hintOf(refused);
    expect(hint).not.toMatch(/recovery add/);
    // cryptsetup asks for an existing key (the recovery key) and then the new passphrase.
    await follow(
      hint,
      { env, input: (argv) => (argv[1] === 'luksAddKey' ? `${recoveryKey}\nnew passphrase\n` : undefined) },
      { run: remove, failure: refused },
    );
    expect(await opens(img.path, 'new passphrase')).toBe(true);
    // A keyslot without a token counts as a way in only once a key given in this run opens it: the
    // second refusal says so, and giving the new passphrase lets the removal go on.
    const unproven = await remove();
    expect(unproven.exitCode).toBe(3);
    expect(hintOf(unproven)).toMatch(/--unlock-key-file/);
    const proven = await zkluks(['recovery', 'remove', img.path, '--unlock-key-file', '-'], {
      env,
      input: 'new passphrase',
    });
    expect(proven.exitCode, proven.stderr).toBe(0);
    expect((await readHeader(runner, img.path)).tokens.some((t) => t.type === 'zkluks-recovery')).toBe(false);
  });

  it('a key file ending in a newline is named as such, and removing the newline as hinted lets enroll go on', async () => {
    const img = await luksImage();
    const sim = await simStateDir();
    const env = simEnv(sim);
    const file = join(img.dir, 'echoed');
    writeFileSync(file, `${img.passphrase}\n`, { mode: 0o600 });
    const enroll = () =>
      zkluks(['enroll', img.path, '--unlock-key-file', file, '--no-recovery-key'], { env });
    const failed = await enroll();
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toMatch(/ends with a newline/);
    expect(failed.stderr).not.toMatch(/wrong passphrase/);
    await follow(hintOf(failed), { values: { FILE: file }, env }, { run: enroll, failure: failed });

    // A key that is wrong with or without the newline: the hint's test agrees with the refusal.
    writeFileSync(file, 'not it\n');
    const wrong = await enroll();
    expect(wrong.stderr).toMatch(/wrong passphrase/);
    const [check] = commandsOf(hintOf(wrong)).map((c) => c.map((w) => (w === 'FILE' ? file : w)));
    const r = await execa(check?.[0] ?? '', check?.slice(1) ?? [], { reject: false });
    expect(r.exitCode).not.toBe(0);
  });

  it('a missing image exits 2 like every missing path, and its hint looks where it should be, not lsblk', async () => {
    const img = await luksImage();
    const env = simEnv(await simStateDir());
    const nope = join(img.dir, 'nope.img');
    const results = await Promise.all([
      zkluks(['enroll', nope, '--unlock-key-file', '-'], { env, input: 'x' }),
      zkluks(['list', nope], { env }),
      zkluks(['recovery', 'verify', nope, '--recovery-key-file', '-'], { env, input: 'x' }),
      zkluks(['initramfs', 'install', nope, '--root', img.dir, '--no-update'], { env }),
    ]);
    for (const r of results) {
      expect(r.exitCode, r.stderr).toBe(2);
      expect(hintOf(r)).not.toMatch(/lsblk/);
    }
    const { results: ls } = await follow(hintOf(results[0] ?? results[1]!), { env });
    expect(ls[0]?.stdout).toContain('disk.img');
  });

  it('recovery add --force keeps the escrow recipient and says so; --no-escrow drops it', async () => {
    const identity = join(mkdtempSync(join(tmpdir(), 'zkluks-age-')), 'identity');
    await runner('age-keygen', ['-o', identity]);
    const recipient = (await runner('age-keygen', ['-y', identity])).stdout.trim();
    const { img, env } = await enrolled({ escrow: recipient });
    const replaced = await zkluks(
      ['recovery', 'add', '--force', img.path, '--recovery-key-file', join(img.dir, 'new.txt')],
      {
        env,
      },
    );
    expect(replaced.exitCode, replaced.stderr).toBe(0);
    expect(replaced.stdout).toContain(`escrowed to ${recipient}`);
    expect(replaced.stderr).toMatch(
      /note: the new recovery key is escrowed to .* as the one it replaces was/,
    );
    const unlocked = await zkluks(['recovery', 'unlock', img.path, '--identity', identity], { env });
    expect(unlocked.stdout).toBe(readFileSync(join(img.dir, 'new.txt'), 'utf8'));
    const dropped = await zkluks(
      [
        'recovery',
        'add',
        '--force',
        '--no-escrow',
        img.path,
        '--recovery-key-file',
        join(img.dir, 'third.txt'),
      ],
      { env },
    );
    expect(dropped.exitCode, dropped.stderr).toBe(0);
    const token = (await readHeader(runner, img.path)).tokens.find((t) => t.type === 'zkluks-recovery');
    expect(token?.json).not.toHaveProperty('escrow');
    rmSync(identity, { force: true });
  });
});

describe('--root tree hints', () => {
  // The one line for the disk, keeping its discard option, with the zkluks keyscript.
  const ZKLUKS_LINE = (uuid: string) =>
    new RegExp(
      `^cryptroot UUID=${uuid} none luks,(?=.*discard)(?=.*initramfs).*keyscript=/lib/cryptsetup/scripts/zkluks\\n?$`,
    );
  const CRYPTTAB = `cryptroot ${PI_DEVICE} none luks,discard\n`;

  async function stagedTree() {
    const root = mkdtempSync(join(tmpdir(), 'zkluks-hints-tree-'));
    for (const d of ['etc', 'usr/sbin', 'var/lib/zymbit']) mkdirSync(join(root, d), { recursive: true });
    writeFileSync(join(root, 'usr/sbin/zkunlockifs'), '#!/bin/sh\nexit 1\n');
    chmodSync(join(root, 'usr/sbin/zkunlockifs'), 0o755);
    writeFileSync(join(root, 'var/lib/zymbit/zkenv.conf'), 'ZK_GPIO_WAKE_PIN=516\n');
    writeFileSync(join(root, 'etc/crypttab'), CRYPTTAB);
    // What the rebuild needs to make an image the firmware loads: a kernel, zkunlockifs where
    // Zymbit's package puts it, config.txt and raspi-firmware's post-update hook.
    for (const d of [`lib/modules/${KERNEL}`, 'boot/firmware', 'sbin', 'etc/initramfs/post-update.d'])
      mkdirSync(join(root, d), { recursive: true });
    writeFileSync(join(root, `lib/modules/${KERNEL}/modules.dep`), '');
    writeFileSync(join(root, `boot/vmlinuz-${KERNEL}`), 'kernel');
    writeFileSync(join(root, 'boot/firmware/kernel8.img'), 'kernel');
    writeFileSync(join(root, 'boot/firmware/config.txt'), '[all]\ndtparam=i2c_arm=on\nauto_initramfs=1\n');
    writeFileSync(join(root, 'sbin/zkunlockifs'), '#!/bin/sh\nexit 1\n');
    chmodSync(join(root, 'sbin/zkunlockifs'), 0o755);
    writeFileSync(join(root, 'etc/initramfs/post-update.d/z50-raspi-firmware'), '#!/bin/sh\n');
    const img = await luksImage();
    await execa('cryptsetup', ['token', 'import', img.path], {
      input: JSON.stringify({ type: 'zkluks-zymkey', keyslots: ['0'], version: 1, sealed: 'AAAA' }),
    });
    const uuid = (await runner('cryptsetup', ['luksUUID', img.path])).stdout.trim();
    return { root, img, uuid, cleanup: () => rmSync(root, { recursive: true, force: true }) };
  }
  // Followed as typed, rebuild included. The staged tree has no userland to chroot into: the chroot
  // on PATH is the shim that builds each kernel's image from the tree's files as initramfs-tools
  // would (test/migrate/zymbit-pi.ts); the QEMU tier builds real ones.
  const shimBin = mkdtempSync(join(tmpdir(), 'zkluks-hints-chroot-'));
  writeFileSync(join(shimBin, 'chroot'), CHROOT_SHIM, { mode: 0o755 });
  afterAll(() => rmSync(shimBin, { recursive: true, force: true }));
  const withChroot = { PATH: `${shimBin}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` };
  const imageBuilt = (root: string) => existsSync(join(root, 'boot/firmware/initramfs8'));

  it(`install --root with crypttab naming ${PI_DEVICE} says how to point the tree at the image, and then installs`, async () => {
    const t = await stagedTree();
    try {
      const install = () => zkluks(['initramfs', 'install', '--root', t.root], { env: withChroot });
      const failed = await install();
      expect(failed.exitCode).toBe(2);
      const hint = hintOf(failed);
      expect(hint).not.toMatch(/lsblk|initramfs install \/dev/);
      await follow(
        hint,
        { values: { DEVICE: t.img.path }, env: withChroot },
        { run: install, failure: failed },
      );
      const tab = readFileSync(join(t.root, 'etc/crypttab'), 'utf8');
      expect(tab).toMatch(ZKLUKS_LINE(t.uuid));
      expect(imageBuilt(t.root)).toBe(true);
    } finally {
      t.cleanup();
    }
  });

  it('install --root IMAGE refused for the line of the Pi device name: the first way on updates that line, never adds a second', async () => {
    const t = await stagedTree();
    try {
      const install = () =>
        zkluks(['initramfs', 'install', t.img.path, '--root', t.root], { env: withChroot });
      const refused = await install();
      expect(refused.exitCode).toBe(3);
      await follow(hintOf(refused), { branch: 0, env: withChroot }, { run: install, failure: refused });
      expect(imageBuilt(t.root)).toBe(true);
      const lines = readFileSync(join(t.root, 'etc/crypttab'), 'utf8').trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(ZKLUKS_LINE(t.uuid));
    } finally {
      t.cleanup();
    }
  });

  it('the rebuild hint for a --root tree is the chroot form that creates missing images', async () => {
    const t = await stagedTree();
    try {
      mkdirSync(join(t.root, 'dev'));
      await execa('ln', ['-sf', t.img.path, join(t.root, PI_DEVICE)]);
      const r = await zkluks(['initramfs', 'install', '--root', t.root, '--no-update']);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toContain(
        `the initramfs was not rebuilt; run: chroot ${t.root} update-initramfs -c -k all`,
      );
      for (const [program, ...args] of commandsOf(r.stderr.split('run: ')[1] ?? '')) {
        if (program === 'zkluks') expect(await commandLineProblem(args)).toBeNull();
      }
      // Followed as typed, it makes the image the firmware loads, carrying the zkluks keyscript.
      expect(imageBuilt(t.root)).toBe(false);
      await follow(r.stderr.split('run: ')[1] ?? '', { env: withChroot });
      expect(imageBuilt(t.root)).toBe(true);
      const check = await zkluks(['initramfs', 'check', '--root', t.root]);
      expect(check.exitCode, check.stdout + check.stderr).toBe(0);
    } finally {
      t.cleanup();
    }
  });
});
