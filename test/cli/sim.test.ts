// zkluks sim …, run as a user would (the built bundle).
import { execa } from 'execa';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bundle, nodeBin, zkluks } from '../helpers/cli.ts';

let dir: string;
let env: Record<string, string>;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zkluks-cli-sim-'));
  env = { ZKLUKS_SIM_STATE: join(dir, 'state'), ZKLUKS_BACKEND: 'sim' };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const json = async (args: string[]) => {
  const r = await zkluks([...args, '--json'], { env });
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
};

describe('zkluks sim', () => {
  it('init creates a module with the chosen model; status shows it; init again is refused with exit 3', async () => {
    const made = await json(['sim', 'init', '--model', 'HSM6']);
    expect(made).toMatchObject({
      model: 'HSM6',
      binding: { mode: 'developer' },
      keyMaterial: 'present',
      reachable: true,
    });
    expect(await json(['sim', 'status'])).toEqual(made);
    const again = await zkluks(['sim', 'init'], { env });
    expect(again.exitCode).toBe(3);
    expect(again.stderr).toContain('hint: zkluks sim init --force');
    expect((await json(['sim', 'init', '--force'])).serial).not.toBe(made.serial);
  });

  it('status without a simulator exits 4 with state-missing and a hint to init', async () => {
    const r = await zkluks(['sim', 'status', '--json'], { env });
    expect(r.exitCode).toBe(4);
    expect(JSON.parse(r.stdout).error.reason).toBe('state-missing');
    expect(r.stderr).toContain('hint: zkluks sim init');
  });

  it('--sim-state overrides ZKLUKS_SIM_STATE', async () => {
    const other = join(dir, 'other');
    const r = await zkluks(['sim', 'init', '--sim-state', other], { env });
    expect(r.exitCode).toBe(0);
    expect(existsSync(join(other, 'zkluks-sim.json'))).toBe(true);
    expect(existsSync(join(dir, 'state'))).toBe(false);
  });

  it('bind-lock, swap-host, arm, breach, clear, unplug and plug change what status reports', async () => {
    await json(['sim', 'init']);
    expect((await json(['sim', 'bind-lock'])).binding).toMatchObject({
      mode: 'production',
      hostMatches: true,
    });
    expect((await json(['sim', 'swap-host'])).binding.hostMatches).toBe(false);
    const armed = await json(['sim', 'arm', '--channel', '1', '--action', 'notify']);
    expect(armed.perimeter[1].action).toBe('notify');
    const breach = await json(['sim', 'breach', '--channel', '1']);
    expect(breach).toMatchObject({ channel: 1, action: 'notify', latched: true, destroyed: false });
    expect((await json(['sim', 'status'])).perimeter[1].firstBreach).toBe(breach.firstBreach);
    expect((await json(['sim', 'clear'])).perimeter[1].firstBreach).toBeNull();
    expect((await json(['sim', 'unplug'])).reachable).toBe(false);
    expect((await json(['sim', 'plug'])).reachable).toBe(true);
  });

  it('breach on an armed self-destruct channel in production mode destroys the keys', async () => {
    await json(['sim', 'init']);
    await json(['sim', 'bind-lock']);
    await json(['sim', 'arm', '--channel', '0', '--action', 'self-destruct']);
    const r = await zkluks(['sim', 'breach', '--channel', '0'], { env });
    expect(r.stdout).toContain('destroyed its key material');
    expect((await json(['sim', 'status'])).keyMaterial).toBe('destroyed');
    const disarm = await zkluks(['sim', 'arm', '--channel', '0', '--action', 'none'], { env });
    expect(disarm.exitCode).toBe(3);
  });

  it('arm rejects a channel other than 0 or 1 with exit 2', async () => {
    await json(['sim', 'init']);
    const r = await zkluks(['sim', 'arm', '--channel', '2', '--action', 'notify'], { env });
    expect(r.exitCode).toBe(2);
  });

  it('sim tool runs a tool with the contract: bytes on stdout, exit 1 and one reason line on failure', async () => {
    await json(['sim', 'init']);
    const ok = await execa(nodeBin, [bundle, 'sim', 'tool', 'zkgrifs', '16'], {
      env,
      encoding: 'buffer',
      stripFinalNewline: false,
    });
    expect(Buffer.from(ok.stdout)).toHaveLength(16);
    await json(['sim', 'unplug']);
    const bad = await zkluks(['sim', 'tool', 'zkgrifs', '16'], { env });
    expect(bad.exitCode).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/^zkgrifs: unreachable: [^\n]+$/);
  });

  it('install-tools writes the wrappers and lists them', async () => {
    const out = await json(['sim', 'install-tools', join(dir, 'bin')]);
    expect(out.tools).toEqual(['zkgrifs', 'zklockifs', 'zkunlockifs'].map((t) => join(dir, 'bin', t)));
    expect(out.bundle).toBe(bundle);
  });

  it('serve prints listening once ready, answers over the socket and exits 0 on SIGTERM', async () => {
    await json(['sim', 'init']);
    const socket = join(dir, 'sim.sock');
    const server = execa(nodeBin, [bundle, 'sim', 'serve', '--socket', socket], {
      env,
      reject: false,
    });
    let stderr = '';
    await new Promise<void>((resolve) => {
      server.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (stderr.includes(`listening ${socket}`)) resolve();
      });
    });
    const client = await execa('python3', [
      '-c',
      'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"RAND 8\\nRAND 4\\n"); f=s.makefile(); print(f.readline().strip()); print(f.readline().strip())',
      socket,
    ]);
    const [a = '', b = ''] = client.stdout.split('\n');
    expect(Buffer.from(a.slice(3), 'base64')).toHaveLength(8);
    expect(Buffer.from(b.slice(3), 'base64')).toHaveLength(4);
    server.kill('SIGTERM');
    const done = await server;
    expect(done.exitCode).toBe(0);
    expect(done.stderr).toContain('[sim] RAND ok');
    expect(existsSync(socket)).toBe(false);
  });
});
