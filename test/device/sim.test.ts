import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ZymkeyUnavailableError, type ZymkeyFailure } from '../../src/errors.ts';
import { openZymkey } from '../../src/device/open.ts';
import { SimZymkey } from '../../src/device/sim.ts';
import {
  simArm,
  simBindLock,
  simBreach,
  simClear,
  simInit,
  simSetReachable,
  simStatus,
  simSwapHost,
} from '../../src/device/sim-control.ts';
import { loadSimState, saveSimState, simStateFile } from '../../src/device/sim-state.ts';
import { createRunner } from '../../src/exec.ts';

let dir: string;
let state: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zkluks-sim-'));
  state = join(dir, 'state');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function failure(p: Promise<unknown>): Promise<ZymkeyUnavailableError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ZymkeyUnavailableError);
  return error as ZymkeyUnavailableError;
}

async function expectReason(p: Promise<unknown>, reason: ZymkeyFailure): Promise<ZymkeyUnavailableError> {
  const e = await failure(p);
  expect(e.reason).toBe(reason);
  expect(e.exitCode).toBe(4);
  expect(e.message).toMatch(/^Failed to \S/);
  expect(e.hint).toMatch(/\S/);
  return e;
}

const key = Buffer.from('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 'hex');

describe('simulator state', () => {
  it('init writes a versioned state file with mode 0600 and no temp files left behind', () => {
    simInit(state, { model: 'HSM6' });
    const file = simStateFile(state);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(state)).toEqual(['zkluks-sim.json']);
    const json = JSON.parse(readFileSync(file, 'utf8'));
    expect(json).toMatchObject({ format: 'zkluks-sim', version: 1, module: { model: 'HSM6' } });
  });

  it('init refuses to replace an existing module without force, and replaces it with force', () => {
    const first = simInit(state);
    expect(() => simInit(state)).toThrow(/already exists/);
    const second = simInit(state, { force: true });
    expect(second.serial).not.toBe(first.serial);
  });

  it('a missing state directory fails with state-missing and a hint to init', async () => {
    const e = await expectReason(new SimZymkey(join(dir, 'nowhere')).randomBytes(8), 'state-missing');
    expect(e.hint).toContain('zkluks sim init');
  });

  it('a state directory without a state file fails with state-missing', async () => {
    simInit(state);
    rmSync(simStateFile(state));
    await expectReason(new SimZymkey(state).info(), 'state-missing');
  });

  it.each([
    ['not JSON', '{ nope', /not valid JSON/],
    ['another format', '{"format":"other"}', /not a zkluks simulator state file/],
    ['an unknown version', null, /unknown state version 99/],
    ['a damaged field', null, /field 'module.id'/],
  ])('a state file holding %s fails with state-corrupt and says why', async (_what, text, why) => {
    simInit(state);
    const file = simStateFile(state);
    const good = JSON.parse(readFileSync(file, 'utf8'));
    if (text === null && String(why).includes('99'))
      writeFileSync(file, JSON.stringify({ ...good, version: 99 }));
    else if (text === null)
      writeFileSync(file, JSON.stringify({ ...good, module: { ...good.module, id: 'xyz' } }));
    else writeFileSync(file, text);
    const e = await expectReason(new SimZymkey(state).seal(key), 'state-corrupt');
    expect(e.message).toMatch(why);
  });

  it('an unreadable state file fails with state-corrupt, not a crash', async () => {
    simInit(state);
    rmSync(simStateFile(state));
    // A directory where the file should be cannot be read as a file.
    mkdirSync(simStateFile(state));
    await expectReason(new SimZymkey(state).info(), 'state-corrupt');
  });
});

describe('simulated crypto', () => {
  beforeEach(() => {
    simInit(state);
  });

  it('random bytes come in the requested count and differ between calls', async () => {
    const zk = new SimZymkey(state);
    const a = await zk.randomBytes(64);
    const b = await zk.randomBytes(64);
    expect(a).toHaveLength(64);
    expect(a.equals(b)).toBe(false);
  });

  it('random bytes refuse a count outside 1..65536', async () => {
    await expect(new SimZymkey(state).randomBytes(0)).rejects.toThrow(/from 1 to 65536/);
  });

  it('seal then unseal returns the plaintext, and the blob does not contain it', async () => {
    const zk = openZymkey({ backend: 'sim', simState: state, runner: createRunner() });
    const sealed = await zk.seal(key);
    expect(sealed.includes(key)).toBe(false);
    expect(sealed.subarray(0, 4).toString()).toBe('ZKSB');
    expect((await zk.unseal(sealed)).equals(key)).toBe(true);
  });

  it('sealing the same data twice gives different blobs that both unseal', async () => {
    const zk = new SimZymkey(state);
    const [a, b] = [await zk.seal(key), await zk.seal(key)];
    expect(a.equals(b)).toBe(false);
    expect((await zk.unseal(b)).equals(key)).toBe(true);
  });

  it('a flipped bit anywhere in a blob fails with corrupt-blob', async () => {
    const zk = new SimZymkey(state);
    const sealed = await zk.seal(key);
    for (const offset of [0, 5, 10, 25, 35, 50, sealed.length - 20, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[offset] = (bad[offset] ?? 0) ^ 0x04;
      await expectReason(zk.unseal(bad), 'corrupt-blob');
    }
    await expectReason(zk.unseal(sealed.subarray(0, 20)), 'corrupt-blob');
  });

  it('a blob sealed by another simulated module fails with wrong-module', async () => {
    const other = join(dir, 'other');
    simInit(other);
    const sealed = await new SimZymkey(other).seal(key);
    const e = await expectReason(new SimZymkey(state).unseal(sealed), 'wrong-module');
    expect(e.message).toContain('different Zymkey');
  });

  it('info, binding and perimeter describe a fresh developer-mode module', async () => {
    const zk = new SimZymkey(state);
    expect(await zk.info()).toMatchObject({ model: 'ZYMKEY4i', serial: expect.stringMatching(/^SIM-/) });
    expect(await zk.binding()).toEqual({ mode: 'developer', bound: true });
    expect(await zk.perimeter()).toEqual([
      { channel: 0, action: 'none', firstBreach: null },
      { channel: 1, action: 'none', firstBreach: null },
    ]);
  });
});

describe('binding and host swap', () => {
  beforeEach(() => {
    simInit(state);
  });

  it('bind-lock switches to production mode bound to the current host', async () => {
    const status = simBindLock(state);
    expect(status.binding).toMatchObject({ mode: 'production', hostMatches: true });
    expect(await new SimZymkey(state).binding()).toEqual({ mode: 'production', bound: true });
  });

  it('in developer mode the module still unseals after moving to another Pi', async () => {
    const zk = new SimZymkey(state);
    const sealed = await zk.seal(key);
    simSwapHost(state);
    expect((await zk.unseal(sealed)).equals(key)).toBe(true);
    expect(await zk.binding()).toEqual({ mode: 'developer', bound: true });
  });

  it('in production mode every crypto call fails host-mismatch on another Pi', async () => {
    simBindLock(state);
    const zk = new SimZymkey(state);
    const sealed = await zk.seal(key);
    const home = simStatus(state).binding.host;
    simSwapHost(state);
    const e = await expectReason(zk.unseal(sealed), 'host-mismatch');
    expect(e.message).toContain('original Pi');
    await expectReason(zk.seal(key), 'host-mismatch');
    await expectReason(zk.randomBytes(4), 'host-mismatch');
    expect(await zk.binding()).toEqual({ mode: 'production', bound: false });
    simSwapHost(state, home);
    expect((await zk.unseal(sealed)).equals(key)).toBe(true);
  });

  it('a blob sealed in developer mode still unseals after bind-lock on the same host', async () => {
    const zk = new SimZymkey(state);
    const sealed = await zk.seal(key);
    simBindLock(state);
    expect((await zk.unseal(sealed)).equals(key)).toBe(true);
  });

  it('a production blob carried to a module that moved host in developer mode fails host-mismatch', async () => {
    // The blob remembers the host it was sealed on in production mode.
    simBindLock(state);
    const zk = new SimZymkey(state);
    const sealed = await zk.seal(key);
    const s = loadSimState(state);
    s.binding = { mode: 'developer', boundHost: 'abcd' };
    s.host = 'abcd';
    saveSimState(state, s);
    await expectReason(zk.unseal(sealed), 'host-mismatch');
  });
});

describe('perimeter and self-destruct', () => {
  beforeEach(() => {
    simInit(state);
  });

  it('a breach latches the first breach time; later breaches keep it; clear resets', async () => {
    const t1 = new Date('2026-01-01T10:00:00.400Z');
    const first = simBreach(state, 1, t1);
    expect(first).toMatchObject({ latched: true, firstBreach: '2026-01-01T10:00:00.000Z', destroyed: false });
    const second = simBreach(state, 1, new Date('2026-01-02T10:00:00Z'));
    expect(second).toMatchObject({ latched: false, firstBreach: '2026-01-01T10:00:00.000Z' });
    const zk = new SimZymkey(state);
    expect((await zk.perimeter())[1]?.firstBreach).toBe('2026-01-01T10:00:00.000Z');
    expect((await zk.perimeter())[0]?.firstBreach).toBeNull();
    simClear(state);
    expect((await zk.perimeter()).map((c) => c.firstBreach)).toEqual([null, null]);
  });

  it('arm sets the action per channel', async () => {
    simArm(state, 0, 'notify');
    simArm(state, 1, 'self-destruct');
    expect((await new SimZymkey(state).perimeter()).map((c) => c.action)).toEqual([
      'notify',
      'self-destruct',
    ]);
  });

  it('a breach on a notify channel latches but keeps the keys', async () => {
    const zk = new SimZymkey(state);
    const sealed = await zk.seal(key);
    simBindLock(state);
    simArm(state, 0, 'notify');
    expect(simBreach(state, 0)).toMatchObject({ destroyed: false, simulatedOnly: false });
    expect((await zk.unseal(sealed)).equals(key)).toBe(true);
  });

  it('in developer mode a self-destruct breach is only reported and the keys survive', async () => {
    const zk = new SimZymkey(state);
    const sealed = await zk.seal(key);
    simArm(state, 0, 'self-destruct');
    expect(simBreach(state, 0)).toMatchObject({ destroyed: false, simulatedOnly: true, latched: true });
    expect((await zk.unseal(sealed)).equals(key)).toBe(true);
    expect(simStatus(state).keyMaterial).toBe('present');
  });

  it('in production mode a self-destruct breach destroys the keys and every crypto call fails', async () => {
    const zk = new SimZymkey(state);
    const sealed = await zk.seal(key);
    simBindLock(state);
    simArm(state, 0, 'self-destruct');
    expect(simBreach(state, 0)).toMatchObject({ destroyed: true });
    const e = await expectReason(zk.unseal(sealed), 'self-destructed');
    expect(e.message).toContain('destroyed its key material');
    expect(e.message).toContain('can never be unsealed again');
    expect(e.hint).toContain('recovery key');
    await expectReason(zk.seal(key), 'self-destructed');
    await expectReason(zk.randomBytes(16), 'self-destructed');
    expect(JSON.parse(readFileSync(simStateFile(state), 'utf8')).secret).toBeNull();
    // Clearing the latch does not bring the keys back.
    simClear(state);
    await expectReason(zk.unseal(sealed), 'self-destructed');
    // The module still answers info, binding and perimeter reads.
    expect((await zk.info()).model).toBe('ZYMKEY4i');
  });

  it('a breach destroys the keys even while the module is unreachable from the host', async () => {
    simBindLock(state);
    simArm(state, 1, 'self-destruct');
    simSetReachable(state, false);
    expect(simBreach(state, 1).destroyed).toBe(true);
    simSetReachable(state, true);
    await expectReason(new SimZymkey(state).randomBytes(4), 'self-destructed');
  });

  it('in production mode self-destruct cannot be turned off once set', () => {
    simBindLock(state);
    simArm(state, 0, 'self-destruct');
    expect(() => simArm(state, 0, 'none')).toThrow(/cannot be turned off/);
  });

  it('in developer mode self-destruct can be disarmed', () => {
    simArm(state, 0, 'self-destruct');
    expect(simArm(state, 0, 'none').perimeter[0]?.action).toBe('none');
  });
});

describe('unreachable module', () => {
  it('every port call fails unreachable while unplugged and works again once plugged', async () => {
    simInit(state);
    const zk = new SimZymkey(state);
    const sealed = await zk.seal(key);
    simSetReachable(state, false);
    const calls = [
      () => zk.randomBytes(1),
      () => zk.seal(key),
      () => zk.unseal(sealed),
      () => zk.info(),
      () => zk.binding(),
      () => zk.perimeter(),
    ];
    for (const call of calls) {
      const e = await expectReason(call(), 'unreachable');
      expect(e.message).toContain('I2C');
    }
    expect(() => simBindLock(state)).toThrow(/unreachable/);
    simSetReachable(state, true);
    expect((await zk.unseal(sealed)).equals(key)).toBe(true);
  });
});
