import { readFile, stat, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { simArm, simBindLock, simBreach } from '../../src/device/sim-control.ts';
import { createRunner } from '../../src/exec.ts';
import { readHeader } from '../../src/keyslot/header.ts';
import { zkluks } from '../helpers/cli.ts';
import { luksImage, opens } from '../helpers/luks.ts';
import { expectIntact, simEnv, simStateDir } from '../keyslot/sim-fixture.ts';

const runner = createRunner();

async function setup() {
  const img = await luksImage();
  const sim = await simStateDir();
  const keyFile = `${img.dir}/unlock.key`;
  await writeFile(keyFile, img.passphrase, { mode: 0o600 });
  const identity = `${img.dir}/identity.txt`;
  await runner('age-keygen', ['-o', identity]);
  const recipient = (await runner('age-keygen', ['-y', identity])).stdout.trim();
  const run = (args: string[], input?: string) => zkluks(args, { env: simEnv(sim), input });
  return { img, sim, keyFile, identity, recipient, run };
}

describe('zkluks recovery', () => {
  it('add (authorized by the Zymkey) with an age escrow: file 0600, verify, and unlock on a dead Zymkey', async () => {
    const { img, sim, keyFile, identity, recipient, run } = await setup();
    expect(
      (await run(['enroll', img.path, '--unlock-key-file', keyFile, '--no-recovery-key'])).exitCode,
    ).toBe(0);
    const file = `${img.dir}/recovery.txt`;
    const added = await run([
      'recovery',
      'add',
      img.path,
      '--escrow',
      recipient,
      '--recovery-key-file',
      file,
    ]);
    expect(added.exitCode, added.stderr).toBe(0);
    expect(added.stdout).toMatch(new RegExp(`keyslot 2, escrowed to ${recipient}`));
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const key = await readFile(file, 'utf8');
    expect(key).toMatch(/^([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}$/);
    const token = (await readHeader(runner, img.path)).tokens.find((t) => t.type === 'zkluks-recovery');
    expect(token?.json).toMatchObject({ escrow: { format: 'age', recipient } });
    expect(JSON.stringify(token?.json)).not.toContain(key);

    expect((await run(['recovery', 'verify', img.path, '--recovery-key-file', file])).exitCode).toBe(0);
    expect((await run(['recovery', 'verify', img.path, '--identity', identity])).exitCode).toBe(0);
    const wrong = await run(
      ['recovery', 'verify', img.path, '--recovery-key-file=-'],
      'cccccccc-'.repeat(7) + 'cccccccc',
    );
    expect(wrong.exitCode).toBe(1);

    simBindLock(sim);
    simArm(sim, 0, 'self-destruct');
    simBreach(sim, 0);
    expect((await run(['verify', img.path])).exitCode).toBe(4);
    const unlocked = await run(['recovery', 'unlock', img.path, '--identity', identity]);
    expect(unlocked.exitCode).toBe(0);
    expect(unlocked.stdout).toBe(key);
    expect(await opens(img.path, unlocked.stdout)).toBe(true);
    await expectIntact(img.path, img.passphrase);
  });

  it('keeps an existing recovery key unless --force; --force replaces it after verifying the new one', async () => {
    const { img, keyFile, run } = await setup();
    const first = `${img.dir}/first.txt`;
    await run(['enroll', img.path, '--unlock-key-file', keyFile, '--recovery-key-file', first]);
    const again = await run(['recovery', 'add', img.path, '--unlock-key-file', keyFile]);
    expect(again.stdout).toMatch(/unchanged: .* already has a recovery key in keyslot 2/);
    const second = `${img.dir}/second.txt`;
    const forced = await run([
      'recovery',
      'add',
      img.path,
      '--force',
      '--unlock-key-file',
      keyFile,
      '--recovery-key-file',
      second,
    ]);
    expect(forced.exitCode, forced.stderr).toBe(0);
    expect(await opens(img.path, await readFile(first, 'utf8'))).toBe(false);
    expect(await opens(img.path, await readFile(second, 'utf8'), 3)).toBe(true);
    await expectIntact(img.path, img.passphrase);
  });

  it('remove refuses (exit 3) when the recovery key is the only way in without the Zymkey', async () => {
    const { img, keyFile, run } = await setup();
    await run(['enroll', img.path, '--unlock-key-file', keyFile]);
    await runner('cryptsetup', ['luksKillSlot', '--batch-mode', img.path, '0'], { input: '' });
    const before = await readHeader(runner, img.path);
    const r = await run(['recovery', 'remove', img.path]);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/would leave no keyslot proven to open without the Zymkey/);
    expect(await readHeader(runner, img.path)).toEqual(before);
  });

  it('remove wipes the recovery keyslot and token when a passphrase given opens a slot that remains', async () => {
    const { img, keyFile, run } = await setup();
    await run(['enroll', img.path, '--unlock-key-file', keyFile]);
    // A slot without a token is not taken for a passphrase on trust.
    expect((await run(['recovery', 'remove', img.path])).exitCode).toBe(3);
    const r = await run(['recovery', 'remove', img.path, '--unlock-key-file', keyFile]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/removed zkluks-recovery token 1; wiped keyslot 2$/);
    const h = await readHeader(runner, img.path);
    expect(h.tokens.map((t) => t.type)).toEqual(['zkluks-zymkey']);
    expect(h.keyslots.map((k) => k.id)).toEqual([0, 1]);
    await expectIntact(img.path, img.passphrase);
  });

  it('unlock with the wrong identity fails naming the recipient; a corrupt escrow is a token error', async () => {
    const { img, keyFile, recipient, run } = await setup();
    await run(['enroll', img.path, '--unlock-key-file', keyFile, '--escrow', recipient]);
    const other = `${img.dir}/other.txt`;
    await runner('age-keygen', ['-o', other]);
    const r = await run(['recovery', 'unlock', img.path, '--identity', other]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`Failed to decrypt the escrowed recovery key[\\s\\S]*${recipient}`));
    const t = JSON.parse(
      (await runner('cryptsetup', ['token', 'export', '--token-id', '1', img.path])).stdout,
    );
    await runner(
      'cryptsetup',
      ['token', 'import', '--token-id', '1', '--token-replace', '--json-file', '-', img.path],
      {
        input: JSON.stringify({ ...t, escrow: { ...t.escrow, ciphertext: 'garbage' } }),
      },
    );
    const corrupt = await run(['recovery', 'unlock', img.path, '--identity', other]);
    expect(corrupt.exitCode).toBe(1);
    expect(corrupt.stderr).toMatch(
      /zkluks-recovery token 1 .*corrupt token: escrow.ciphertext is not an ASCII-armored age file/,
    );
  });

  it('--qr draws the key as a terminal QR code with qrencode', async () => {
    const { img, keyFile, run } = await setup();
    const r = await run(['enroll', img.path, '--unlock-key-file', keyFile, '--qr']);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/█/);
  });
});
