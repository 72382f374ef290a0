import { describe, expect, it } from 'vitest';
import { createRunner, failingRunner, type Runner, type RunRecord } from '../../src/exec.ts';
import { isLuks, parseHeader, readHeader } from '../../src/keyslot/header.ts';
import { addKey, luksImage } from '../helpers/luks.ts';

const runner = createRunner();

const dump = (extra: { keyslots?: object; tokens?: object } = {}) =>
  JSON.stringify({
    keyslots: {
      '0': {
        type: 'luks2',
        key_size: 64,
        kdf: { type: 'argon2id', time: 4, memory: 1048576, cpus: 4, salt: 'c2FsdDA=' },
      },
      '3': {
        type: 'luks2',
        key_size: 64,
        kdf: { type: 'pbkdf2', hash: 'sha256', iterations: 1000 },
        priority: 2,
      },
      ...extra.keyslots,
    },
    tokens: { '1': { type: 'zkluks-zymkey', keyslots: ['3'], version: 1 }, ...extra.tokens },
    segments: {},
    digests: {},
    config: { json_size: '12288', keyslots_size: '16744448' },
  });

describe('parseHeader', () => {
  it('reads keyslots with KDF, cost and priority, tokens with their keyslots, and the free slot count', () => {
    const h = parseHeader(dump(), { volume: 'v.img', uuid: 'u-1' });
    expect(h.uuid).toBe('u-1');
    expect(h.keyslots).toEqual([
      {
        id: 0,
        type: 'luks2',
        kdf: 'argon2id',
        iterations: 4,
        memoryKiB: 1048576,
        priority: 'normal',
        keySize: 64,
        salt: 'c2FsdDA=',
      },
      {
        id: 3,
        type: 'luks2',
        kdf: 'pbkdf2',
        iterations: 1000,
        memoryKiB: null,
        priority: 'prefer',
        keySize: 64,
        salt: null,
      },
    ]);
    expect(h.tokens).toEqual([
      {
        id: 1,
        type: 'zkluks-zymkey',
        keyslots: [3],
        json: { type: 'zkluks-zymkey', keyslots: ['3'], version: 1 },
      },
    ]);
    expect(h.freeKeyslots).toBe(30);
    expect(h.jsonSize).toBe(12288);
    expect(h.jsonUsed).toBeGreaterThan(100);
  });

  it('reads priority ignore and sorts ids numerically', () => {
    const h = parseHeader(
      dump({
        keyslots: {
          '10': { type: 'luks2', key_size: 64, kdf: { type: 'pbkdf2', iterations: 5 }, priority: 0 },
        },
      }),
      { volume: 'v', uuid: 'u' },
    );
    expect(h.keyslots.map((k) => [k.id, k.priority])).toEqual([
      [0, 'normal'],
      [3, 'prefer'],
      [10, 'ignore'],
    ]);
  });

  it('rejects text that is not LUKS2 metadata with the volume named', () => {
    expect(() => parseHeader('not json', { volume: 'v.img', uuid: '' })).toThrow(
      /LUKS header of 'v.img'.*not JSON/,
    );
    expect(() => parseHeader('{"x":1}', { volume: 'v.img', uuid: '' })).toThrow(/no keyslots/);
  });
});

describe('readHeader on real images', () => {
  it('reads a fresh LUKS2 image: version 2, uuid, one pbkdf2 slot, no tokens, 31 free', async () => {
    const img = await luksImage();
    const h = await readHeader(runner, img.path);
    expect(h.version).toBe(2);
    expect(h.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(h.keyslots).toMatchObject([{ id: 0, kdf: 'pbkdf2', iterations: 1000, priority: 'normal' }]);
    expect(h.tokens).toEqual([]);
    expect(h.freeKeyslots).toBe(31);
  });

  it('sees a killed slot leave its token dangling (empty keyslots)', async () => {
    const img = await luksImage();
    await addKey(img.path, img.passphrase, 'second key', 4);
    await runner('cryptsetup', ['token', 'import', '--token-id', '2', img.path], {
      input: JSON.stringify({ type: 'other', keyslots: ['4'] }),
    });
    expect((await readHeader(runner, img.path)).tokens).toMatchObject([
      { id: 2, type: 'other', keyslots: [4] },
    ]);
    await runner('cryptsetup', ['luksKillSlot', '--batch-mode', img.path, '4'], { input: '' });
    expect((await readHeader(runner, img.path)).tokens).toMatchObject([{ id: 2, keyslots: [] }]);
  });

  it('reads a good LUKS2 header with two cryptsetup runs (the JSON dump and the UUID)', async () => {
    const img = await luksImage();
    const records: RunRecord[] = [];
    const header = await readHeader(createRunner({ records }), img.path);
    expect(header.keyslots.map((k) => k.id)).toEqual([0]);
    expect(records.map((r) => `${r.file} ${r.args[0]}`)).toEqual([
      'cryptsetup luksDump',
      'cryptsetup luksUUID',
    ]);
  });

  it('tells a missing path, a non-LUKS file and a LUKS1 volume apart', async () => {
    const none = await luksImage({ type: 'none' });
    const v1 = await luksImage({ type: 'luks1' });
    expect(await isLuks(runner, `${none.dir}/absent.img`)).toBe('missing');
    expect(await isLuks(runner, none.path)).toBe('not-luks');
    expect(await isLuks(runner, v1.path)).toBe('luks1');
    await expect(readHeader(runner, `${none.dir}/absent.img`)).rejects.toThrow(/no such file or device/);
    await expect(readHeader(runner, none.path)).rejects.toThrow(/not a LUKS volume/);
    await expect(readHeader(runner, v1.path)).rejects.toMatchObject({
      message: expect.stringMatching(/it is LUKS1/),
      hint: expect.stringMatching(/luksHeaderBackup.*cryptsetup convert --type luks2/),
    });
  });

  it('reads the same facts and gives the same errors when the UUID is asked for during the dump', async () => {
    const img = await luksImage();
    const none = await luksImage({ type: 'none' });
    const v1 = await luksImage({ type: 'luks1' });
    const concurrent = { concurrent: true };
    expect(await readHeader(runner, img.path, concurrent)).toEqual(await readHeader(runner, img.path));
    await expect(readHeader(runner, `${none.dir}/absent.img`, concurrent)).rejects.toThrow(
      /no such file or device/,
    );
    await expect(readHeader(runner, none.path, concurrent)).rejects.toThrow(/not a LUKS volume/);
    await expect(readHeader(runner, v1.path, concurrent)).rejects.toMatchObject({
      message: expect.stringMatching(/it is LUKS1/),
      hint: expect.stringMatching(/luksHeaderBackup.*cryptsetup convert --type luks2/),
    });
  });

  it('turns a failing luksUUID into a header error, asked for during the dump or after it', async () => {
    const img = await luksImage();
    const failing = failingRunner(runner, (_file, args) => args[0] === 'luksUUID', 'uuid unreadable');
    for (const options of [{}, { concurrent: true }]) {
      await expect(readHeader(failing, img.path, options)).rejects.toMatchObject({
        message: `Failed to read LUKS header of '${img.path}': uuid unreadable`,
      });
    }
  });
});

/** A runner that answers a good header after `delayMs` and notes when each call starts and ends. */
function timedRunner(events: string[], delayMs: number): Runner {
  const dump = JSON.stringify({ keyslots: {}, tokens: {}, config: { json_size: '12288' } });
  return async (file, args) => {
    const verb = args[0] as string;
    events.push(`start ${verb}`);
    await new Promise((r) => setTimeout(r, delayMs));
    events.push(`end ${verb}`);
    const stdout = verb === 'luksUUID' ? 'u-1\n' : dump;
    return {
      command: `${file} ${verb}`,
      exitCode: 0,
      stdout,
      stdoutBytes: Buffer.from(stdout),
      stderr: '',
      timedOut: false,
    };
  };
}

describe('readHeader call order', () => {
  it('runs the dump and then the UUID, one at a time, for a change', async () => {
    const events: string[] = [];
    await readHeader(timedRunner(events, 20), 'v.img');
    expect(events).toEqual(['start luksDump', 'end luksDump', 'start luksUUID', 'end luksUUID']);
  });

  it('starts the UUID before the dump ends when asked to read concurrently (list, doctor)', async () => {
    const events: string[] = [];
    const h = await readHeader(timedRunner(events, 20), 'v.img', { concurrent: true });
    expect(h.uuid).toBe('u-1');
    expect(events.slice(0, 2).sort()).toEqual(['start luksDump', 'start luksUUID']);
  });
});
