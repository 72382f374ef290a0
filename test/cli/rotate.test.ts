import { writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { simArm, simBindLock, simBreach } from '../../src/device/sim-control.ts';
import { createRunner } from '../../src/exec.ts';
import { readHeader } from '../../src/keyslot/header.ts';
import { bundle, nodeBin, zkluks } from '../helpers/cli.ts';
import { luksImage } from '../helpers/luks.ts';
import { HANG } from '../helpers/opaque.ts';
import { expectIntact, simEnv, simStateDir } from '../keyslot/sim-fixture.ts';
import { slowCryptsetup, waitFor } from '../keyslot/slow-cryptsetup.ts';

const runner = createRunner();

async function enrolled() {
  const img = await luksImage();
  const sim = await simStateDir();
  const keyFile = `${img.dir}/unlock.key`;
  await writeFile(keyFile, img.passphrase, { mode: 0o600 });
  const run = (args: string[]) => zkluks(args, { env: simEnv(sim) });
  expect((await run(['enroll', img.path, '--unlock-key-file', keyFile])).exitCode).toBe(0);
  return { img, sim, keyFile, run };
}

describe('zkluks rotate', () => {
  it('replaces the Zymkey key and keyslot in one call, authorized by the current Zymkey key', async () => {
    const { img, run } = await enrolled();
    const oldToken = (await readHeader(runner, img.path)).tokens.find((t) => t.type === 'zkluks-zymkey');
    const r = await run(['rotate', img.path, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ changed: true, zymkeySlot: 3 });
    const h = await readHeader(runner, img.path);
    expect(h.keyslots.map((k) => [k.id, k.priority])).toEqual([
      [0, 'normal'],
      [2, 'normal'],
      [3, 'prefer'],
    ]);
    const newToken = h.tokens.find((t) => t.type === 'zkluks-zymkey');
    expect(newToken?.json.sealed).not.toBe(oldToken?.json.sealed);
    expect((await run(['verify', img.path])).exitCode).toBe(0);
    await expectIntact(img.path, img.passphrase);
  });

  it('--dry-run shows add, verify, then wipe — in that order — and changes nothing', async () => {
    const { img, run } = await enrolled();
    const before = await readHeader(runner, img.path);
    const r = await run(['rotate', img.path, '--dry-run']);
    expect(r.stdout).toMatch(
      /add the new Zymkey-sealed key to keyslot 3[\s\S]*verify[\s\S]*remove zkluks-zymkey token 0[\s\S]*wipe keyslot 1/,
    );
    expect(await readHeader(runner, img.path)).toEqual(before);
  });

  it('exits 4 when the Zymkey self-destructed, with or without a passphrase, and changes nothing', async () => {
    const { img, sim, keyFile, run } = await enrolled();
    const before = await readHeader(runner, img.path);
    simBindLock(sim);
    simArm(sim, 0, 'self-destruct');
    simBreach(sim, 0);
    const r = await run(['rotate', img.path]);
    expect(r.exitCode).toBe(4);
    // Opaque tools leave the probes' account (which names self-destructed among the LED's patterns);
    // hanging ones, that the module did not answer.
    expect(r.stderr).toMatch(
      HANG
        ? /did not answer[\s\S]*hint: zkluks rotate --unlock-key-file/
        : /self-destructed[\s\S]*hint: zkluks rotate --unlock-key-file/,
    );
    expect(await readHeader(runner, img.path)).toEqual(before);
    // A self-destructed module cannot seal a new key either: still exit 4, still unchanged.
    const withKey = await run(['rotate', img.path, '--unlock-key-file', keyFile]);
    expect(withKey.exitCode).toBe(4);
    expect(await readHeader(runner, img.path)).toEqual(before);
    await expectIntact(img.path, img.passphrase);
  });

  it('fails on a volume that is not enrolled', async () => {
    const img = await luksImage();
    const r = await zkluks(['rotate', img.path], { env: simEnv(await simStateDir()) });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/not enrolled[\s\S]*hint: zkluks enroll/);
  });

  it('Ctrl-C while the new token is imported restores the header; the old key still verifies', async () => {
    const { img, sim } = await enrolled();
    const before = await readHeader(runner, img.path);
    const slow = await slowCryptsetup(['token', 'import'], 2);
    const child = execa(nodeBin, [bundle, 'rotate', img.path], {
      env: { ...simEnv(sim), ...slow.env },
      reject: false,
    });
    await waitFor(slow.started);
    child.kill('SIGINT');
    const r = await child;
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(
      /interrupted by SIGINT; the header was restored from its backup and is as before/,
    );
    expect(await readHeader(runner, img.path)).toEqual(before);
    expect((await zkluks(['verify', img.path], { env: simEnv(sim) })).exitCode).toBe(0);
    await expectIntact(img.path, img.passphrase);
  });
});
