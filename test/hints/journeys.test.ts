// Recovery journeys, end to end, by following zkluks's own words from the first symptom: each step
// runs the command the previous step's hint names. "Next boot" is the rendered keyscript run by
// busybox against the simulator, as cryptroot runs it. Counted in the run's one "hints: N followed, N worked" line.
import { execa } from 'execa';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simArm, simBindLock, simBreach, simInit, simZkifc } from '../../src/device/sim-control.ts';
import type { Diagnosis } from '../../src/doctor/diagnose.ts';
import { createRunner } from '../../src/exec.ts';
import { keyscriptVars } from '../../src/initramfs/boot-files.ts';
import { render } from '../../src/initramfs/render.ts';
import { readTemplate } from '../../src/initramfs/templates.ts';
import { zkluks } from '../helpers/cli.ts';
import { luksImage, opens } from '../helpers/luks.ts';
import { simEnv, simStateDir } from '../keyslot/sim-fixture.ts';
import { bootPaths } from '../migrate/boot-paths.ts';
import { buildZymbitPi, type ZymbitPi } from '../migrate/zymbit-pi.ts';
import { follow, printHintCounts, hintOf } from './follow.ts';

const runner = createRunner();
const W = mkdtempSync(join(tmpdir(), 'zkluks-journeys-'));
const bin = join(W, 'bin');
const bb = join(W, 'busybox');
const keyscript = join(W, 'zkluks');

beforeAll(async () => {
  expect((await zkluks(['sim', 'install-tools', bin])).exitCode).toBe(0);
  mkdirSync(bb);
  await execa('busybox', ['--install', '-s', bb]);
  mkdirSync(join(W, 'sys/i2c-1'), { recursive: true });
  writeFileSync(join(W, 'zkenv.conf'), 'ZK_GPIO_WAKE_PIN=516\n');
  writeFileSync(join(W, 'modprobe'), '#!/bin/sh\nexit 0\n');
  // The passphrase prompt must not be needed: it answers nothing a volume would take.
  writeFileSync(join(W, 'askpass'), '#!/bin/sh\nprintf prompted\n');
  for (const f of ['modprobe', 'askpass']) chmodSync(join(W, f), 0o755);
  writeFileSync(
    keyscript,
    render(readTemplate('keyscript'), keyscriptVars({ zkunlockifs: '/sbin/zkunlockifs' })),
  );
  chmodSync(keyscript, 0o755);
}, 120_000);

afterAll(() => {
  rmSync(W, { recursive: true, force: true });
  printHintCounts();
});

let boots = 0;
/** The next boot: the keyscript under busybox; true when what it prints opens the volume through the Zymkey. */
async function nextBoot(volume: string, simState: string): Promise<{ opens: boolean; record: string }> {
  const dir = join(W, `boot-${++boots}`);
  mkdirSync(join(dir, 'run'), { recursive: true });
  writeFileSync(join(dir, 'kmsg'), '');
  writeFileSync(join(dir, 'boot.conf'), 'ZKLUKS_TIMEOUT=30\n');
  // In the initramfs zkifc does not run; the booted system starts it again.
  simZkifc(simState, 'stopped');
  const r = await execa('busybox', ['sh', keyscript, 'none'], {
    env: {
      PATH: [bb, bin, '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':'),
      CRYPTTAB_NAME: 'cryptroot',
      CRYPTTAB_SOURCE: volume,
      CRYPTTAB_TRIED: '0',
      CRYPTTAB_KEY: 'none',
      ZKLUKS_SIM_STATE: simState,
      ZKLUKS_ASKPASS: join(W, 'askpass'),
      ZKLUKS_UNLOCK: 'zkunlockifs',
      ZKLUKS_MODPROBE: join(W, 'modprobe'),
      ZKLUKS_RUN_DIR: join(dir, 'run'),
      ZKLUKS_WORK_DIR: join(dir, 'work'),
      ZKLUKS_CONF: join(dir, 'boot.conf'),
      ZKLUKS_ZKENV: join(W, 'zkenv.conf'),
      ZKLUKS_I2C_SYSFS: join(W, 'sys'),
      ZKLUKS_KMSG: join(dir, 'kmsg'),
    },
    extendEnv: false,
    encoding: 'buffer',
    stripFinalNewline: false,
    reject: false,
    timeout: 60_000,
  }).finally(() => simZkifc(simState, 'running'));
  const record = readFileSync(join(dir, 'run/cryptroot.record'), 'utf8');
  return {
    opens: r.exitCode === 0 && (await opens(volume, Buffer.from(r.stdout))),
    record: `${record}\n${Buffer.from(r.stderr).toString()}`,
  };
}

/** A volume enrolled on a simulated module, whose only way in without it is the recovery key. */
async function enrolledWithRecoveryOnly() {
  const img = await luksImage();
  const sim = await simStateDir();
  const passphraseFile = join(img.dir, 'passphrase');
  writeFileSync(passphraseFile, img.passphrase, { mode: 0o600 });
  const recoveryFile = join(img.dir, 'recovery.txt');
  const r = await zkluks(
    ['enroll', img.path, '--unlock-key-file', passphraseFile, '--recovery-key-file', recoveryFile],
    { env: simEnv(sim) },
  );
  expect(r.exitCode, r.stderr).toBe(0);
  await runner('cryptsetup', ['luksKillSlot', '--batch-mode', img.path, '0']);
  return { img, sim, recoveryFile };
}

describe('recovery journeys', () => {
  it('module self-destructed -> recovery key verified -> new module -> enroll --force -> next boot through the Zymkey', async () => {
    const { img, sim, recoveryFile } = await enrolledWithRecoveryOnly();
    const env = simEnv(sim);
    const first = await nextBoot(img.path, sim);
    expect(first.opens, first.record).toBe(true);
    simBindLock(sim);
    simArm(sim, 0, 'self-destruct');
    simBreach(sim, 0);

    // First symptom: the Zymkey no longer unlocks; the hint says to use the recovery key, then enroll.
    const symptom = await zkluks(['verify', img.path], { env });
    expect(symptom.exitCode).toBe(4);
    const rescue = hintOf(symptom);
    expect((await nextBoot(img.path, sim)).opens).toBe(false);

    // Is the recovery key still good? Without a terminal the hint names the file option.
    const asked = await zkluks(['recovery', 'verify', img.path], { env });
    await follow(hintOf(asked), { values: { FILE: recoveryFile }, env });

    // A new module (the simulator's), then the rescue hint as written.
    simInit(sim, { force: true });
    await follow(rescue, { values: { FILE: recoveryFile, VOLUME: img.path }, env });
    expect((await zkluks(['verify', img.path], { env })).exitCode).toBe(0);
    const boot = await nextBoot(img.path, sim);
    expect(boot.opens).toBe(true);
    expect(boot.record).toMatch(/method=zymkey/);
  }, 300_000);

  it('SD card moved to another Pi with its own production module -> recovery key -> re-enrolled on this Pi', async () => {
    const { img, sim, recoveryFile } = await enrolledWithRecoveryOnly();
    const thisPi = await simStateDir();
    simBindLock(thisPi);
    const env = simEnv(thisPi);
    const symptom = await zkluks(['verify', img.path], { env });
    expect(symptom.exitCode).not.toBe(0);
    expect((await nextBoot(img.path, thisPi)).opens).toBe(false);
    await follow(hintOf(symptom), { values: { FILE: recoveryFile, VOLUME: img.path }, env });
    expect((await zkluks(['verify', img.path], { env })).exitCode).toBe(0);
    expect((await nextBoot(img.path, thisPi)).opens).toBe(true);
    // The old Pi's module no longer has a key for it.
    expect((await nextBoot(img.path, sim)).opens).toBe(false);
  }, 300_000);

  it('recovery key lost -> replaced with the Zymkey as authority, escrow kept -> the escrow opens the new key', async () => {
    const img = await luksImage();
    const sim = await simStateDir();
    const env = simEnv(sim);
    const identity = join(img.dir, 'identity');
    await runner('age-keygen', ['-o', identity]);
    const recipient = (await runner('age-keygen', ['-y', identity])).stdout.trim();
    const keyFile = join(img.dir, 'passphrase');
    writeFileSync(keyFile, img.passphrase, { mode: 0o600 });
    const enrolled = await zkluks(
      [
        'enroll',
        img.path,
        '--unlock-key-file',
        keyFile,
        '--escrow',
        recipient,
        '--recovery-key-file',
        join(img.dir, 'lost.txt'),
      ],
      { env },
    );
    expect(enrolled.exitCode, enrolled.stderr).toBe(0);
    rmSync(join(img.dir, 'lost.txt'));

    // The admin only knows the key is lost: verify fails and names the replacement.
    const symptom = await zkluks(['recovery', 'verify', img.path, '--recovery-key-file', '-'], {
      env,
      input: 'cccccccc-'.repeat(7) + 'cccccccc',
    });
    expect(symptom.exitCode).toBe(1);
    const { results } = await follow(symptom.stderr.match(/^hint: (.*)$/m)?.[1] ?? '', { env });
    expect(results[0]?.stdout).toContain(`escrowed to ${recipient}`);
    expect(results[0]?.stderr).toMatch(
      /note: the new recovery key is escrowed to .* as the one it replaces was/,
    );
    const newKey = /^ {4}(\S+)$/m.exec(results[0]?.stderr ?? '')?.[1] ?? '';
    expect(newKey).toMatch(/^([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}$/);
    const unlocked = await zkluks(['recovery', 'unlock', img.path, '--identity', identity], { env });
    expect(unlocked.stdout).toBe(newKey);
    expect(await opens(img.path, newKey)).toBe(true);
  }, 300_000);

  it("Zymbit's layout without any passphrase -> recovery key added first -> adopt -> next boot through zkluks -> old slot removed -> doctor clean", async () => {
    const pi: ZymbitPi = await buildZymbitPi();
    try {
      const doctor = async (): Promise<Diagnosis> => {
        const r = await pi.zkluks(['doctor', '--root', pi.root, '--json']);
        expect([0, 1], r.stderr).toContain(r.exitCode);
        return JSON.parse(r.stdout) as Diagnosis;
      };
      const finding = (d: Diagnosis, id: string) => {
        const f = d.findings.find((x) => x.id === id);
        expect(f, `no finding ${id} in ${d.findings.map((x) => x.id).join(', ')}`).toBeDefined();
        return f ?? { hint: '', severity: '' };
      };
      const troubles = (d: Diagnosis) =>
        d.findings.filter((f) => f.severity === 'error' || f.severity === 'warning');
      // The doctor exits 1 while any other error remains; each hint is judged by its own finding.
      const doctorExits = (argv: string[]) => (argv[1] === 'doctor' ? [0, 1] : [0]);

      // First symptom: the doctor finds no way in without the Zymkey (Zymbit's one slot, no passphrase).
      const first = await doctor();
      const noRecovery = finding(first, 'luks.no-recovery-path');
      expect(noRecovery.severity).toBe('error');
      expect(noRecovery.hint).toContain('--unlock-zymbit-key');
      const backup = join(pi.dir, 'header.img');
      const added = await follow(noRecovery.hint, {
        values: { '/root/header.img': backup },
        env: pi.env,
        exits: doctorExits,
      });
      const recoveryKey = /^ {4}(\S+)$/m.exec(added.results[0]?.stderr ?? '')?.[1] ?? '';
      expect(await opens(pi.volume, recoveryKey)).toBe(true);
      expect(existsSync(backup)).toBe(true);

      // With the recovery key in place, every trouble left names adopt, and no hint leads elsewhere.
      const second = await doctor();
      expect(troubles(second).map((f) => f.id)).not.toContain('luks.no-recovery-path');
      expect(troubles(second).length).toBeGreaterThan(0);
      for (const f of troubles(second)) expect(f.hint, f.id).toMatch(/^zkluks adopt --root /);
      // Without a terminal adopt shows its plan (no second recovery key) and says how to confirm it.
      const asked = await follow(finding(second, 'crypttab.zymbit-keyscript').hint, {
        env: pi.env,
        exits: () => [2],
      });
      expect(asked.results[0]?.stderr).toMatch(/enroll a zkluks Zymkey keyslot/);
      expect(asked.results[0]?.stderr).not.toMatch(/add a recovery key/);
      await follow(hintOf(asked.results[0] ?? { exitCode: 1, stdout: '', stderr: '' }), { env: pi.env });

      // Next boot: the image the firmware loads carries the zkluks keyscript, which unlocks through the Zymkey.
      const paths = await bootPaths(pi, recoveryKey);
      expect(paths.new, paths.detail).toBe(true);
      const boot = await nextBoot(pi.volume, pi.simState);
      expect(boot.opens, boot.record).toBe(true);
      expect(boot.record).toMatch(/method=zymkey/);

      // The doctor is clean but for Zymbit's old slot, and its hint finishes the job.
      const third = await doctor();
      expect(troubles(third)).toEqual([]);
      const old = finding(third, 'luks.adopted-old-slot');
      // Without a terminal: the recovery key is checked from the file the admin keeps it in, and
      // adopt --remove-old is confirmed as its own hint says.
      const keyFile = join(pi.dir, 'recovery.txt');
      writeFileSync(keyFile, recoveryKey, { mode: 0o600 });
      const finishing = await follow(old.hint, { env: pi.env, exits: () => [2] });
      for (const r of finishing.results) {
        await follow(hintOf(r), { values: { FILE: keyFile }, env: pi.env });
      }
      expect(await opens(pi.volume, pi.key)).toBe(false);
      expect(pi.exists('/var/lib/zymbit/key.bin.lock')).toBe(false);
      expect(await opens(pi.volume, recoveryKey)).toBe(true);
      expect((await nextBoot(pi.volume, pi.simState)).opens).toBe(true);

      const last = await doctor();
      expect(troubles(last)).toEqual([]);
      expect(last.findings.map((f) => f.id)).not.toContain('luks.adopted-old-slot');
      expect(last.verdict.status).toBe('ok');
    } finally {
      pi.cleanup();
    }
  }, 300_000);
});
