import { stat, readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { simArm, simBindLock, simBreach, simSetReachable } from '../../src/device/sim-control.ts';
import { createRunner } from '../../src/exec.ts';
import { readHeader } from '../../src/keyslot/header.ts';
import { zkluks } from '../helpers/cli.ts';
import { addKey, luksImage, opens, type TestImage } from '../helpers/luks.ts';
import { expectIntact, simEnv, simStateDir } from '../keyslot/sim-fixture.ts';
import { silentModule, silentModuleText } from '../helpers/opaque.ts';

const runner = createRunner();

async function setup(options: Parameters<typeof luksImage>[0] = {}) {
  const img = await luksImage(options);
  const sim = await simStateDir();
  const keyFile = `${img.dir}/unlock.key`;
  await writeFile(keyFile, img.passphrase, { mode: 0o600 });
  const run = (args: string[], input?: string) => zkluks(args, { env: simEnv(sim), input });
  return { img, sim, keyFile, run };
}

async function unchanged(img: TestImage, fn: () => Promise<void>) {
  const before = await readHeader(runner, img.path);
  await fn();
  expect(await readHeader(runner, img.path)).toEqual(before);
  await expectIntact(img.path, img.passphrase);
}

describe('zkluks enroll', () => {
  it('enrolls with a key file, writes the recovery key 0600 and shows it nowhere else', async () => {
    const { img, keyFile, run } = await setup();
    const recoveryFile = `${img.dir}/recovery.txt`;
    const r = await run([
      'enroll',
      img.path,
      '--unlock-key-file',
      keyFile,
      '--recovery-key-file',
      recoveryFile,
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/enrolled .*Zymkey keyslot 1 \(priority prefer\), recovery keyslot 2/);
    expect((await stat(recoveryFile)).mode & 0o777).toBe(0o600);
    const key = await readFile(recoveryFile, 'utf8');
    expect(r.stderr + r.stdout).not.toContain(key);
    expect(await opens(img.path, key, 2)).toBe(true);
    expect((await run(['verify', img.path])).exitCode).toBe(0);
    await expectIntact(img.path, img.passphrase);
  });

  it('reads the passphrase from stdin with --unlock-key-file - and shows the recovery key once on stderr', async () => {
    const { img, run } = await setup();
    const r = await run(['enroll', img.path, '--unlock-key-file', '-'], img.passphrase);
    expect(r.exitCode, r.stderr).toBe(0);
    const key = r.stderr.match(/([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}/)?.[0] as string;
    expect(await opens(img.path, key, 2)).toBe(true);
    expect(r.stdout).not.toContain(key);
  });

  it('says an enrolled volume is enrolled and changes nothing without --force', async () => {
    const { img, keyFile, run } = await setup();
    await run(['enroll', img.path, '--unlock-key-file', keyFile]);
    await unchanged(img, async () => {
      const r = await run(['enroll', img.path, '--unlock-key-file', keyFile, '--json']);
      expect(r.exitCode).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({
        changed: false,
        unchanged: expect.stringMatching(/already enrolled/),
      });
    });
    const forced = await run(['enroll', img.path, '--unlock-key-file', keyFile, '--force', '--json']);
    expect(JSON.parse(forced.stdout)).toMatchObject({ changed: true, zymkeySlot: 3, recoverySlot: null });
    await expectIntact(img.path, img.passphrase);
  });

  it('--dry-run prints the plan and changes nothing', async () => {
    const { img, keyFile, run } = await setup();
    await unchanged(img, async () => {
      const r = await run(['enroll', img.path, '--unlock-key-file', keyFile, '--dry-run']);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toMatch(/back up the LUKS header[\s\S]*add the new Zymkey-sealed key to keyslot 1/);
    });
  });

  it('refuses a wrong passphrase, naming it, and changes nothing', async () => {
    const { img, run } = await setup();
    await unchanged(img, async () => {
      const r = await run(['enroll', img.path, '--unlock-key-file=-'], 'not the passphrase');
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/wrong passphrase: the key given does not open any keyslot/);
    });
  });

  it('explains a missing path, a file that is not LUKS and a LUKS1 volume', async () => {
    const { img, keyFile, run } = await setup({ type: 'none' });
    const missing = await run(['enroll', `${img.dir}/nope.img`, '--unlock-key-file', keyFile]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/Failed to read LUKS header of '.*nope.img': no such file or device/);
    const notLuks = await run(['enroll', img.path, '--unlock-key-file', keyFile]);
    expect(notLuks.stderr).toMatch(/not a LUKS volume/);
    const v1 = await luksImage({ type: 'luks1' });
    const r = await run(['enroll', v1.path, '--unlock-key-file', keyFile]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(
      /it is LUKS1[\s\S]*hint: cryptsetup luksHeaderBackup .* && cryptsetup convert --type luks2/,
    );
  });

  it('fails clearly when all 32 keyslots are in use', async () => {
    const { img, keyFile, run } = await setup();
    for (let slot = 1; slot < 32; slot++) await addKey(img.path, img.passphrase, `other key ${slot}`, slot);
    await unchanged(img, async () => {
      const r = await run(['enroll', img.path, '--unlock-key-file', keyFile]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/all 32 keyslots are in use/);
    });
  }, 120_000);

  it('fails clearly when the LUKS2 JSON area is too full for the token', async () => {
    const { img, keyFile, run } = await setup({ metadataSizeKiB: 16 });
    const filler = 'x'.repeat(1500);
    for (let id = 0; id < 32; id++) {
      const r = await runner(
        'cryptsetup',
        ['token', 'import', '--token-id', String(id), '--json-file', '-', img.path],
        {
          input: JSON.stringify({ type: 'other-tool', keyslots: ['0'], filler }),
          reject: false,
        },
      );
      if (r.exitCode !== 0) break;
    }
    await unchanged(img, async () => {
      const r = await run(['enroll', img.path, '--unlock-key-file', keyFile]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/LUKS2 metadata area is too full/);
    });
  });

  it('exits 4 with the reason when the Zymkey is unplugged or self-destructed, changing nothing', async () => {
    const { img, sim, keyFile, run } = await setup();
    simSetReachable(sim, false);
    await unchanged(img, async () => {
      const r = await run(['enroll', img.path, '--unlock-key-file', keyFile]);
      expect(r.exitCode).toBe(4);
      expect(r.stderr).toMatch(silentModuleText(/unreachable/));
    });
    simSetReachable(sim, true);
    simBindLock(sim);
    simArm(sim, 1, 'self-destruct');
    simBreach(sim, 1);
    await unchanged(img, async () => {
      const r = await run(['enroll', img.path, '--unlock-key-file', keyFile, '--json']);
      expect(r.exitCode).toBe(4);
      expect(JSON.parse(r.stdout).error.reason).toBe(silentModule('self-destructed'));
    });
  });

  it('asks for the passphrase on a terminal only; without one and without a key file it is a usage error', async () => {
    const { img, run } = await setup();
    const r = await run(['enroll', img.path]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/stdin is not a terminal[\s\S]*--unlock-key-file/);
  });

  it('rejects an escrow recipient that is not an age recipient before doing anything', async () => {
    const { img, keyFile, run } = await setup();
    const r = await run(['enroll', img.path, '--unlock-key-file', keyFile, '--escrow', 'ssh-ed25519 AAAA']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/not an age recipient/);
  });
});
