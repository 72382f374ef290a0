// The zymbit backend against the simulator's tools (installed by `sim install-tools`), a fake
// systemctl and a fake `zymkey` Python module: the adapter must work against that contract unchanged.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ZymkeyUnavailableError } from '../../src/errors.ts';
import { createRunner, type RunRecord, type Runner } from '../../src/exec.ts';
import { openZymkey } from '../../src/device/open.ts';
import { SimZymkey } from '../../src/device/sim.ts';
import {
  simArm,
  simBindLock,
  simBreach,
  simInit,
  simSetReachable,
  simStatus,
  simWakePin,
} from '../../src/device/sim-control.ts';
import type { ProbeResult } from '../../src/device/i2c.ts';
import { installSimTools } from '../../src/device/sim-tools.ts';
import { ZymbitZymkey } from '../../src/device/zymbit.ts';
import { bundle, repoRoot } from '../helpers/cli.ts';

const fixtures = join(repoRoot, 'test/fixtures/zymbit');
let dir: string;
let state: string;
let tools: string;
let systemctlLog: string;
let records: RunRecord[];

function runner(extraEnv: Record<string, string> = {}, withTools = true): Runner {
  return createRunner({
    records,
    env: {
      PATH: [...(withTools ? [tools] : []), join(fixtures, 'bin'), process.env.PATH].join(':'),
      PYTHONPATH: join(fixtures, 'python'),
      ZKLUKS_SIM_STATE: state,
      ZKLUKS_SIM_NODE: process.execPath,
      ZKLUKS_SIM_BUNDLE: bundle,
      ZKLUKS_FAKE_SYSTEMCTL_LOG: systemctlLog,
      ...extraEnv,
    },
  });
}

const systemctlCalls = () =>
  existsSync(systemctlLog) ? readFileSync(systemctlLog, 'utf8').trim().split('\n').filter(Boolean) : [];

async function rejection(p: Promise<unknown>): Promise<ZymkeyUnavailableError> {
  const e = await p.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(e).toBeInstanceOf(ZymkeyUnavailableError);
  return e as ZymkeyUnavailableError;
}

/** What the I2C probe says on a Pi whose bus works (the Zymkey itself never answers a probe). */
function bus(over: Partial<ProbeResult> = {}): ProbeResult {
  return {
    status: 'ok',
    bus: 1,
    busName: 'bcm2835 (i2c@7e804000)',
    address: '0x30',
    detail: 'no answer at 0x30',
    ...over,
  };
}

/** The zymbit backend on this test's simulated Pi: its state directory, its I2C probe. */
function zymbit(extraEnv: Record<string, string> = {}, probe?: Partial<ProbeResult>, withTools = true) {
  return new ZymbitZymkey({
    runner: runner(extraEnv, withTools),
    zymbitDir: state,
    probeBus: async () => bus(probe),
  });
}

const key = Buffer.from('a4f1c2d3e4f5061728394a5b6c7d8e9fa4f1c2d3e4f5061728394a5b6c7d8e9f', 'hex');

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zkluks-zymbit-'));
  state = join(dir, 'state');
  tools = join(dir, 'tools');
  systemctlLog = join(dir, 'systemctl.log');
  records = [];
  installSimTools(tools, process.execPath, bundle);
  simInit(state, { model: 'HSM6' });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('zymbit backend through the tools', () => {
  it('random bytes come from zkgrifs with zkifc stopped around the call and started again', async () => {
    const zk = openZymkey({ backend: 'zymbit', simState: state, runner: runner() });
    const bytes = await zk.randomBytes(32);
    expect(bytes).toHaveLength(32);
    expect(systemctlCalls()).toEqual(['stop zkifc', 'start zkifc']);
    expect(records.map((r) => [r.file, ...r.args].join(' '))).toEqual([
      'systemctl stop zkifc',
      'zkgrifs 32',
      'systemctl start zkifc',
    ]);
  });

  it('seals with zklockifs and unseals with zkunlockifs, interchangeably with the sim backend', async () => {
    const zk = new ZymbitZymkey({ runner: runner() });
    const sealed = await zk.seal(key);
    expect((await new SimZymkey(state).unseal(sealed)).equals(key)).toBe(true);
    const simSealed = await new SimZymkey(state).seal(key);
    expect((await zk.unseal(simSealed)).equals(key)).toBe(true);
    expect(systemctlCalls()).toEqual(['stop zkifc', 'start zkifc', 'stop zkifc', 'start zkifc']);
  });

  it('passes the plaintext through a 0600 file in a private tmpfs dir that is gone afterwards; never on argv', async () => {
    // A zklockifs that reports what it was given, then seals as the simulator does.
    const spy = join(dir, 'spy');
    const seen = join(dir, 'seen');
    installSimTools(spy, process.execPath, bundle);
    const sim = readFileSync(join(spy, 'zklockifs'), 'utf8');
    writeFileSync(
      join(spy, 'zklockifs'),
      sim.replace(
        /^exec /m,
        `{ echo "$1"; stat -c %a "$1"; stat -c %a "$(dirname "$1")"; stat -f -c %T "$1"; } > '${seen}'\nexec `,
      ),
    );
    chmodSync(join(spy, 'zklockifs'), 0o755);
    const zk = new ZymbitZymkey({
      runner: runner({ PATH: [spy, join(fixtures, 'bin'), process.env.PATH].join(':') }),
    });
    await zk.seal(key);
    const [file = '', mode, dirMode, fsType] = readFileSync(seen, 'utf8').trim().split('\n');
    expect(file.startsWith('/dev/shm/zkluks-')).toBe(true);
    expect(mode).toBe('600');
    expect(dirMode).toBe('700');
    expect(fsType).toBe('tmpfs');
    expect(existsSync(file)).toBe(false);
    const recorded = JSON.stringify(records);
    for (const form of [key.toString('hex'), key.toString('base64'), key.toString('latin1')]) {
      expect(recorded).not.toContain(form);
    }
  });

  it("a self-destructed module: the tool's words are evidence, not the reason; the API answering nothing leaves the LED to tell", async () => {
    const zk = zymbit();
    const sealed = await zk.seal(key);
    simBindLock(state);
    simArm(state, 0, 'self-destruct');
    simBreach(state, 0);
    const e = await rejection(zk.unseal(sealed));
    expect(e.reason).toBe('unknown');
    expect(e.exitCode).toBe(4);
    expect(e.message).toMatch(
      /^Failed to unseal data with the Zymkey: unknown: 'zkunlockifs' exited 1, its words: 'zkunlockifs: self-destructed: .*'; the module answers no API call either .*self-destructed, and only its LED tells which/,
    );
    expect(e.hint).toContain('zkluks doctor --led PATTERN');
    expect(systemctlCalls().slice(-2)).toEqual(['stop zkifc', 'start zkifc']);
  });

  it('a tool that names a reason on stderr does not make it the reason: a module that answers its API is no self-destructed one', async () => {
    const liar = join(dir, 'liar');
    installSimTools(liar, process.execPath, bundle);
    writeFileSync(
      join(liar, 'zkgrifs'),
      '#!/bin/sh\necho "zkgrifs: self-destructed: key material destroyed" >&2\nexit 1\n',
    );
    const e = await rejection(
      zymbit({ PATH: [liar, join(fixtures, 'bin'), process.env.PATH].join(':') }).randomBytes(8),
    );
    expect(e.reason).toBe('unknown');
    expect(e.message).toMatch(
      /its words: 'zkgrifs: self-destructed: key material destroyed'; the module answers its API, so it is there and bound/,
    );
  });

  it('no I2C bus, by the I2C probe, is unreachable; an unplugged module on a working bus cannot be told from a dead one', async () => {
    const sealed = await zymbit().seal(key);
    simSetReachable(state, false);
    const e = await rejection(zymbit({}, { status: 'bus-missing', detail: 'no /dev/i2c-1' }).unseal(sealed));
    expect(e.reason).toBe('unreachable');
    expect(e.message).toMatch(/the I2C probe says bus-missing: no \/dev\/i2c-1/);
    const unplugged = await rejection(zymbit().unseal(sealed));
    expect(unplugged.reason).toBe('unknown');
    expect(unplugged.message).toMatch(/it is unplugged, not bound to this host/);
  });

  it.each([
    [
      'the state directory is gone',
      'state-missing',
      /state does not exist/,
      () => rmSync(state, { recursive: true }),
    ],
    [
      'the salt is gone',
      'state-missing',
      /holds no module's s1_fp_salt\.bin/,
      () => rmSync(join(state, simStatus(state).serial), { recursive: true }),
    ],
    [
      'the host state is damaged',
      'unknown',
      /answers no API call either/,
      () => writeFileSync(join(state, 'zkluks-sim-host.json'), '{'),
    ],
  ] as const)('%s: %s, from the state directory and the API', async (_, reason, message, breakIt) => {
    const zk = zymbit();
    const sealed = await zk.seal(key);
    breakIt();
    const e = await rejection(zk.unseal(sealed));
    expect(e.reason).toBe(reason);
    expect(e.message).toMatch(message);
    expect(systemctlCalls().at(-1)).toBe('start zkifc');
  });

  it('the serial the token recorded tells a blob from another module (wrong-module) from a damaged one (corrupt-blob)', async () => {
    const other = join(dir, 'other');
    simInit(other);
    const foreign = await new SimZymkey(other).seal(key);
    const zk = zymbit();
    const mine = simStatus(state).serial;
    const theirs = simStatus(other).serial;
    const e = await rejection(zk.unseal(foreign, { sealedBy: theirs }));
    expect(e.reason).toBe('wrong-module');
    expect(e.message).toContain(
      `this module is serial ${mine}, and the token records that serial ${theirs} sealed the key`,
    );
    const own = await zk.seal(key);
    own[40] = (own[40] ?? 0) ^ 1;
    expect((await rejection(zk.unseal(own, { sealedBy: mine }))).reason).toBe('corrupt-blob');
    // Without the record zkluks says what it knows.
    const bare = await rejection(zk.unseal(own));
    expect(bare.reason).toBe('unknown');
    expect(bare.message).toMatch(/refuses this sealed key itself: sealed by another module, or damaged/);
  });

  it('a missing tool fails with tool-missing and zkifc is still started again', async () => {
    const zk = zymbit({}, undefined, false);
    const e = await rejection(zk.randomBytes(8));
    expect(e.reason).toBe('tool-missing');
    expect(e.hint).toContain('zksaapps');
    expect(systemctlCalls()).toEqual(['stop zkifc', 'start zkifc']);
  });

  it('what a tool said is shown as its words, escaped, with its exit code or signal', async () => {
    const odd = join(dir, 'odd');
    installSimTools(odd, process.execPath, bundle);
    writeFileSync(
      join(odd, 'zkunlockifs'),
      '#!/bin/sh\nprintf "zkAppUtils: bad return code -5\\033[2J\\nsecond line\\n" >&2\nexit 3\n',
    );
    writeFileSync(join(odd, 'zkgrifs'), '#!/bin/sh\nkill -9 $$\n');
    const zk = zymbit({ PATH: [odd, join(fixtures, 'bin'), process.env.PATH].join(':') });
    const e = await rejection(zk.unseal(Buffer.from('sealed')));
    expect(e.reason).toBe('unknown');
    expect(e.message).toContain(
      "'zkunlockifs' exited 3, its words: 'zkAppUtils: bad return code -5\\x1b[2J\\x0asecond line'",
    );
    expect(e.message).not.toContain(String.fromCharCode(27));
    expect(e.message).not.toContain('\n');
    const killed = await rejection(zk.randomBytes(8));
    expect(killed.message).toMatch(
      /^Failed to read random bytes from the Zymkey: unknown: 'zkgrifs' was killed by SIGKILL without a message/,
    );
  });

  it('a zkifc that could not be stopped is named as the likely cause', async () => {
    const zk = zymbit({ ZKLUKS_FAKE_SYSTEMCTL_FAIL: 'stop' });
    const e = await rejection(zk.randomBytes(8));
    expect(e.reason).toBe('unknown');
    expect(e.message).toMatch(
      /zkifc may have been running, and the standalone tools need it stopped: 'systemctl stop zkifc' exited 5/,
    );
    expect(e.hint).toMatch(/^systemctl stop zkifc/);
  });

  it('a tool that hangs fails with timeout and zkifc is started again', async () => {
    const slow = join(dir, 'slow');
    installSimTools(slow, process.execPath, bundle);
    writeFileSync(join(slow, 'zkgrifs'), '#!/bin/sh\nexec sleep 5\n');
    const zk = new ZymbitZymkey({
      runner: runner({ PATH: [slow, join(fixtures, 'bin'), process.env.PATH].join(':') }),
      timeoutMs: 300,
      zymbitDir: state,
      probeBus: async () => bus(),
    });
    const e = await rejection(zk.randomBytes(8));
    expect(e.reason).toBe('timeout');
    // What happened and what to do, not a bare 'timeout'.
    expect(e.message).toContain("'zkgrifs' gave no answer within 300 ms and was stopped");
    expect(e.message).toContain('the Zymkey did not answer');
    expect(e.hint).toBe('zkluks device probe (does the module answer on I2C?), then zkluks doctor');
    expect(systemctlCalls()).toEqual(['stop zkifc', 'start zkifc']);
  });

  it('a tool that hangs on a module that answers no API either still leads to the LED, or to the wake pin the kernel needs', async () => {
    const slow = join(dir, 'slow');
    installSimTools(slow, process.execPath, bundle);
    writeFileSync(join(slow, 'zkgrifs'), '#!/bin/sh\nexec sleep 5\n');
    const hung = (kernel: string) =>
      new ZymbitZymkey({
        runner: runner({ PATH: [slow, join(fixtures, 'bin'), process.env.PATH].join(':') }),
        timeoutMs: 300,
        zymbitDir: state,
        probeBus: async () => bus(),
        kernel,
      });
    simSetReachable(state, false);
    const e = await rejection(hung('6.12.25+rpt-rpi-v8').randomBytes(8));
    expect(e.reason).toBe('timeout');
    expect(e.message).toMatch(
      /gave no answer within 300 ms and was stopped without a message; the module answers no API call either/,
    );
    expect(e.hint).toContain('zkluks doctor --led PATTERN');
    // Kernel 6.6 and later with no ZK_GPIO_WAKE_PIN: the module never binds, whatever the tool did.
    simWakePin(state, null);
    const unbound = await rejection(hung('6.12.25+rpt-rpi-v8').randomBytes(8));
    expect(unbound.reason).toBe('not-bound');
    expect(unbound.message).toMatch(
      /kernel 6\.12\.25\+rpt-rpi-v8 numbers GPIOs globally .*sets no ZK_GPIO_WAKE_PIN/,
    );
    expect(unbound.hint).toMatch(/ZK_GPIO_WAKE_PIN=N/);
    // An older kernel numbers GPIOs per chip: no wake pin needed, so no such reason.
    expect((await rejection(hung('6.1.21-v8+').randomBytes(8))).reason).toBe('timeout');
  });

  it('a failing restart of zkifc is reported as a warning, not lost', async () => {
    const warnings: string[] = [];
    const zk = new ZymbitZymkey({
      runner: runner({ ZKLUKS_FAKE_SYSTEMCTL_FAIL: 'start' }),
      onWarning: (w) => warnings.push(w),
    });
    expect(await zk.randomBytes(4)).toHaveLength(4);
    expect(warnings).toEqual([expect.stringContaining('could not start zkifc again (exit 5)')]);
  });

  it('concurrent calls run one at a time, each inside its own stop/start pair', async () => {
    const zk = new ZymbitZymkey({ runner: runner() });
    await Promise.all([zk.randomBytes(4), zk.randomBytes(4), zk.seal(key)]);
    expect(systemctlCalls()).toEqual(Array(3).fill(['stop zkifc', 'start zkifc']).flat());
  });
});

describe('zymbit backend info through the zymkey Python module', () => {
  it('reads model, serial, firmware, binding and perimeter with one python3 run', async () => {
    simArm(state, 1, 'notify');
    simBindLock(state);
    simBreach(state, 1, new Date('2026-03-04T05:06:07Z'));
    const zk = openZymkey({ backend: 'zymbit', simState: state, runner: runner() });
    expect(await zk.info()).toMatchObject({
      model: 'HSM6',
      serial: expect.stringMatching(/^SIM-/),
      firmware: '01.00.00-sim',
    });
    expect(await zk.binding()).toEqual({ mode: 'production', bound: true });
    expect(await zk.perimeter()).toEqual([
      { channel: 0, action: 'unknown', firstBreach: null },
      { channel: 1, action: 'unknown', firstBreach: '2026-03-04T05:06:07.000Z' },
    ]);
    expect(records.filter((r) => r.file === 'python3')).toHaveLength(1);
    expect(records[0]?.args).toEqual(['-']);
  });

  it('a piece the module refuses degrades to unknown while the rest is read', async () => {
    simInit(state, { model: 'ZYMKEY4i', force: true });
    const zk = new ZymbitZymkey({ runner: runner() });
    expect((await zk.info()).model).toBe('ZYMKEY4i');
    expect(await zk.binding()).toEqual({ mode: 'unknown', bound: null });
    expect((await zk.readReport()).errors.binding).toContain('bad return code -22');
    expect(records.filter((r) => r.file === 'python3')).toHaveLength(1);
  });

  it('client None (module unreachable) degrades everything to unknown and says why', async () => {
    simSetReachable(state, false);
    const zk = new ZymbitZymkey({ runner: runner() });
    expect(await zk.info()).toEqual({ model: 'unknown', serial: 'unknown', firmware: 'unknown' });
    expect((await zk.readReport()).errors.client).toContain('zkOpen failed');
  });

  it('without the zymkey module everything is unknown, not a crash', async () => {
    const zk = new ZymbitZymkey({ runner: runner({ PYTHONPATH: join(dir, 'empty') }) });
    expect(await zk.binding()).toEqual({ mode: 'unknown', bound: null });
    const report = await zk.readReport();
    expect(report.module).toBe(false);
    expect(report.errors.import).toContain('zymkey');
  });

  it('without python3 everything is unknown, not a crash', async () => {
    const inner = runner();
    const noPython: Runner = (file, args, o) =>
      inner(file === 'python3' ? join(dir, 'no-python3') : file, args, o);
    const zk = new ZymbitZymkey({ runner: noPython });
    expect((await zk.perimeter()).map((c) => c.action)).toEqual(['unknown', 'unknown']);
    expect((await zk.readReport()).errors.script).toBe('python3 is not installed');
  });
});
