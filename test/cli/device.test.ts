// zkluks device …, run as a user would (the built bundle).
import { execa } from 'execa';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bundle, nodeBin, zkluks } from '../helpers/cli.ts';
import { HANG, OPAQUE, silentModule, silentModuleText } from '../helpers/opaque.ts';

let dir: string;
let env: Record<string, string>;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'zkluks-cli-device-'));
  env = { ZKLUKS_SIM_STATE: join(dir, 'state'), ZKLUKS_BACKEND: 'sim' };
  expect((await zkluks(['sim', 'init', '--model', 'HSM4'], { env })).exitCode).toBe(0);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Run the bundle with binary stdin/stdout. */
async function raw(args: string[], input?: Buffer) {
  const r = await execa(nodeBin, [bundle, ...args], {
    env,
    input,
    encoding: 'buffer',
    stripFinalNewline: false,
    reject: false,
  });
  return { exitCode: r.exitCode, stdout: Buffer.from(r.stdout), stderr: Buffer.from(r.stderr).toString() };
}

describe('zkluks device', () => {
  it('info shows model, serial, firmware, binding and perimeter through the port', async () => {
    const r = await zkluks(['device', 'info', '--json'], { env });
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      backend: 'sim',
      model: 'HSM4',
      serial: expect.stringMatching(/^SIM-/),
      firmware: '01.00.00-sim',
      binding: { mode: 'developer', bound: true },
      perimeter: [
        { channel: 0, action: 'unknown', firstBreach: null },
        { channel: 1, action: 'unknown', firstBreach: null },
      ],
    });
    const human = await zkluks(['device', 'info'], { env });
    expect(human.stdout).toContain('model      HSM4');
  });

  it('random N prints N bytes as hex, or raw with --raw', async () => {
    const hex = await zkluks(['device', 'random', '24'], { env });
    expect(hex.stdout).toMatch(/^[0-9a-f]{48}$/);
    expect((await raw(['device', 'random', '24', '--raw'])).stdout).toHaveLength(24);
  });

  it('seal and unseal round-trip binary data through stdin and stdout', async () => {
    const plain = Buffer.from([0, 255, 10, 13, 0, 1, 2, 3, 128]);
    const sealed = await raw(['device', 'seal'], plain);
    expect(sealed.exitCode).toBe(0);
    const back = await raw(['device', 'unseal'], sealed.stdout);
    expect(back.exitCode).toBe(0);
    expect(back.stdout.equals(plain)).toBe(true);
  });

  it('seal --base64 output feeds unseal --base64', async () => {
    const sealed = await zkluks(['device', 'seal', '--base64'], { env, input: 'hello' });
    expect(sealed.stdout).toMatch(/^[A-Za-z0-9+/=]+$/);
    const back = await zkluks(['device', 'unseal', '--base64'], { env, input: sealed.stdout });
    expect(back.stdout).toBe('hello');
  });

  it('unseal after a production self-destruct exits 4 and says what it means for the disk', async () => {
    const sealed = await raw(['device', 'seal'], Buffer.from('k'));
    for (const args of [
      ['sim', 'bind-lock'],
      ['sim', 'arm', '--channel', '0', '--action', 'self-destruct'],
      ['sim', 'breach', '--channel', '0'],
    ]) {
      expect((await zkluks(args, { env })).exitCode).toBe(0);
    }
    const r = await raw(['device', 'unseal', '--json'], sealed.stdout);
    expect(r.exitCode).toBe(4);
    expect(JSON.parse(r.stdout.toString()).error).toMatchObject({
      reason: silentModule('self-destructed'),
      exitCode: 4,
    });
    expect(r.stderr).toMatch(silentModuleText(/self-destructed: .*can never be unsealed again/));
    expect(r.stderr).toContain(
      HANG
        ? 'hint: zkluks device probe'
        : OPAQUE
          ? "hint: read the module's LED"
          : 'hint: unlock with the recovery key',
    );
  });

  it('an unplugged module makes device info exit 4 with reason unreachable', async () => {
    await zkluks(['sim', 'unplug'], { env });
    const r = await zkluks(['device', 'info', '--json'], { env });
    expect(r.exitCode).toBe(4);
    expect(JSON.parse(r.stdout).error.reason).toBe(silentModule('unreachable', 'api'));
    // An API call that fails gives no reason on a real module either.
    expect(r.stderr).toContain(OPAQUE ? 'the API call failed' : 'hint: zkluks device probe');
  });

  it('probe on a system without I2C prints the contract JSON with bus-missing and exits 4', async () => {
    const root = join(dir, 'root');
    mkdirSync(root);
    const r = await zkluks(['device', 'probe', '--json', '--root', root], { env });
    expect(r.exitCode).toBe(4);
    expect(JSON.parse(r.stdout)).toEqual({
      status: 'bus-missing',
      bus: null,
      busName: null,
      address: '0x30',
      detail: expect.any(String),
    });
  });

  it('probe says i2c-bus is not installed when the bundle runs without it', async () => {
    const root = join(dir, 'root');
    mkdirSync(join(root, 'sys/class/i2c-dev/i2c-1'), { recursive: true });
    writeFileSync(join(root, 'sys/class/i2c-dev/i2c-1/name'), 'bcm2835 (i2c@7e804000)\n');
    mkdirSync(join(root, 'dev'));
    writeFileSync(join(root, 'dev/i2c-1'), '');
    const alone = join(dir, 'alone');
    mkdirSync(alone);
    cpSync(dirname(bundle), alone, { recursive: true });
    const r = await execa(nodeBin, [join(alone, 'zkluks.mjs'), 'device', 'probe', '--json', '--root', root], {
      reject: false,
      cwd: alone,
    });
    expect(r.exitCode).toBe(4);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({
      status: 'unavailable',
      bus: 1,
      busName: 'bcm2835 (i2c@7e804000)',
      address: '0x30',
    });
    expect(out.detail).toContain('i2c-bus is not installed');
  });

  it('the zymbit backend without Zymbit tools fails with tool-missing and exit 4', async () => {
    const r = await zkluks(['device', 'random', '8', '--backend', 'zymbit', '--json'], {
      env: { ...env, PATH: '/nonexistent' },
    });
    expect(r.exitCode).toBe(4);
    expect(JSON.parse(r.stdout).error.reason).toBe('tool-missing');
  });
});
