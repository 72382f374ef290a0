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
import { SIM_OPAQUE_ENV, SIM_OPAQUE_MODES, type SimOpaqueMode } from '../../src/device/sim-opaque.ts';
import { I2C_MODULES, keyscriptVars } from '../../src/initramfs/boot-files.ts';
import { render } from '../../src/initramfs/render.ts';
import { readTemplate } from '../../src/initramfs/templates.ts';
import { readHeaderChecksum } from '../../src/keyslot/header.ts';
import { serializeToken, zymkeyToken } from '../../src/keyslot/token.ts';
import { installBusyboxApplets } from '../helpers/busybox.ts';
import { zkluks } from '../helpers/cli.ts';
import { addKey, makeLuksImage, type TestImage } from '../helpers/luks.ts';

const ASKPASS_OUTPUT = 'typed passphrase';
const TOKEN = 'zkluks-zymkey';
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
/** Crafted headers: sealed keys and types nested inside tokens, escapes, an oversized sealed key. */
let crafted: TestImage;
const craftedPath = (name: string) => join(crafted.dir, `${name}.img`);
let sealedB64: string;

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
  await installBusyboxApplets(bb);
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
  // A modprobe that notes what it was asked to load, next to the run directory, and brings up the bus
  // of a case whose bus appears only once the modules are loaded.
  writeScript(
    join(W, 'modprobe'),
    'printf \'%s\\n\' "$*" >>"$ZKLUKS_RUN_DIR/../modprobe.log"\n' +
      'case $ZKLUKS_I2C_SYSFS in */sys) mkdir -p "$ZKLUKS_I2C_SYSFS/i2c-1" ;; esac',
  );
  // A cryptsetup that notes each call, then runs the real one.
  writeScript(join(W, 'spy-cryptsetup'), 'echo "$*" >>"$ZKLUKS_TEST_CALLS"; exec cryptsetup "$@"');
  // A cryptsetup that changes the header (its label) before it reads it: a write during the copy.
  writeScript(
    join(W, 'relabel-cryptsetup'),
    'for v; do :; done; cryptsetup config --label "moved $$" "$v"; exec cryptsetup "$@"',
  );
  // A cryptsetup that takes 20 s before it reads the header.
  writeScript(join(W, 'slow-cryptsetup'), 'sleep 20; exec cryptsetup "$@"');
  // A zkunlockifs that prints the key at once (the Zymkey's own time taken out).
  writeScript(join(W, 'standin-zkunlockifs'), `exec cat '${join(W, 'standin.key')}'`);
  writeFileSync(join(W, 'standin.key'), key, { mode: 0o600 });
  // A zkunlockifs that answers after 0.6 s (a stand-in, not the simulator: Node's start-up on a busy
  // machine must not decide whether 1 s was given).
  writeScript(join(W, 'slow-zkunlockifs'), `sleep 0.6; exec cat '${join(W, 'standin.key')}'`);
  // Modprobes whose first call takes 1.6 s or 2.2 s, as a slow module load eats the time budget; the
  // bus appears once they are done.
  for (const [name, seconds] of [
    ['slow-modprobe', '1.6'],
    ['slower-modprobe', '2.2'],
  ]) {
    writeScript(
      join(W, name as string),
      `m="$ZKLUKS_RUN_DIR/../slow"; [ -e "$m" ] && exit 0; : >"$m"; sleep ${seconds}; mkdir -p "$ZKLUKS_I2C_SYSFS/i2c-1"`,
    );
  }
  // A zkunlockifs that first ends the keyscript's other children (the watchdog and its sleep), as if
  // the watchdog had died, then prints the key.
  writeScript(
    join(W, 'lone-zkunlockifs'),
    [
      'for k in $(cat /proc/$PPID/task/$PPID/children); do',
      '  [ "$k" = $$ ] && continue',
      '  kill -KILL $(cat /proc/$k/task/$k/children) "$k"',
      'done',
      `exec cat '${join(W, 'standin.key')}'`,
    ].join('\n'),
  );

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

  // Only top-level members of a zkluks-zymkey token count: nested "sealed"/"type" members, and text
  // that looks like them inside strings, are decoys.
  sealedB64 = token.sealed;
  const decoy = Buffer.from(randomBytes(130)).toString('base64');
  const tricky = 'a "sealed":"QUJD" } ] { [ \\ \\" "type":"zkluks-zymkey" \u001b[31m';
  const { sealed: _, ...rest } = JSON.parse(serializeToken(token)) as Record<string, unknown>;
  crafted = await makeLuksImage({ metadataSizeKiB: 64 });
  await addKey(crafted.path, crafted.passphrase, key, 1);
  const variants: Record<string, Array<[number, unknown]>> = {
    // The real key at the top, decoys nested before it and in an earlier token of another type.
    'nested-decoys': [
      [0, { type: 'other', keyslots: [], inner: { type: TOKEN, sealed: decoy }, note: tricky }],
      [
        2,
        {
          ...rest,
          x: { sealed: decoy, type: TOKEN, y: [{ sealed: decoy }] },
          note: tricky,
          sealed: sealedB64,
        },
      ],
    ],
    // The real key only nested: the top-level one is someone else's blob.
    'nested-real': [[2, { ...rest, sealed: decoy, x: { sealed: sealedB64 } }]],
    // A zkluks-zymkey type only nested, in a token of another type.
    'nested-type': [[0, { type: 'other', keyslots: [], x: { type: TOKEN, sealed: sealedB64 } }]],
    // A sealed member that is no string.
    'sealed-object': [[2, { ...rest, sealed: { sealed: sealedB64 } }]],
    // Two zkluks-zymkey tokens: the lower id is the one used, whatever their order in the header.
    'lowest-id': [
      [5, { ...rest, sealed: decoy }],
      [1, { ...rest, note: tricky, sealed: sealedB64 }],
    ],
    huge: [[2, { ...rest, sealed: 'QUJD'.repeat(2049) }]],
  };
  for (const [name, tokens] of Object.entries(variants)) {
    cpSync(crafted.path, craftedPath(name));
    for (const [id, t] of tokens) await importToken(craftedPath(name), JSON.stringify(t), id);
  }
}, 120_000);

afterAll(async () => {
  rmSync(W, { recursive: true, force: true });
  await image?.cleanup();
  await crafted?.cleanup();
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
  /** What the spy-cryptsetup was asked to do, one call per line. */
  calls: string;
  kmsg: string;
  elapsedMs: number;
  /** With `trace`: processes forked, and the programs run (by name, in order). */
  forks: number;
  programs: string[];
}

interface RunOptions {
  source?: string;
  state?: string;
  tried?: number;
  unlock?: string;
  /** The I2C sysfs directory; 'appears': empty until modprobe has run. */
  sysfs?: string;
  /** The scratch directory is there already (mode 0700), as the hook ships it in the image. */
  shipped?: boolean;
  conf?: string;
  /** A record left by an earlier try in the same boot. */
  previous?: string;
  modprobe?: string;
  cryptsetup?: string;
  /** Run under `strace -f`, counting the processes the keyscript forks and the programs it runs. */
  trace?: boolean;
  /** The simulator's tools fail opaquely, as an unknown real zkunlockifs might. */
  opaque?: SimOpaqueMode;
  /** The image's token copies (the hook's ZKLUKS_MAKE_COPY output); none by default. */
  copy?: string;
}

let caseNo = 0;
async function runKeyscript(shell: string, opts: RunOptions = {}): Promise<Run> {
  const dir = join(W, `case-${++caseNo}`);
  const runDir = join(dir, 'run');
  const workDir = join(dir, 'work');
  // As at boot, the run directory appears with the first record (a traced run counts its mkdir).
  mkdirSync(opts.trace ? dir : runDir, { recursive: true });
  if (opts.shipped) mkdirSync(workDir, { mode: 0o700 });
  const sysfs = opts.sysfs === 'appears' ? join(dir, 'sys') : (opts.sysfs ?? busPresent);
  if (opts.sysfs === 'appears') mkdirSync(sysfs);
  if (opts.previous !== undefined) writeFileSync(join(runDir, 'cryptroot.record'), opts.previous);
  writeFileSync(join(dir, 'kmsg'), '');
  writeFileSync(join(dir, 'boot.conf'), opts.conf ?? '');
  const path = [shell === 'busybox' ? bb : null, bin, '/usr/sbin', '/usr/bin', '/sbin', '/bin']
    .filter((p) => p !== null)
    .join(':');
  let argv: [string, string[]] =
    shell === 'busybox' ? ['busybox', ['sh', keyscript, 'none']] : ['dash', [keyscript, 'none']];
  const traceFile = join(dir, 'strace');
  if (opts.trace) {
    argv = [
      'strace',
      [
        '-f',
        '-qq',
        '-z',
        '-e',
        'trace=execve,clone,clone3,fork,vfork',
        '-e',
        'signal=none',
        '-o',
        traceFile,
        ...argv.flat(),
      ],
    ];
  }
  const started = performance.now();
  const r = await execa(argv[0], argv[1], {
    env: {
      PATH: path,
      CRYPTTAB_NAME: 'cryptroot',
      CRYPTTAB_SOURCE: opts.source ?? image.path,
      CRYPTTAB_TRIED: String(opts.tried ?? 0),
      CRYPTTAB_KEY: 'none',
      ZKLUKS_SIM_STATE: opts.state ?? simState,
      ...(opts.opaque ? { [SIM_OPAQUE_ENV]: opts.opaque } : {}),
      ZKLUKS_ASKPASS: join(W, 'askpass'),
      ZKLUKS_UNLOCK: opts.unlock ?? 'zkunlockifs',
      ...(opts.cryptsetup ? { ZKLUKS_CRYPTSETUP: opts.cryptsetup } : {}),
      ZKLUKS_MODPROBE: opts.modprobe ?? join(W, 'modprobe'),
      ZKLUKS_RUN_DIR: runDir,
      ZKLUKS_WORK_DIR: workDir,
      ZKLUKS_TOKEN_COPY_DIR: opts.copy ?? join(dir, 'no-copy'),
      ZKLUKS_CONF: join(dir, 'boot.conf'),
      ZKLUKS_ZKENV: join(W, 'zkenv.conf'),
      ZKLUKS_I2C_SYSFS: sysfs,
      ZKLUKS_KMSG: join(dir, 'kmsg'),
      ZKLUKS_TEST_PROMPT: join(dir, 'prompt'),
      ZKLUKS_TEST_CALLS: join(dir, 'calls'),
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
    calls: read(join(dir, 'calls')) ?? '',
    elapsedMs,
    ...traced(opts.trace ? readFileSync(traceFile, 'utf8') : ''),
  };
}

/** Processes forked (clones that are not threads) and programs run, from `strace -f -z` output. */
function traced(log: string): { forks: number; programs: string[] } {
  const lines = log.split('\n');
  const forks = lines.filter(
    (l) => /^\d+ +(?:clone3?|v?fork)\(/.test(l) && !l.includes('CLONE_THREAD'),
  ).length;
  const programs = lines
    .map((l) => /^\d+ +execve\("(?:[^"]*\/)?([^"/]+)"/.exec(l)?.[1])
    .filter((p): p is string => p !== undefined)
    .slice(1); // the shell itself
  return { forks, programs };
}

/** The keyscript's build-time mode, as the hook runs it: the copy of `source`'s token into `out`. */
async function makeCopy(shell: string, source: string, out: string, cryptsetup?: string) {
  const argv: [string, string[]] =
    shell === 'busybox' ? ['busybox', ['sh', keyscript, 'none']] : ['dash', [keyscript, 'none']];
  return execa(argv[0], argv[1], {
    env: {
      PATH: [shell === 'busybox' ? bb : null, '/usr/sbin', '/usr/bin', '/sbin', '/bin']
        .filter((p) => p !== null)
        .join(':'),
      CRYPTTAB_NAME: 'cryptroot',
      CRYPTTAB_SOURCE: source,
      CRYPTTAB_TRIED: '0',
      ZKLUKS_MAKE_COPY: out,
      ...(cryptsetup ? { ZKLUKS_CRYPTSETUP: cryptsetup } : {}),
      ZKLUKS_CONF: '/nonexistent',
      ZKLUKS_ZKENV: '/nonexistent',
    },
    extendEnv: false,
    reject: false,
    timeout: 30_000,
  });
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

// However the real zkunlockifs fails (Zymbit documents none of it), the keyscript falls back to the
// prompt: the simulator's opaque modes, against a destroyed and an unplugged module.
describe.each(SIM_OPAQUE_MODES)('the keyscript with an opaque zkunlockifs (%s)', (mode) => {
  const expected: Record<SimOpaqueMode, { reason: string; detail: RegExp }> = {
    plain: { reason: 'unseal-failed', detail: /^zkunlockifs exited with status 1: zkunlockifs failed$/ },
    exit2: {
      reason: 'unseal-failed',
      detail: /^zkunlockifs exited with status 2: Error: operation returned -5$/,
    },
    silent: { reason: 'unseal-failed', detail: /^zkunlockifs exited with status 1$/ },
    signal: { reason: 'unseal-failed', detail: /^zkunlockifs was killed by signal 9$/ },
    hang: {
      reason: 'timeout',
      detail:
        /^the Zymkey did not answer within [12]\.\d s: zkunlockifs had printed no key at the deadline \(ZKLUKS_TIMEOUT=2\) and was stopped; /,
    },
  };
  it.each([
    ['self-destructed', () => destroyedState],
    ['unplugged', () => unpluggedState],
  ])("falls back to the prompt when the module is %s, the tool's end as evidence", async (_, state) => {
    // A hang is ended at the time budget, kept short here; every other end comes well within it.
    const hang = mode === 'hang';
    const run = await runKeyscript('busybox', {
      state: state(),
      opaque: mode,
      ...(hang ? { conf: 'ZKLUKS_TIMEOUT=2\n' } : {}),
    });
    expectFallback(run, expected[mode].reason, hang ? 2000 + 700 : 10_000);
    expect(run.record.detail).toMatch(expected[mode].detail);
  });
});

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
    // The bus is there already (its modules are loaded): no modprobe.
    expect(run.modprobe).toBe('');
  });

  it('loads the I2C modules with one modprobe when no bus is there yet, then unseals', async () => {
    const run = await runKeyscript(shell, { sysfs: 'appears' });
    expect(run.stdout.equals(key), run.stderr).toBe(true);
    expect(run.record).toMatchObject({ method: 'zymkey', reason: 'ok' });
    // One modprobe for all the modules: every process costs boot time on a Pi.
    expect(run.modprobe).toBe(`-q -a ${I2C_MODULES.join(' ')}\n`);
  });

  // zkunlockifs's failures are opaque (Zymbit documents no exit codes or messages): whatever it
  // prints, the reason is unseal-failed, and its last stderr line is only evidence.
  it('falls back to askpass with unseal-failed when the Zymkey self-destructed, its last line as evidence', async () => {
    const run = await runKeyscript(shell, { state: destroyedState });
    expectFallback(run, 'unseal-failed', 10_000);
    expect(run.record.detail).toMatch(/^zkunlockifs exited with status 1: zkunlockifs: self-destructed: /);
  });

  it('falls back to askpass with unseal-failed when the Zymkey does not answer', async () => {
    expectFallback(await runKeyscript(shell, { state: unpluggedState }), 'unseal-failed', 10_000);
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
    expect(run.modprobe).toBe(`-q -a ${I2C_MODULES.join(' ')}\n`);
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

  it('uses the scratch directory the image ships, and leaves it empty', async () => {
    const run = await runKeyscript(shell, { unlock: join(W, 'spy-zkunlockifs'), shipped: true });
    expect(run.stdout.equals(key), run.stderr).toBe(true);
    expect(readFileSync(join(W, `case-${caseNo}`, 'spy.log'), 'utf8')).toBe(
      `${join(W, `case-${caseNo}`, 'work')}\ndrwx------\n`,
    );
    expect(run.workFiles).toEqual([]);
  });

  it('removes the scratch files itself when the watchdog is gone before it could', async () => {
    const run = await runKeyscript(shell, { unlock: join(W, 'lone-zkunlockifs'), shipped: true });
    expect(run.stdout.equals(key), run.stderr).toBe(true);
    expect(run.record).toMatchObject({ method: 'zymkey', reason: 'ok' });
    expect(run.workFiles).toEqual([]);
  });

  it('gives up on a zkunlockifs that hangs once the time budget is spent', async () => {
    const run = await runKeyscript(shell, { unlock: join(W, 'hang'), conf: 'ZKLUKS_TIMEOUT=2\n' });
    // The budget is kept to within the 0.1 s poll and the 0.1 s between an ignored TERM and KILL
    // (plus margin for a shared machine): no whole-second rounding.
    expectFallback(run, 'timeout', 2000 + 700);
    expect(Number(run.record.elapsed_ms)).toBeGreaterThanOrEqual(2000);
    // What happened (the Zymkey did not answer, after how long, the tool stopped) and what to do.
    expect(run.record.detail).toMatch(
      /^the Zymkey did not answer within [12]\.\d s: .*hang had printed no key at the deadline \(ZKLUKS_TIMEOUT=2\) and was stopped; type the passphrase or recovery key, and once booted run: zkluks doctor$/,
    );
    expect(run.stderr).toContain('Zymkey unlock failed: timeout: the Zymkey did not answer within');
  });

  // A slow module load eats the 2 s budget: 1.6 s of it (the unseal then needs more than the 0.4 s
  // left), or all of it (the token search too). Each still gets at least 1 s, and the unseal succeeds.
  it.each([
    ['the unseal', 'slow-modprobe', 'slow-zkunlockifs', 1600],
    ['the token search and the unseal', 'slower-modprobe', 'standin-zkunlockifs', 2200],
  ])('gives %s at least 1 s when loading the modules used up the budget', async (_, modprobe, unlock, ms) => {
    const run = await runKeyscript(shell, {
      modprobe: join(W, modprobe as string),
      unlock: join(W, unlock as string),
      sysfs: 'appears',
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

  it('reads only the top-level members of the lowest-numbered zkluks-zymkey token', async () => {
    for (const name of ['nested-decoys', 'lowest-id']) {
      const run = await runKeyscript(shell, { source: craftedPath(name) });
      expect(run.stdout.equals(key), `${name}: ${run.stderr}`).toBe(true);
      expect(run.record.detail).toBe(`unsealed with token ${name === 'lowest-id' ? 1 : 2}`);
    }
    // The real key nested, someone else's blob on top: the Zymkey refuses the top-level one.
    expectFallback(
      await runKeyscript(shell, { source: craftedPath('nested-real') }),
      'unseal-failed',
      10_000,
    );
    expectFallback(await runKeyscript(shell, { source: craftedPath('nested-type') }), 'no-token', 10_000);
    expectFallback(
      await runKeyscript(shell, { source: craftedPath('sealed-object') }),
      'corrupt-token',
      10_000,
    );
  });

  it('refuses a sealed key over 8192 characters without decoding it', async () => {
    const run = await runKeyscript(shell, { source: craftedPath('huge') });
    expectFallback(run, 'corrupt-token', 10_000);
    expect(run.record.detail).toContain('longer than 8192 characters');
  });

  it('bounds the header read too: a cryptsetup that takes 20 s gives way to the prompt at the deadline', async () => {
    const run = await runKeyscript(shell, {
      cryptsetup: join(W, 'slow-cryptsetup'),
      conf: 'ZKLUKS_TIMEOUT=2\n',
    });
    expectFallback(run, 'timeout', 2000 + 700);
    expect(Number(run.record.elapsed_ms)).toBeGreaterThanOrEqual(2000);
    expect(run.record.detail).toMatch(
      /^the LUKS2 header of .* could not be read within [12]\.\d s: cryptsetup luksDump gave no answer by the deadline \(ZKLUKS_TIMEOUT=2\) and was stopped$/,
    );
  });

  // However zkunlockifs fails, the keyscript does not guess why: unseal-failed, and the last line it
  // printed (printable characters only) as evidence.
  it.each([
    [
      'exits 1 with plain text',
      'echo "some words" >&2; echo "   " >&2; exit 1',
      /^.+ exited with status 1: some words$/,
    ],
    ['exits 7 silently', 'exit 7', /^.+ exited with status 7$/],
    ['is killed by a signal', 'echo dying >&2; kill -KILL $$', /^.+ was killed by signal 9: dying$/],
    [
      'prints terminal escapes',
      'printf "\\033[2Jgone\\r\\n" >&2; exit 2',
      /^.+ exited with status 2: \?\[2Jgone\?$/,
    ],
    ['exits 0 without a key', 'exit 0', /^.+ printed no key$/],
  ])('falls back with unseal-failed when zkunlockifs %s', async (_, body, detail) => {
    const tool = writeScript(join(W, `opaque-${shell}-${caseNo}`), body as string);
    const run = await runKeyscript(shell, { unlock: tool });
    expectFallback(run, 'unseal-failed', 10_000);
    expect(run.record.detail).toMatch(detail as RegExp);
  });

  // As at boot: the bus is up (no modprobe), the image ships the scratch directory (no mkdir), and /run
  // has no record directory yet (one mkdir).
  it('forks 5 processes on the success path and ends by exec-ing cat', async () => {
    const run = await runKeyscript(shell, {
      unlock: join(W, 'standin-zkunlockifs'),
      trace: true,
      shipped: true,
    });
    expect(run.stdout.equals(key), run.stderr).toBe(true);
    expect(run.workFiles).toEqual([]);
    // The watchdog's sleep and the header read start together: their order varies.
    expect(run.programs.sort()).toEqual([
      'cat',
      'cat',
      'cryptsetup',
      'mkdir',
      'rm',
      'sleep',
      'standin-zkunlockifs',
    ]);
    // Forked: cryptsetup, the watchdog (a subshell) and its sleep, the unseal (which execs cat) and
    // mkdir. The watchdog execs rm as it ends, and the last cat replaces the shell: no fork for either.
    expect(run.forks).toBe(5);
    console.log(`keyscript under ${shell}: ${run.forks} processes forked on the success path`);
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
    // Nothing but the one-line reason on stderr (every helper the fallback uses is defined by then).
    expect(run.stderr).toBe(
      'zkluks: cryptroot: Zymkey unlock failed: self-destructed: zkunlockifs: self-destructed: gone; asking for the passphrase\n',
    );
  });
});

// The hook's copy of the token (the keyscript's ZKLUKS_MAKE_COPY mode), used at boot only while the
// header still carries the checksum the copy was read under.
describe.each(['busybox', 'dash'])("the image's copy of the token under %s", (shell) => {
  let n = 0;
  const outDir = () => join(W, `copy-${shell}-${++n}`);

  it('is made from the lowest-numbered token, as a boot reads it, with the header checksum', async () => {
    const out = outDir();
    const made = await makeCopy(shell, image.path, out);
    expect(made.exitCode, made.stderr).toBe(0);
    expect(readFileSync(join(out, 'cryptroot.copy'), 'utf8')).toBe(
      `csum=${await readHeaderChecksum(image.path)}\ntoken=3\n`,
    );
    expect(readFileSync(join(out, 'cryptroot.sealed')).equals(Buffer.from(sealedB64, 'base64'))).toBe(true);
    const decoys = outDir();
    expect((await makeCopy(shell, craftedPath('nested-decoys'), decoys)).exitCode).toBe(0);
    expect(readFileSync(join(decoys, 'cryptroot.copy'), 'utf8')).toMatch(/\ntoken=2\n$/);
    expect(readFileSync(join(decoys, 'cryptroot.sealed')).equals(Buffer.from(sealedB64, 'base64'))).toBe(
      true,
    );
  });

  // The last case's cryptsetup changes the header's label just before it reads it.
  it.each([
    ['no token', () => noToken, /no zkluks-zymkey token in the LUKS2 header/, undefined],
    ['a sealed key that is not base64', () => corruptToken, /is not valid base64/, undefined],
    ['a sealed key over 8192 characters', () => craftedPath('huge'), /holds no usable sealed key/, undefined],
    [
      'a header written while it is read',
      () => image.path,
      /changed while it was read/,
      'relabel-cryptsetup',
    ],
  ])('is not made from a header with %s', async (_, source, message, cryptsetup) => {
    const volume = join(W, `copy-source-${shell}-${++n}.img`);
    cpSync(source(), volume);
    const out = outDir();
    const made = await makeCopy(shell, volume, out, cryptsetup && join(W, cryptsetup));
    expect(made.exitCode).not.toBe(0);
    expect(made.stderr).toMatch(message);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
    rmSync(volume);
  });

  it('unseals from the copy while the header is unchanged: no cryptsetup at all', async () => {
    const out = outDir();
    expect((await makeCopy(shell, image.path, out)).exitCode).toBe(0);
    const run = await runKeyscript(shell, { copy: out, cryptsetup: join(W, 'spy-cryptsetup') });
    expect(run.stdout.equals(key), run.stderr).toBe(true);
    expect(run.record).toMatchObject({
      method: 'zymkey',
      reason: 'ok',
      detail: "unsealed with token 3 (the image's copy of the header)",
    });
    expect(run.calls).toBe('');
    expect(run.workFiles).toEqual([]);
    // The copy stays in the image for the next try and boot.
    expect(readdirSync(out).sort()).toEqual(['cryptroot.copy', 'cryptroot.sealed']);
  });

  it('reads the header once it has changed since the copy was made (a rotate, a new key)', async () => {
    const volume = join(W, `rotated-${shell}.img`);
    cpSync(image.path, volume);
    const out = outDir();
    expect((await makeCopy(shell, volume, out)).exitCode).toBe(0);
    // A stale copy that would unseal to a key the header no longer holds: its sealed key is another
    // module's, so using it would end in unseal-failed.
    writeFileSync(join(out, 'cryptroot.sealed'), 'not this module');
    await execa('cryptsetup', ['config', '--label', 'rotated', volume]);
    const run = await runKeyscript(shell, {
      source: volume,
      copy: out,
      cryptsetup: join(W, 'spy-cryptsetup'),
    });
    expect(run.stdout.equals(key), run.stderr).toBe(true);
    expect(run.record.detail).toBe('unsealed with token 3');
    expect(run.calls).toMatch(/^luksDump --dump-json-metadata /);
    rmSync(volume);
  });

  it("never takes another volume's copy: its header checksum differs", async () => {
    const out = outDir();
    expect((await makeCopy(shell, image.path, out)).exitCode).toBe(0);
    const run = await runKeyscript(shell, { source: noToken, copy: out });
    expectFallback(run, 'no-token', 10_000);
  });

  it.each([
    ['without its sealed key', (out: string) => rmSync(join(out, 'cryptroot.sealed'))],
    [
      'with a cut checksum',
      (out: string) =>
        writeFileSync(
          join(out, 'cryptroot.copy'),
          readFileSync(join(out, 'cryptroot.copy'), 'utf8').replace(/^(csum=.*).\n/m, '$1\n'),
        ),
    ],
    [
      'with a token id that is no number',
      (out: string) =>
        writeFileSync(
          join(out, 'cryptroot.copy'),
          readFileSync(join(out, 'cryptroot.copy'), 'utf8').replace(/token=3/, 'token=3;x'),
        ),
    ],
  ])('reads the header instead of a copy %s', async (_, damage) => {
    const out = outDir();
    expect((await makeCopy(shell, image.path, out)).exitCode).toBe(0);
    damage(out);
    const run = await runKeyscript(shell, { copy: out, cryptsetup: join(W, 'spy-cryptsetup') });
    expect(run.stdout.equals(key), run.stderr).toBe(true);
    expect(run.record.detail).toBe('unsealed with token 3');
    expect(run.calls).toMatch(/^luksDump /);
  });

  it('bounds the checksum read too: a source that never answers gives way to the prompt', async () => {
    const out = outDir();
    expect((await makeCopy(shell, image.path, out)).exitCode).toBe(0);
    const fifo = join(W, `fifo-${shell}`);
    await execa('mkfifo', [fifo]);
    const run = await runKeyscript(shell, { source: fifo, copy: out, conf: 'ZKLUKS_TIMEOUT=2\n' });
    expectFallback(run, 'timeout', 2000 + 700);
    expect(run.record.detail).toMatch(
      /^the LUKS2 header of .* could not be read within [12]\.\d s: od gave no answer by the deadline \(ZKLUKS_TIMEOUT=2\) and was stopped$/,
    );
  });

  it('forks 5 processes on the success path: od in the place of cryptsetup', async () => {
    const out = outDir();
    expect((await makeCopy(shell, image.path, out)).exitCode).toBe(0);
    const run = await runKeyscript(shell, {
      unlock: join(W, 'standin-zkunlockifs'),
      trace: true,
      shipped: true,
      copy: out,
    });
    expect(run.stdout.equals(key), run.stderr).toBe(true);
    expect(run.programs.sort()).toEqual(['cat', 'cat', 'mkdir', 'od', 'rm', 'sleep', 'standin-zkunlockifs']);
    expect(run.forks).toBe(5);
    console.log(`keyscript under ${shell} with the image's token copy: ${run.forks} processes forked`);
  });
});
