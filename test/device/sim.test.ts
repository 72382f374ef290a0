import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ZymkeyUnavailableError, type ZymkeyFailure } from '../../src/errors.ts';
import { openZymkey } from '../../src/device/open.ts';
import { SimZymkey } from '../../src/device/sim.ts';
import {
  simArm,
  simBattery,
  simBatteryAction,
  simBindLock,
  simBreach,
  simBrownOut,
  simClear,
  simCloseLoop,
  simInit,
  simKernel,
  simPowerCycle,
  simSetReachable,
  simStatus,
  simSwapHost,
  simWakePin,
  simZkifc,
} from '../../src/device/sim-control.ts';
import { simHostFile, simModuleStore, simSaltFile } from '../../src/device/sim-state.ts';
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
  it('init writes the host side (host file, salt, zkenv.conf) with no secret in it, and the module outside it', () => {
    const made = simInit(state, { model: 'HSM6' });
    const file = simHostFile(state);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(state).sort()).toEqual([made.serial, 'zkenv.conf', 'zkluks-sim-host.json'].sort());
    expect(readFileSync(join(state, 'zkenv.conf'), 'utf8')).toBe('ZK_GPIO_WAKE_PIN=516\n');
    expect(statSync(simSaltFile(state, made.serial)).size).toBe(32);
    const json = JSON.parse(readFileSync(file, 'utf8'));
    expect(json).toMatchObject({
      format: 'zkluks-sim-host',
      version: 2,
      zkifc: 'running',
      module: made.moduleId,
    });
    expect(JSON.stringify(json)).not.toMatch(/secret/);
    const store = simModuleStore(state);
    expect(store.startsWith(state)).toBe(false);
    const module = JSON.parse(readFileSync(join(store, `${made.moduleId}.json`), 'utf8'));
    expect(module).toMatchObject({ format: 'zkluks-sim-module', model: 'HSM6' });
    expect(Buffer.from(module.secret, 'base64')).toHaveLength(32);
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
    rmSync(simHostFile(state));
    await expectReason(new SimZymkey(state).info(), 'state-missing');
  });

  it.each([
    ['not JSON', '{ nope', /not valid JSON/],
    ['another format', '{"format":"other"}', /not a zkluks simulator state file/],
    ['an unknown version', null, /unknown state version 99/],
    ['a damaged field', null, /field 'module'/],
  ])('a state file holding %s fails with state-corrupt and says why', async (_what, text, why) => {
    simInit(state);
    const file = simHostFile(state);
    const good = JSON.parse(readFileSync(file, 'utf8'));
    if (text === null && String(why).includes('99'))
      writeFileSync(file, JSON.stringify({ ...good, version: 99 }));
    else if (text === null) writeFileSync(file, JSON.stringify({ ...good, module: 'xyz' }));
    else writeFileSync(file, text);
    const e = await expectReason(new SimZymkey(state).seal(key), 'state-corrupt');
    expect(e.message).toMatch(why);
  });

  it('an unreadable state file fails with state-corrupt, not a crash', async () => {
    simInit(state);
    rmSync(simHostFile(state));
    // A directory where the file should be cannot be read as a file.
    mkdirSync(simHostFile(state));
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

  it('info and perimeter describe a fresh ZYMKEY4, which refuses the binding query and hides the actions', async () => {
    const zk = new SimZymkey(state);
    expect(await zk.info()).toMatchObject({ model: 'ZYMKEY4i', serial: expect.stringMatching(/^SIM-/) });
    expect(await zk.binding()).toEqual({ mode: 'unknown', bound: null });
    expect(await zk.perimeter()).toEqual([
      { channel: 0, action: 'unknown', firstBreach: null },
      { channel: 1, action: 'unknown', firstBreach: null },
    ]);
  });
});

describe('binding and host swap', () => {
  beforeEach(() => {
    simInit(state, { model: 'HSM6' });
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
    // A production module on another host shuts its services down: the API answers nothing either.
    await expectReason(zk.binding(), 'host-mismatch');
    expect(simStatus(state).led).toBe('off');
    simSwapHost(state, home);
    expect((await zk.unseal(sealed)).equals(key)).toBe(true);
  });

  it('a blob sealed in developer mode still unseals after bind-lock on the same host', async () => {
    const zk = new SimZymkey(state);
    const sealed = await zk.seal(key);
    simBindLock(state);
    expect((await zk.unseal(sealed)).equals(key)).toBe(true);
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
    // The loop is still open: clearing latches it again at once.
    simClear(state, new Date('2026-01-03T10:00:00Z'));
    expect((await zk.perimeter())[1]?.firstBreach).toBe('2026-01-03T10:00:00.000Z');
    simCloseLoop(state, 1);
    simClear(state);
    expect((await zk.perimeter()).map((c) => c.firstBreach)).toEqual([null, null]);
  });

  it('arm sets the action per channel; the module shows it, the API cannot read it back', async () => {
    simArm(state, 0, 'notify');
    simArm(state, 1, 'self-destruct');
    expect(simStatus(state).perimeter.map((c) => c.action)).toEqual(['notify', 'self-destruct']);
    expect((await new SimZymkey(state).perimeter()).map((c) => c.action)).toEqual(['unknown', 'unknown']);
  });

  it('a breach on a notify channel latches but keeps the keys', async () => {
    const zk = new SimZymkey(state);
    const sealed = await zk.seal(key);
    simArm(state, 0, 'notify');
    simBindLock(state);
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
    const store = simModuleStore(state);
    expect(
      JSON.parse(readFileSync(join(store, `${simStatus(state).moduleId}.json`), 'utf8')).secret,
    ).toBeNull();
    // The module answers nothing any more: clear, info and perimeter fail too, and the LED shows 5 slow blinks.
    expect(() => simClear(state)).toThrow(/self-destructed/);
    await expectReason(zk.info(), 'self-destructed');
    await expectReason(zk.perimeter(), 'self-destructed');
    await expectReason(zk.binding(), 'self-destructed');
    expect(simStatus(state).led).toBe('atecc-unreachable');
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
    expect(() => simArm(state, 0, 'none')).toThrow(/immutable/);
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

// Each of these held on the simulator before the module moved out of the host directory.
describe('the module is a separate board: the host directory never clones or revives it', () => {
  it('a copy of the host directory made before a self-destruct does not unseal afterwards', async () => {
    simInit(state, { model: 'HSM6' });
    const sealed = await new SimZymkey(state).seal(key);
    const copy = join(dir, 'copy');
    cpSync(state, copy, { recursive: true });
    expect((await new SimZymkey(copy).unseal(sealed)).equals(key)).toBe(true); // developer mode: an image copy works
    simBindLock(state);
    simArm(state, 0, 'self-destruct');
    simBreach(state, 0);
    await expectReason(new SimZymkey(copy).unseal(sealed), 'self-destructed');
  });

  it('a backup restored after a self-destruct does not bring the key back', async () => {
    simInit(state);
    const sealed = await new SimZymkey(state).seal(key);
    const backup = join(dir, 'backup');
    cpSync(state, backup, { recursive: true });
    simBindLock(state);
    simArm(state, 1, 'self-destruct');
    simBreach(state, 1);
    rmSync(state, { recursive: true });
    cpSync(backup, state, { recursive: true });
    await expectReason(new SimZymkey(state).unseal(sealed), 'self-destructed');
  });

  it('a production module whose state was deleted never works again, even with the state restored', async () => {
    simInit(state, { model: 'HSM6' });
    simBindLock(state);
    const sealed = await new SimZymkey(state).seal(key);
    const saved = readFileSync(simHostFile(state));
    rmSync(simHostFile(state));
    const e = await expectReason(new SimZymkey(state).unseal(sealed), 'state-missing');
    expect(e.message).toContain('never be used again');
    writeFileSync(simHostFile(state), saved, { mode: 0o600 });
    await expectReason(new SimZymkey(state).unseal(sealed), 'state-missing');
    expect(simStatus(state).led).toBe('off');
  });

  it('a production module refuses a cloned SD card (a copy of the host directory) on the same Pi', async () => {
    simInit(state, { model: 'HSM6' });
    simBindLock(state);
    const sealed = await new SimZymkey(state).seal(key);
    const clone = join(dir, 'clone');
    cpSync(state, clone, { recursive: true });
    const e = await expectReason(new SimZymkey(clone).unseal(sealed), 'host-mismatch');
    expect(e.message).toContain('SD card');
    // Moving the directory (the same card) keeps working.
    renameSync(state, join(dir, 'moved'));
    expect((await new SimZymkey(join(dir, 'moved')).unseal(sealed)).equals(key)).toBe(true);
  });

  it('a host directory copied away from its module store has no module fitted', async () => {
    simInit(state);
    const far = mkdtempSync(join(tmpdir(), 'zkluks-sim-far-'));
    try {
      cpSync(state, join(far, 'state'), { recursive: true });
      const e = await expectReason(new SimZymkey(join(far, 'state')).randomBytes(4), 'unreachable');
      expect(e.message).toContain('no module is fitted');
    } finally {
      rmSync(far, { recursive: true, force: true });
    }
  });

  it('bind-lock after swap-host does not bind the production module to the new Pi', async () => {
    simInit(state, { model: 'HSM6' });
    simBindLock(state);
    simSwapHost(state);
    expect(() => simBindLock(state)).toThrow(/already bound in production mode/);
    await expectReason(new SimZymkey(state).seal(key), 'host-mismatch');
  });

  it('after bind-lock the perimeter configuration is frozen, except arming self-destruct once', () => {
    simInit(state, { model: 'HSM6' });
    simArm(state, 0, 'notify');
    simBindLock(state);
    expect(() => simArm(state, 0, 'none')).toThrow(/immutable/);
    expect(() => simArm(state, 1, 'notify')).toThrow(/immutable/);
    simArm(state, 1, 'self-destruct');
    expect(() => simArm(state, 1, 'self-destruct')).toThrow(/immutable/);
    expect(simStatus(state).perimeter.map((c) => c.action)).toEqual(['notify', 'self-destruct']);
  });

  it('self-destruct armed in production on a loop that is still open destroys the keys at once', async () => {
    simInit(state, { model: 'HSM6' });
    simBreach(state, 0);
    simBindLock(state);
    simArm(state, 0, 'self-destruct');
    await expectReason(new SimZymkey(state).randomBytes(4), 'self-destructed');
  });
});

describe('per-model API surfaces', () => {
  it.each([
    ['ZYMKEY4i', { mode: 'unknown', bound: null }],
    ['ZYMKEY5', { mode: 'developer', bound: true }],
    ['HSM4', { mode: 'developer', bound: true }],
    ['HSM6', { mode: 'developer', bound: true }],
    ['HSM60', { mode: 'developer', bound: true }],
    ['SCM', { mode: 'developer', bound: true }],
  ] as const)('%s answers the binding query with %j', async (model, binding) => {
    simInit(state, { model });
    expect(await new SimZymkey(state).binding()).toEqual(binding);
  });

  it('only HSM6, HSM60 and SCM take a battery policy', () => {
    simInit(state, { model: 'HSM4' });
    expect(() => simBatteryAction(state, 'sleep')).toThrow(/no battery policy/);
    simInit(state, { model: 'HSM60', force: true });
    expect(simBatteryAction(state, 'sleep').battery.action).toBe('sleep');
  });
});

describe('host conditions the module checks', () => {
  it('developer mode regenerates a salt that does not match; production mode refuses it', async () => {
    const made = simInit(state, { model: 'HSM6' });
    const salt = simSaltFile(state, made.serial);
    writeFileSync(salt, Buffer.alloc(32, 1));
    const sealed = await new SimZymkey(state).seal(key);
    expect(readFileSync(salt).equals(Buffer.alloc(32, 1))).toBe(false);
    simBindLock(state);
    const good = readFileSync(salt);
    writeFileSync(salt, Buffer.alloc(32, 2));
    const e = await expectReason(new SimZymkey(state).unseal(sealed), 'state-corrupt');
    expect(e.message).toContain('salt');
    expect(simStatus(state).led).toBe('off');
    writeFileSync(salt, good);
    expect((await new SimZymkey(state).unseal(sealed)).equals(key)).toBe(true);
  });

  it('on kernel 6.6 and later the module never binds without ZK_GPIO_WAKE_PIN', async () => {
    simInit(state);
    simWakePin(state, null);
    const e = await expectReason(new SimZymkey(state).randomBytes(4), 'not-bound');
    expect(e.message).toContain('ZK_GPIO_WAKE_PIN');
    expect(simStatus(state).led).toBe('not-bound');
    simKernel(state, '6.1.21-v8+');
    expect(await new SimZymkey(state).randomBytes(4)).toHaveLength(4);
    simKernel(state, '6.6.31+rpt-rpi-v8');
    await expectReason(new SimZymkey(state).randomBytes(4), 'not-bound');
    simWakePin(state, 516);
    expect(await new SimZymkey(state).randomBytes(4)).toHaveLength(4);
  });

  it('a brown-out disables the security services until a power cycle', async () => {
    simInit(state);
    simBrownOut(state);
    await expectReason(new SimZymkey(state).randomBytes(4), 'not-bound');
    simPowerCycle(state);
    expect(await new SimZymkey(state).randomBytes(4)).toHaveLength(4);
  });

  it('removing the battery with tamper armed in production destroys the keys (ZYMKEY4, and HSM6 without a sleep policy)', async () => {
    for (const model of ['ZYMKEY4i', 'HSM6'] as const) {
      simInit(state, { model, force: true });
      simBindLock(state);
      simArm(state, 0, 'self-destruct');
      expect(simBattery(state, false).dead?.why).toBe('battery');
      await expectReason(new SimZymkey(state).randomBytes(4), 'self-destructed');
    }
  });

  it('an HSM6 with the sleep policy sleeps until the battery is back; without tamper armed nothing is lost', async () => {
    simInit(state, { model: 'HSM6' });
    simBatteryAction(state, 'sleep');
    simBindLock(state);
    simArm(state, 0, 'self-destruct');
    simBattery(state, false);
    await expectReason(new SimZymkey(state).randomBytes(4), 'unreachable');
    simBattery(state, true);
    expect(await new SimZymkey(state).randomBytes(4)).toHaveLength(4);
    simInit(state, { model: 'ZYMKEY4i', force: true });
    simBindLock(state);
    expect(simBattery(state, false).dead).toBeNull();
  });

  it('the API needs zkifc running; the backend (which stops it around each tool) does not', async () => {
    simInit(state);
    simZkifc(state, 'stopped');
    const zk = new SimZymkey(state);
    await expect(zk.info()).rejects.toThrow(/zkifc is not running/);
    expect(await zk.randomBytes(4)).toHaveLength(4);
    expect(simStatus(state).led).toBe('rapid');
  });
});
