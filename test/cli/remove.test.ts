import { writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { createRunner } from '../../src/exec.ts';
import { readHeader } from '../../src/keyslot/header.ts';
import { bundle, nodeBin, zkluks } from '../helpers/cli.ts';
import { luksImage } from '../helpers/luks.ts';
import { expectIntact, simEnv, simStateDir } from '../keyslot/sim-fixture.ts';
import { slowCryptsetup, waitFor } from '../keyslot/slow-cryptsetup.ts';

const runner = createRunner();

async function enrolled(recovery = false) {
  const img = await luksImage();
  const sim = await simStateDir();
  const keyFile = `${img.dir}/unlock.key`;
  await writeFile(keyFile, img.passphrase, { mode: 0o600 });
  const run = (args: string[]) => zkluks(args, { env: simEnv(sim) });
  const args = ['enroll', img.path, '--unlock-key-file', keyFile];
  const r = await run(recovery ? args : [...args, '--no-recovery-key']);
  expect(r.exitCode, r.stderr).toBe(0);
  return { img, sim, keyFile, run };
}

describe('zkluks remove', () => {
  it('wipes the Zymkey keyslot and its token once a passphrase given proves a way in stays', async () => {
    const { img, run, keyFile } = await enrolled();
    const unproven = await run(['remove', img.path]);
    expect(unproven.exitCode).toBe(3);
    expect(unproven.stderr).toMatch(/keyslot 0 has no token, so what opens it is not proven/);
    expect(unproven.stderr).toMatch(/hint: give a passphrase that opens keyslot 0: --unlock-key-file FILE/);
    const r = await run(['remove', img.path, '--unlock-key-file', keyFile]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe(
      `removed the Zymkey from '${img.path}': removed zkluks-zymkey token 0; wiped keyslot 1`,
    );
    const h = await readHeader(runner, img.path);
    expect(h.keyslots.map((k) => k.id)).toEqual([0]);
    expect(h.tokens).toEqual([]);
    await expectIntact(img.path, img.passphrase);
  });

  it('refuses (exit 3) when no passphrase or recovery keyslot would remain, unless told twice', async () => {
    const { img, run } = await enrolled();
    await runner('cryptsetup', ['luksKillSlot', '--batch-mode', img.path, '0'], { input: '' });
    const before = await readHeader(runner, img.path);
    const refused = await run(['remove', img.path]);
    expect(refused.exitCode).toBe(3);
    expect(refused.stderr).toMatch(/never leaves a volume without a way in that does not need the Zymkey/);
    expect(refused.stderr).toMatch(/hint: zkluks recovery add/);
    const once = await run(['remove', img.path, '--i-understand-this-locks-me-out']);
    expect(once.exitCode).toBe(3);
    expect(await readHeader(runner, img.path)).toEqual(before);
    expect((await run(['verify', img.path])).exitCode).toBe(0);
    const twice = await run(['remove', img.path, '--i-understand-this-locks-me-out', '--yes']);
    expect(twice.exitCode, twice.stderr).toBe(0);
    expect((await readHeader(runner, img.path)).keyslots).toEqual([]);
  }, 180_000);

  it('a priority-ignore passphrase slot is no way in: refused, and the refusal says the prompt never tries it', async () => {
    const { img, run, keyFile } = await enrolled();
    await runner('cryptsetup', ['config', '--priority', 'ignore', '--key-slot', '0', img.path], {
      input: '',
    });
    const r = await run(['remove', img.path, '--unlock-key-file', keyFile]);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/keyslot 0 has priority ignore, so the boot prompt never tries it/);
    expect((await run(['verify', img.path])).exitCode).toBe(0);
    const list = await run(['list', img.path]);
    expect(list.stdout).toMatch(/warning: keyslot 0 has priority ignore: the boot prompt never tries it/);
  });

  it('also removes a dangling zkluks-zymkey token, and never a token of another type', async () => {
    const { img, run } = await enrolled(true);
    await runner('cryptsetup', ['token', 'import', '--token-id', '5', '--json-file', '-', img.path], {
      input: JSON.stringify({ type: 'example-hsm', keyslots: ['0'] }),
    });
    await runner('cryptsetup', ['luksKillSlot', '--batch-mode', img.path, '1'], { input: '' });
    expect((await run(['remove', img.path])).exitCode).toBe(0);
    const h = await readHeader(runner, img.path);
    expect(h.tokens.map((t) => [t.id, t.type])).toEqual([
      [1, 'zkluks-recovery'],
      [5, 'example-hsm'],
    ]);
    await expectIntact(img.path, img.passphrase);
  });

  it('a second zkluks run on the same volume at the same time is refused (exit 3) and the first completes', async () => {
    const { img, sim, run } = await enrolled(true);
    const slow = await slowCryptsetup(['token', 'remove'], 2);
    const first = execa(nodeBin, [bundle, 'remove', img.path], {
      env: { ...simEnv(sim), ...slow.env },
      reject: false,
    });
    await waitFor(slow.started);
    const second = await run(['rotate', img.path]);
    expect(second.exitCode).toBe(3);
    expect(second.stderr).toMatch(
      /another zkluks operation \(pid \d+\) is changing it; zkluks runs one operation per volume/,
    );
    expect((await first).exitCode).toBe(0);
    const h = await readHeader(runner, img.path);
    expect(h.tokens.map((t) => t.type)).toEqual(['zkluks-recovery']);
    await expectIntact(img.path, img.passphrase);
  });

  it.each(['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const)(
    '%s mid-operation rolls the header back before exiting',
    async (signal) => {
      const { img, sim } = await enrolled(true);
      const before = await readHeader(runner, img.path);
      const slow = await slowCryptsetup(['luksKillSlot'], 2);
      const child = execa(nodeBin, [bundle, 'remove', img.path], {
        env: { ...simEnv(sim), ...slow.env },
        reject: false,
      });
      await waitFor(slow.started);
      child.kill(signal);
      const r = await child;
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(`interrupted by ${signal}; the header was restored from its backup and is as before`),
      );
      expect(await readHeader(runner, img.path)).toEqual(before);
      await expectIntact(img.path, img.passphrase);
      expect((await zkluks(['verify', img.path], { env: simEnv(sim) })).exitCode).toBe(0);
    },
  );
});
