// The simulator's zkgrifs / zklockifs / zkunlockifs wrappers, run as programs: stdout, exit code and
// the one-line `<tool>: <reason>: <explanation>` stderr of the shared tool contract.
import { execa } from 'execa';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  simArm,
  simBindLock,
  simBreach,
  simInit,
  simSetReachable,
  simSwapHost,
  simZkifc,
} from '../../src/device/sim-control.ts';
import { installSimTools, isSimToolWrapper, runSimTool } from '../../src/device/sim-tools.ts';
import { bundle } from '../helpers/cli.ts';

let dir: string;
let state: string;
let tools: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zkluks-tools-'));
  state = join(dir, 'state');
  tools = join(dir, 'bin');
  simInit(state);
  simZkifc(state, 'stopped');
  installSimTools(tools, process.execPath, bundle);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function tool(name: string, args: string[], env: Record<string, string> = {}) {
  const r = await execa(join(tools, name), args, {
    env: { ZKLUKS_SIM_STATE: state, ...env },
    encoding: 'buffer',
    reject: false,
    stripFinalNewline: false,
  });
  return { exitCode: r.exitCode, stdout: Buffer.from(r.stdout), stderr: Buffer.from(r.stderr).toString() };
}

function expectContractFailure(
  r: { exitCode?: number; stdout: Buffer; stderr: string },
  toolName: string,
  reason: string,
) {
  expect(r.exitCode).toBe(1);
  expect(r.stdout).toHaveLength(0);
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^${toolName}: ${reason}: \\S`));
}

describe('simulator tools', () => {
  it('install-tools writes three executable POSIX sh wrappers that exec the bundle', () => {
    for (const name of ['zkgrifs', 'zklockifs', 'zkunlockifs']) {
      const path = join(tools, name);
      expect(statSync(path).mode & 0o777).toBe(0o755);
      const text = readFileSync(path, 'utf8');
      expect(text.startsWith('#!/bin/sh\n')).toBe(true);
      expect(text).toContain(`exec '${process.execPath}' '${bundle}' sim tool ${name} "$@"`);
      expect(isSimToolWrapper(path)).toBe(true);
    }
  });

  it('zkgrifs N prints exactly N random bytes and exits 0', async () => {
    const r = await tool('zkgrifs', ['512']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toHaveLength(512);
    expect(r.stderr).toBe('');
  });

  it('zklockifs FILE prints sealed bytes that zkunlockifs FILE turns back into the exact content', async () => {
    const plain = Buffer.from([0, 1, 2, 10, 13, 255, 0, 10]);
    writeFileSync(join(dir, 'plain'), plain);
    const sealed = await tool('zklockifs', [join(dir, 'plain')]);
    expect(sealed.exitCode).toBe(0);
    writeFileSync(join(dir, 'sealed'), sealed.stdout);
    const back = await tool('zkunlockifs', [join(dir, 'sealed')]);
    expect(back.exitCode).toBe(0);
    expect(back.stdout.equals(plain)).toBe(true);
  });

  it('the state dir comes from ZKLUKS_SIM_STATE at run time', async () => {
    expectContractFailure(
      await tool('zkgrifs', ['4'], { ZKLUKS_SIM_STATE: join(dir, 'elsewhere') }),
      'zkgrifs',
      'state-missing',
    );
  });

  it('after a production self-destruct zkunlockifs fails with one self-destructed line', async () => {
    writeFileSync(join(dir, 'plain'), 'k');
    writeFileSync(join(dir, 'sealed'), (await tool('zklockifs', [join(dir, 'plain')])).stdout);
    simBindLock(state);
    simArm(state, 0, 'self-destruct');
    simBreach(state, 0);
    const r = await tool('zkunlockifs', [join(dir, 'sealed')]);
    expectContractFailure(r, 'zkunlockifs', 'self-destructed');
    expect(r.stderr).toContain('can never be unsealed again');
  });

  it.each([
    ['zkgrifs', 'unreachable', () => simSetReachable(state, false)],
    ['zklockifs', 'host-mismatch', () => (simBindLock(state), simSwapHost(state))],
    ['zkgrifs', 'state-corrupt', () => writeFileSync(join(state, 'zkluks-sim-host.json'), 'garbage')],
  ] as const)('%s reports %s in the contract form', async (name, reason, breakIt) => {
    writeFileSync(join(dir, 'plain'), 'k');
    breakIt();
    expectContractFailure(await tool(name, name === 'zkgrifs' ? ['8'] : [join(dir, 'plain')]), name, reason);
  });

  it('zkunlockifs of damaged data reports corrupt-blob', async () => {
    writeFileSync(join(dir, 'sealed'), Buffer.alloc(100, 7));
    expectContractFailure(await tool('zkunlockifs', [join(dir, 'sealed')]), 'zkunlockifs', 'corrupt-blob');
  });

  it('bad arguments fail in the contract form too', async () => {
    expectContractFailure(await tool('zkgrifs', ['many']), 'zkgrifs', 'unknown');
    expectContractFailure(await tool('zklockifs', [join(dir, 'absent')]), 'zklockifs', 'unknown');
    expectContractFailure(await tool('zkgrifs', ['0']), 'zkgrifs', 'unknown');
  });

  it('an unknown tool name is tool-missing', async () => {
    const r = await runSimTool('zkfoo', [], state);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^zkfoo: tool-missing: /);
  });

  it("like Zymbit's tools, they refuse to run while zkifc runs", async () => {
    simZkifc(state, 'running');
    const r = await tool('zkgrifs', ['8']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('zkifc is running');
    simZkifc(state, 'stopped');
    expect((await tool('zkgrifs', ['8'])).exitCode).toBe(0);
  });
});

describe('opaque mode (ZKLUKS_SIM_OPAQUE): failures as an unknown real tool might report them', () => {
  beforeEach(() => simSetReachable(state, false));

  it.each([
    ['plain', 1, /^zkgrifs failed\n$/],
    ['exit2', 2, /^Error: operation returned -5\n$/],
    ['silent', 1, /^$/],
  ] as const)('%s: exit %d, no reason code on stderr', async (mode, exitCode, stderr) => {
    const r = await tool('zkgrifs', ['8'], { ZKLUKS_SIM_OPAQUE: mode });
    expect(r.exitCode).toBe(exitCode);
    expect(r.stdout).toHaveLength(0);
    expect(r.stderr).toMatch(stderr);
    expect(r.stderr).not.toContain('unreachable');
  });

  it('signal: the tool is killed', async () => {
    const r = await execa(join(tools, 'zkgrifs'), ['8'], {
      env: { ZKLUKS_SIM_STATE: state, ZKLUKS_SIM_OPAQUE: 'signal' },
      reject: false,
    });
    expect(r.signal).toBe('SIGKILL');
  });

  it('hang: the tool does not answer until it is killed', async () => {
    const r = await execa(join(tools, 'zkgrifs'), ['8'], {
      env: { ZKLUKS_SIM_STATE: state, ZKLUKS_SIM_OPAQUE: 'hang' },
      reject: false,
      timeout: 3000,
    });
    expect(r.timedOut).toBe(true);
  });

  it('a success stays a success, and an unknown mode is refused', async () => {
    simSetReachable(state, true);
    expect((await tool('zkgrifs', ['8'], { ZKLUKS_SIM_OPAQUE: 'silent' })).stdout).toHaveLength(8);
    await expect(runSimTool('zkgrifs', ['8'], state, { ZKLUKS_SIM_OPAQUE: 'loud' })).rejects.toThrow(
      /ZKLUKS_SIM_OPAQUE/,
    );
  });
});
