import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createRunner } from '../../src/exec.ts';
import { zkluks } from '../helpers/cli.ts';
import { addKey, luksImage } from '../helpers/luks.ts';
import { simEnv, simStateDir } from '../keyslot/sim-fixture.ts';

describe('zkluks list', () => {
  it('shows every keyslot with its kind, KDF, priority and token, as a table and as JSON', async () => {
    const img = await luksImage();
    const sim = await simStateDir();
    const keyFile = `${img.dir}/unlock.key`;
    await writeFile(keyFile, img.passphrase, { mode: 0o600 });
    await addKey(img.path, img.passphrase, 'tpm stand-in', 5);
    await createRunner()('cryptsetup', ['token', 'import', '--token-id', '7', '--json-file', '-', img.path], {
      input: JSON.stringify({ type: 'example-hsm', keyslots: ['5'] }),
    });
    expect(
      (await zkluks(['enroll', img.path, '--unlock-key-file', keyFile], { env: simEnv(sim) })).exitCode,
    ).toBe(0);
    const table = await zkluks(['list', img.path]);
    expect(table.exitCode).toBe(0);
    expect(table.stdout.split('\n').slice(0, 5)).toEqual([
      'SLOT  KIND                 KDF            PRIORITY  TOKEN',
      '0     unknown              pbkdf2 (1000)  normal    -',
      '1     zymkey               pbkdf2 (1000)  prefer    0:zkluks-zymkey',
      '2     recovery             pbkdf2 (1000)  normal    1:zkluks-recovery',
      '5     other (example-hsm)  pbkdf2 (1000)  normal    7:example-hsm',
    ]);
    expect(table.stdout).toMatch(/note: keyslot 0 has no token: a passphrase, or a key nobody holds/);
    const json = JSON.parse((await zkluks(['list', img.path, '--json'])).stdout);
    expect(json.freeKeyslots).toBe(28);
    expect(json.slots.map((s: { slot: number; kind: string }) => [s.slot, s.kind])).toEqual([
      [0, 'unknown'],
      [1, 'zymkey'],
      [2, 'recovery'],
      [5, 'other-token'],
    ]);
    expect(json.problems).toEqual([]);
    expect(json.interrupted).toEqual([]);
  });

  it('shows the slots of an interrupted change as pending, with a warning and an interrupted field', async () => {
    const img = await luksImage();
    await addKey(img.path, img.passphrase, 'half-added key', 1);
    const salt = JSON.parse(
      (await createRunner()('cryptsetup', ['luksDump', '--dump-json-metadata', img.path])).stdout,
    ).keyslots['1'].kdf.salt;
    const intent = {
      type: 'zkluks-pending',
      keyslots: [],
      version: 1,
      operation: 'recovery-add',
      phase: 'add',
      created: '2026-01-01T00:00:00.000Z',
      added: { slots: [{ slot: 1, salt }], tokens: [0] },
      removed: { tokens: [], slots: [] },
    };
    await createRunner()('cryptsetup', ['token', 'import', '--token-id', '4', '--json-file', '-', img.path], {
      input: JSON.stringify(intent),
    });
    const table = await zkluks(['list', img.path]);
    expect(table.stdout.split('\n')[2]).toBe('1     pending  pbkdf2 (1000)  normal    -');
    expect(table.stdout).toMatch(/warning: an interrupted recovery-add .*phase add.*zkluks repair/);
    const json = JSON.parse((await zkluks(['list', img.path, '--json'])).stdout);
    expect(json.interrupted).toMatchObject([
      { token: 4, operation: 'recovery-add', phase: 'add', slots: [1] },
    ]);
    const doctor = await zkluks(['doctor', img.path, '--json']);
    expect(doctor.stdout).toContain('luks.interrupted');
    const dry = await zkluks(['repair', img.path, '--dry-run']);
    expect(dry.stdout).toMatch(/Plan: Roll back .*\n {2}1\. wipe keyslot 1\n {2}2\. remove the record/);
    expect((await zkluks(['repair', img.path])).exitCode).toBe(0);
    const settled = JSON.parse((await zkluks(['list', img.path, '--json'])).stdout);
    expect(settled.slots.map((s: { slot: number }) => s.slot)).toEqual([0]);
    expect(settled.interrupted).toEqual([]);
  });

  it('warns about a zkluks token copied onto another keyslot and shows that slot as unverified', async () => {
    const img = await luksImage();
    const sim = await simStateDir();
    const keyFile = `${img.dir}/unlock.key`;
    await writeFile(keyFile, img.passphrase, { mode: 0o600 });
    expect(
      (await zkluks(['enroll', img.path, '--unlock-key-file', keyFile], { env: simEnv(sim) })).exitCode,
    ).toBe(0);
    const run = createRunner();
    const token = JSON.parse(
      (await run('cryptsetup', ['token', 'export', '--token-id', '0', img.path])).stdout,
    );
    await run('cryptsetup', ['token', 'import', '--token-id', '3', '--json-file', '-', img.path], {
      input: JSON.stringify({ ...token, keyslots: ['0'] }),
    });
    const table = await zkluks(['list', img.path]);
    expect(table.stdout.split('\n')[1]).toBe('0     unverified  pbkdf2 (1000)  normal    3:zkluks-zymkey');
    expect(table.stdout).toContain(
      "warning: token 3 (zkluks-zymkey) was not made for keyslot 0 (the slot's salt differs from the one it recorded",
    );
    const json = JSON.parse((await zkluks(['list', img.path, '--json'])).stdout);
    expect(json.foreignTokens).toEqual([{ token: 3, type: 'zkluks-zymkey', slot: 0 }]);
  });

  it('fails on a file that is not LUKS', async () => {
    const img = await luksImage({ type: 'none' });
    const r = await zkluks(['list', img.path]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/not a LUKS volume/);
  });

  it('asks cryptsetup for the UUID while the JSON dump still runs', async () => {
    const img = await luksImage();
    const dir = await mkdtemp(join(tmpdir(), 'zkluks-trace-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const real = ['/usr/sbin/cryptsetup', '/sbin/cryptsetup', '/usr/bin/cryptsetup'].find(
      existsSync,
    ) as string;
    const log = join(dir, 'calls');
    await writeFile(
      join(dir, 'cryptsetup'),
      `#!/bin/sh\necho "start $1" >>'${log}'\nsleep 0.3\n'${real}' "$@"\nrc=$?\necho "end $1" >>'${log}'\nexit $rc\n`,
    );
    await chmod(join(dir, 'cryptsetup'), 0o755);
    const r = await zkluks(['list', img.path, '--json'], {
      env: { PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}` },
    });
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout).uuid).toMatch(/^[0-9a-f-]{36}$/);
    const calls = (await readFile(log, 'utf8')).trim().split('\n');
    expect(calls).toHaveLength(4);
    expect(calls.slice(0, 2).sort()).toEqual(['start luksDump', 'start luksUUID']);
  });
});
