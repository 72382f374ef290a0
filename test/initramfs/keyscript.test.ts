// Shell tier: the rendered keyscript, run by busybox sh (with busybox's applets first on PATH, as in
// the initramfs) and by dash, against real LUKS2 image files carrying a zkluks-zymkey token and the
// simulator's zkunlockifs. A stub askpass records the prompt it was given.
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  simArm,
  simBindLock,
  simBreach,
  simInit,
  simSetReachable,
  simZkifc,
} from '../../src/device/sim-control.ts';
import { I2C_MODULES, keyscriptVars } from '../../src/initramfs/boot-files.ts';
import { render } from '../../src/initramfs/render.ts';
import { readTemplate } from '../../src/initramfs/templates.ts';
import { serializeToken, zymkeyToken } from '../../src/keyslot/token.ts';
import { zkluks } from '../helpers/cli.ts';
import { addKey, makeLuksImage, type TestImage } from '../helpers/luks.ts';

const ASKPASS_OUTPUT = 'typed passphrase';
const W = mkdtempSync(join(tmpdir(), 'zkluks-keyscript-'));
const bin = join(W, 'bin');
const bb = join(W, 'busybox');
const keyscript = join(W, 'zkluks');
const simState = join(W, 'sim');
const destroyedState = join(W, 'sim-destroyed');
const unpluggedState = join(W, 'sim-unplugged');
const busPresent = join(W, 'sys-present');
const busMissing = join(W, 'sys-missing');
// Ends in a newline and holds a NUL: a shell variable would mangle both.
const key = Buffer.concat([randomBytes(31), Buffer.from([0]), randomBytes(31), Buffer.from('\n')]);
let image: TestImage;
let noToken: string;
let corruptToken: string;

function writeScript(path: string, body: string): string {
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

async function importToken(volume: string, json: string, id: number): Promise<void> {
  await execa('cryptsetup', ['token', 'import', '--token-id', String(id), volume], { input: json });
}

beforeAll(async () => {
  const tools = await zkluks(['sim', 'install-tools', bin]);
  expect(tools.exitCode, tools.stderr).toBe(0);
  mkdirSync(bb);
  await execa('busybox', ['--install', '-s', bb]);
  mkdirSync(join(busPresent, 'i2c-1'), { recursive: true });
  mkdirSync(busMissing);
  writeFileSync(
    keyscript,
    render(readTemplate('keyscript'), keyscriptVars({ zkunlockifs: '/sbin/zkunlockifs' })),
  );
  chmodSync(keyscript, 0o755);
  writeScript(
    join(W, 'askpass'),
    `printf '%s' "$1" > "$ZKLUKS_TEST_PROMPT"\nprintf '%s' '${ASKPASS_OUTPUT}'`,
  );
  // A zkunlockifs that never answers and ignores SIGTERM (ignored signals survive exec).
  writeScript(join(W, 'hang'), "trap '' TERM\nexec sleep 60");
  // Notes where the sealed key was handed over and how that directory is protected, then unseals.
  writeScript(
    join(W, 'spy-zkunlockifs'),
    'd=${1%/*}; { echo "$d"; ls -ld "$d" | cut -c1-10; } >"$ZKLUKS_RUN_DIR/../spy.log"; exec zkunlockifs "$1"',
  );
  writeFileSync(join(W, 'zkenv.conf'), 'ZK_GPIO_WAKE_PIN=516\n');
  // A modprobe that only notes what it was asked to load, next to the run directory.
  writeScript(join(W, 'modprobe'), 'printf \'%s\\n\' "$*" >>"$ZKLUKS_RUN_DIR/../modprobe.log"');
  // A zkunlockifs that needs 0.4 s more than the simulator's.
  writeScript(join(W, 'slow-zkunlockifs'), 'sleep 0.4; exec zkunlockifs "$1"');
  // Modprobes whose first call takes 1.6 s or 2.2 s, as a slow module load eats the time budget.
  for (const [name, seconds] of [
    ['slow-modprobe', '1.6'],
    ['slower-modprobe', '2.2'],
  ]) {
    writeScript(
      join(W, name as string),
      `m="$ZKLUKS_RUN_DIR/../slow"; [ -e "$m" ] && exit 0; : >"$m"; sleep ${seconds}`,
    );
  }

  simInit(simState);
  simZkifc(simState, 'stopped');
  const keyFile = join(W, 'plain.key');
  writeFileSync(keyFile, key, { mode: 0o600 });
  const sealed = await execa(join(bin, 'zklockifs'), [keyFile], {
    env: { ZKLUKS_SIM_STATE: simState },
    encoding: 'buffer',
    stripFinalNewline: false,
  });
  rmSync(keyFile);
  // Other modules on other hosts (a copy of the host directory would share the module): one
  // self-destructed, one unplugged. In the initramfs zkifc does not run.
  simInit(destroyedState);
  simZkifc(destroyedState, 'stopped');
  simArm(destroyedState, 0, 'self-destruct');
  simBindLock(destroyedState);
  simBreach(destroyedState, 0);
  simInit(unpluggedState);
  simZkifc(unpluggedState, 'stopped');
  simSetReachable(unpluggedState, false);

  image = await makeLuksImage();
  await addKey(image.path, image.passphrase, key, 1);
  noToken = join(image.dir, 'no-token.img');
  corruptToken = join(image.dir, 'corrupt-token.img');
  cpSync(image.path, noToken);
  cpSync(image.path, corruptToken);
  // Another program's token first, so the keyscript has to look for ours.
  const other = JSON.stringify({ type: 'systemd-recovery', keyslots: ['0'] });
  for (const volume of [image.path, noToken, corruptToken]) await importToken(volume, other, 0);
  const token = zymkeyToken({
    keyslot: 1,
    sealed: Buffer.from(sealed.stdout),
    backend: 'sim',
    zymkey: { model: 'ZYMKEY4i', serial: 'SIM-TEST', binding: 'developer' },
    created: new Date(),
  });
  await importToken(image.path, serializeToken(token), 3);
  await importToken(corruptToken, serializeToken({ ...token, sealed: 'not%base64!' }), 3);
}, 120_000);

afterAll(async () => {
  rmSync(W, { recursive: true, force: true });
  await image?.cleanup();
});

interface Run {
  stdout: Buffer;
  stderr: string;
  prompt: string | null;
  record: Record<string, string>;
  /** Files left in the run directory. */
  runFiles: string[];
  /** What is left in the scratch directory (the sealed key, the plaintext key, stderr). */
  workFiles: string[];
  /** The modprobe calls, one per line. */
  modprobe: string;
  kmsg: string;
  elapsedMs: number;
}

interface RunOptions {
  source?: string;
  state?: string;
  tried?: number;
  unlock?: string;
  sysfs?: string;
  conf?: string;
  /** A record left by an earlier try in the same boot. */
  previous?: string;
  modprobe?: string;
}

let caseNo = 0;
async function runKeyscript(shell: string, opts: RunOptions = {}): Promise<Run> {
  const dir = join(W, `case-${++caseNo}`);
  const runDir = join(dir, 'run');
  const workDir = join(dir, 'work');
  mkdirSync(runDir, { recursive: true });
  if (opts.previous !== undefined) writeFileSync(join(runDir, 'cryptroot.record'), opts.previous);
  writeFileSync(join(dir, 'kmsg'), '');
  writeFileSync(join(dir, 'boot.conf'), opts.conf ?? '');
  const path = [shell === 'busybox' ? bb : null, bin, '/usr/sbin', '/usr/bin', '/sbin', '/bin']
    .filter((p) => p !== null)
    .join(':');
  const argv = shell === 'busybox' ? ['busybox', ['sh', keyscript, 'none']] : ['dash', [keyscript, 'none']];
  const started = performance.now();
  const r = await execa(argv[0] as string, argv[1] as string[], {
    env: {
      PATH: path,
      CRYPTTAB_NAME: 'cryptroot',
      CRYPTTAB_SOURCE: opts.source ?? image.path,
      CRYPTTAB_TRIED: String(opts.tried ?? 0),
      CRYPTTAB_KEY: 'none',
      ZKLUKS_SIM_STATE: opts.state ?? simState,
      ZKLUKS_ASKPASS: join(W, 'askpass'),
      ZKLUKS_UNLOCK: opts.unlock ?? 'zkunlockifs',
      ZKLUKS_MODPROBE: opts.modprobe ?? join(W, 'modprobe'),
      ZKLUKS_RUN_DIR: runDir,
      ZKLUKS_WORK_DIR: workDir,
      ZKLUKS_CONF: join(dir, 'boot.conf'),
      ZKLUKS_ZKENV: join(W, 'zkenv.conf'),
      ZKLUKS_I2C_SYSFS: opts.sysfs ?? busPresent,
      ZKLUKS_KMSG: join(dir, 'kmsg'),
      ZKLUKS_TEST_PROMPT: join(dir, 'prompt'),
    },
    extendEnv: false,
    encoding: 'buffer',
    stripFinalNewline: false,
    timeout: 30_000,
  });
  const elapsedMs = performance.now() - started;
  const read = (p: string) => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return null;
    }
  };
  const record = Object.fromEntries(
    (read(join(runDir, 'cryptroot.record')) ?? '')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  return {
    stdout: Buffer.from(r.stdout),
    stderr: Buffer.from(r.stderr).toString('utf8'),
    prompt: read(join(dir, 'prompt')),
    record,
    runFiles: readdirSync(runDir).sort(),
    workFiles: existsSync(workDir) ? readdirSync(workDir) : [],
    kmsg: read(join(dir, 'kmsg')) ?? '',
    modprobe: read(join(dir, 'modprobe.log')) ?? '',
    elapsedMs,
  };
}

function expectFallback(run: Run, reason: string, withinMs: number): void {
  expect(run.stdout.toString()).toBe(ASKPASS_OUTPUT);
  expect(run.prompt).toBe(`Please unlock disk cryptroot (Zymkey: ${reason}): `);
  expect(run.record).toMatchObject({ name: 'cryptroot', method: 'passphrase', reason });
  expect(run.record.detail).not.toBe('');
  expect(Number(run.record.elapsed_ms)).toBeLessThan(withinMs);
  expect(run.elapsedMs).toBeLessThan(withinMs + 2000);
  expect(run.stderr).toContain(`zkluks: cryptroot: Zymkey unlock failed: ${reason}:`);
  expect(run.kmsg).toContain(`Zymkey unlock failed: ${reason}:`);
  expect(run.runFiles).toEqual(['cryptroot.record']);
  expect(run.workFiles).toEqual([]);
}

describe.each(['busybox', 'dash'])('the keyscript under %s', (shell) => {
  it('prints the unsealed key byte for byte and records method=zymkey', async () => {
    const run = await runKeyscript(shell);
    expect(run.stdout.equals(key), run.stderr).toBe(true);
    expect(run.prompt).toBeNull();
    expect(run.record).toMatchObject({
      name: 'cryptroot',
      source: image.path,
      method: 'zymkey',
      tried: '0',
      reason: 'ok',
    });
    expect(Number(run.record.elapsed_ms)).toBeGreaterThanOrEqual(0);
    expect(Number(run.record.uptime)).toBeGreaterThan(0);
    expect(run.runFiles).toEqual(['cryptroot.record']);
    expect(run.workFiles).toEqual([]);
    expect(readFileSync(join(W, `case-${caseNo}`, 'run', 'cryptroot.record')).includes(key)).toBe(false);
    // Nothing but the key leaves the script: no message on stderr or the kernel log.
    expect(run.stderr).toBe('');
    expect(run.kmsg).toBe('');
    expect(run.modprobe).toBe(I2C_MODULES.map((m) => `-q ${m}\n`).join(''));
  });

  it('falls back to askpass with the reason when the Zymkey self-destructed', async () => {
    const run = await runKeyscript(shell, { state: destroyedState });
    expectFallback(run, 'self-destructed', 10_000);
    expect(run.record.detail).toMatch(/^zkunlockifs: self-destructed: /);
  });

  it('falls back to askpass when the Zymkey does not answer', async () => {
    expectFallback(await runKeyscript(shell, { state: unpluggedState }), 'unreachable', 10_000);
  });

  it('falls back to askpass when the header has no zkluks-zymkey token', async () => {
    const run = await runKeyscript(shell, { source: noToken });
    expectFallback(run, 'no-token', 10_000);
    expect(run.record.detail).toContain('no zkluks-zymkey token');
  });

  it('falls back to askpass when the token holds no valid sealed key', async () => {
    expectFallback(await runKeyscript(shell, { source: corruptToken }), 'corrupt-token', 10_000);
  });

  it('falls back to askpass after the bus wait when no I2C bus appears', async () => {
    const run = await runKeyscript(shell, {
      sysfs: busMissing,
      conf: 'ZKLUKS_TIMEOUT=3\nZKLUKS_BUS_WAIT=1\n',
    });
    expectFallback(run, 'no-bus', 3000);
    expect(run.elapsedMs).toBeGreaterThanOrEqual(1000);
  });

  it('keeps the sealed and unsealed key in a private scratch directory outside /run', async () => {
    const run = await runKeyscript(shell, { unlock: join(W, 'spy-zkunlockifs') });
    expect(run.stdout.equals(key), run.stderr).toBe(true);
    const [dir, mode] = readFileSync(join(W, `case-${caseNo}`, 'spy.log'), 'utf8')
      .trim()
      .split('\n');
    expect(dir).toBe(join(W, `case-${caseNo}`, 'work'));
    expect(mode).toBe('drwx------');
    expect(run.workFiles).toEqual([]);
  });

  it('gives up on a zkunlockifs that hangs once the time budget is spent', async () => {
    const run = await runKeyscript(shell, { unlock: join(W, 'hang'), conf: 'ZKLUKS_TIMEOUT=2\n' });
    // The budget is kept to within the 0.1 s poll and the 0.1 s between an ignored TERM and KILL
    // (plus margin for a shared machine): no whole-second rounding.
    expectFallback(run, 'timeout', 2000 + 700);
    expect(Number(run.record.elapsed_ms)).toBeGreaterThanOrEqual(2000);
    expect(run.record.detail).toMatch(/gave no answer within the time budget \(ZKLUKS_TIMEOUT=2\)/);
  });

  // A slow module load eats the 2 s budget: 1.6 s of it (the unseal then needs more than the 0.4 s
  // left), or all of it (the token search too). Each still gets at least 1 s, and the unseal succeeds.
  it.each([
    ['the unseal', 'slow-modprobe', 'slow-zkunlockifs', 1600],
    ['the token search and the unseal', 'slower-modprobe', 'zkunlockifs', 2200],
  ])('gives %s at least 1 s when loading the modules used up the budget', async (_, modprobe, unlock, ms) => {
    const run = await runKeyscript(shell, {
      modprobe: join(W, modprobe as string),
      unlock: unlock === 'zkunlockifs' ? 'zkunlockifs' : join(W, unlock as string),
      conf: 'ZKLUKS_TIMEOUT=2\n',
    });
    expect(run.stdout.equals(key), run.stderr).toBe(true);
    expect(run.record).toMatchObject({ method: 'zymkey', reason: 'ok' });
    expect(Number(run.record.elapsed_ms)).toBeGreaterThanOrEqual(ms as number);
  });

  it('falls back to askpass when zkunlockifs is not installed', async () => {
    expectFallback(
      await runKeyscript(shell, { unlock: join(W, 'no-such-zkunlockifs') }),
      'tool-missing',
      10_000,
    );
  });

  it('asks for the passphrase on a later try after cryptsetup rejected the unsealed key', async () => {
    const run = await runKeyscript(shell, { tried: 1, previous: 'method=zymkey\nreason=ok\n' });
    expectFallback(run, 'key-rejected', 10_000);
    expect(run.record.tried).toBe('1');
    // A later try goes straight to the prompt: no module loading, no Zymkey.
    expect(run.modprobe).toBe('');
  });

  it('keeps the first reason on a later try after a wrong passphrase', async () => {
    const run = await runKeyscript(shell, {
      tried: 2,
      previous: 'method=passphrase\nreason=self-destructed\ndetail=zkunlockifs: self-destructed: gone\n',
    });
    expectFallback(run, 'self-destructed', 10_000);
    expect(run.record).toMatchObject({ tried: '2', detail: 'zkunlockifs: self-destructed: gone' });
  });
});
