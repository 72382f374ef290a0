// The race harness. Two commands that change a volume run at once on one volume, each through its
// own name of it (the path, a hard link, a symlink), in two kinds of trial:
//   - held: the first run is stopped inside the lock at its Nth header write (the shim's hold-write
//     mode), and only then is the second started, so the two certainly overlap;
//   - same instant: both start together and the shim's `flock` lets neither ask for the lock before
//     the other has come to ask too; whichever wins is held at its Nth header write until the other
//     has ended.
// In every trial exactly one run changes the volume (exit 0) and the other is refused with exit 3,
// saying another zkluks operation is changing it. Then the volume is checked: no record of a change
// is left, no token dangles, every keyslot is one of ours or the passphrase, the passphrase opens,
// the Zymkey opens (unless the winner removed it), every recovery keyslot opens with a key the admin
// was given, and what the winner did holds (a rotated key, a delivered recovery key that opens, a
// removed slot gone). Prints "races: N tried, N held".
import { copyFile, link, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openZymkey } from '../../src/device/open.ts';
import { simInit } from '../../src/device/sim-control.ts';
import { createRunner } from '../../src/exec.ts';
import { readHeader, type HeaderFacts } from '../../src/keyslot/header.ts';
import { verifyZymkey, type KeyslotDeps } from '../../src/keyslot/operations.ts';
import { findPending } from '../../src/keyslot/pending.ts';
import { viewVolume } from '../../src/keyslot/volume-view.ts';
import { bundle } from '../helpers/cli.ts';
import { opens, type TestImage } from '../helpers/luks.ts';
import { makeShim, type Shim } from './shim.ts';
import { makeTemplate, TEMPLATES, type Template, type TemplateVolume } from './templates.ts';

type Name = 'path' | 'hard link' | 'symlink';

interface Command {
  name: string;
  args: (volume: string, unlockKeyFile: string) => string[];
  /** What a run that changed the volume leaves: problems with `after`, none when it holds. */
  holds: (w: Won) => Promise<string[]>;
}

/** What the checks of a winner see. */
interface Won {
  path: string;
  before: HeaderFacts;
  after: HeaderFacts;
  oldRecovery: string | null;
  delivered: string | null;
}

const real = createRunner();
const RECOVERY_KEY = /^ {4}([cbdefghijklnrtuv]{8}(?:-[cbdefghijklnrtuv]{8}){7})$/m;
const LOCKED = /another zkluks operation \(pid (\w+)\) is changing it/;
const tally = { tried: 0, held: 0 };

let work: string;
let simState: string;
/** One shim per lane: trials run two at a time, each lane on its own volumes. */
const LANES = 2;
const shims: Shim[] = [];
let deps: KeyslotDeps;
let keyFile: string;
const templates = new Map<Template, TemplateVolume>();

const sealed = (h: HeaderFacts) => viewVolume(h).zymkey.map((z) => z.token.sealed);

async function zymkeyOpens(w: Won): Promise<string[]> {
  const v = await verifyZymkey(deps, w.path);
  return v.ok ? [] : [`the Zymkey does not open it: ${v.detail}`];
}

async function deliveredOpensRecovery(w: Won): Promise<string[]> {
  const rec = viewVolume(w.after).recovery;
  if (w.delivered === null) return ['no recovery key was delivered'];
  if (rec.length !== 1) return [`${rec.length} recovery tokens`];
  const slot = (rec[0] as { slot: number }).slot;
  return (await opens(w.path, w.delivered, slot))
    ? []
    : ['the delivered recovery key does not open its keyslot'];
}

// That the Zymkey opens the volume is checked for every winner but `remove`.
const rekeyed = async (w: Won) => [
  ...(JSON.stringify(sealed(w.after)) === JSON.stringify(sealed(w.before))
    ? ['the sealed key did not change']
    : []),
];

const COMMANDS: Record<string, Command> = {
  enroll: {
    name: 'enroll',
    args: (v, k) => ['enroll', v, '--unlock-key-file', k],
    holds: deliveredOpensRecovery,
  },
  'enroll --force': {
    name: 'enroll --force',
    args: (v, k) => ['enroll', '--force', v, '--unlock-key-file', k],
    holds: rekeyed,
  },
  rotate: { name: 'rotate', args: (v) => ['rotate', v], holds: rekeyed },
  remove: {
    name: 'remove',
    args: (v) => ['remove', v],
    holds: async (w) => {
      const view = viewVolume(w.after);
      return view.zymkey.length === 0 && !view.slots.some((s) => s.kind === 'zymkey')
        ? []
        : ['the Zymkey keyslot or token is still there'];
    },
  },
  'recovery add': {
    name: 'recovery add',
    args: (v) => ['recovery', 'add', v],
    holds: deliveredOpensRecovery,
  },
  'recovery add --force': {
    name: 'recovery add --force',
    args: (v) => ['recovery', 'add', '--force', v],
    holds: async (w) => [
      ...(await deliveredOpensRecovery(w)),
      ...(w.oldRecovery !== null && (await opens(w.path, w.oldRecovery))
        ? ['the old recovery key still opens']
        : []),
    ],
  },
  'recovery remove': {
    name: 'recovery remove',
    args: (v, k) => ['recovery', 'remove', v, '--unlock-key-file', k],
    holds: async (w) => [
      ...(viewVolume(w.after).recovery.length > 0 ? ['a recovery token is left'] : []),
      ...(w.oldRecovery !== null && (await opens(w.path, w.oldRecovery))
        ? ['the old recovery key still opens']
        : []),
    ],
  },
};

/**
 * The pairs raced, each on a fresh copy of its template, in both kinds of trial (ZKLUKS_RACE_ROUNDS
 * repeats the list, for a longer run).
 */
const PAIRS: Array<[Template, string, string]> = [
  ['enrolled', 'rotate', 'rotate'],
  ['enrolled', 'rotate', 'remove'],
  ['enrolled', 'enroll --force', 'rotate'],
  ['enrolled', 'recovery add --force', 'recovery remove'],
  ['enrolled', 'remove', 'recovery remove'],
  ['enrolled', 'recovery add --force', 'recovery add --force'],
  ['enrolled', 'remove', 'enroll --force'],
  ['fresh', 'enroll', 'enroll'],
  ['enrolled-no-recovery', 'recovery add', 'recovery add'],
  ['enrolled-no-recovery', 'recovery add', 'rotate'],
];
const NAMES: Array<[Name, Name]> = [
  ['path', 'hard link'],
  ['hard link', 'symlink'],
  ['symlink', 'path'],
  ['path', 'path'],
  ['symlink', 'hard link'],
];

const env = () => ({ NO_COLOR: '1', ZKLUKS_BACKEND: 'sim', ZKLUKS_SIM_STATE: simState });

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'zkluks-race-'));
  simState = join(work, 'sim');
  simInit(simState);
  for (let i = 0; i < LANES; i++) shims.push(await makeShim());
  deps = {
    runner: real,
    zymkey: () => openZymkey({ backend: 'sim', simState, runner: real }),
    lockDir: join(work, 'lock'),
  };
  for (const t of TEMPLATES) {
    templates.set(t, await makeTemplate(deps, t));
  }
  keyFile = join(work, 'unlock.key');
  await writeFile(keyFile, (templates.get('fresh') as { image: TestImage }).image.passphrase, {
    mode: 0o600,
  });
}, 300_000);

afterAll(async () => {
  console.log(`races: ${tally.tried} tried, ${tally.held} held`);
  for (const t of templates.values()) await t.image.cleanup();
  for (const shim of shims) await shim.cleanup();
  await rm(work, { recursive: true, force: true });
});

let copies = 0;
/** A fresh copy of a template in its own directory, under each of its three names. */
async function volumeOf(t: Template): Promise<Record<Name, string>> {
  const id = copies++;
  const dir = join(work, `v${id}`);
  await mkdir(dir);
  const path = join(dir, 'disk.img');
  await copyFile((templates.get(t) as { image: TestImage }).image.path, path);
  const hard = join(work, `hard-${id}.img`);
  await link(path, hard);
  const soft = join(dir, 'alias.img');
  await symlink(path, soft);
  return { path, 'hard link': hard, symlink: soft };
}

function start(c: Command, volume: string, extra: Record<string, string>): ResultPromise {
  return execa(process.execPath, [bundle, ...c.args(volume, keyFile)], {
    env: { ...env(), ...extra },
    reject: false,
  }) as unknown as ResultPromise;
}

async function waitUntil(condition: () => Promise<boolean>, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await condition()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

type Outcome = { exitCode: number | undefined; stderr: string; pid: number };
const outcome = async (run: ResultPromise): Promise<Outcome> => {
  const r = await run;
  return { exitCode: r.exitCode, stderr: String(r.stderr), pid: run.pid as number };
};

/** One trial; the reasons it did not hold (empty: held). */
async function trial(
  shim: Shim,
  kind: 'held' | 'same instant',
  template: Template,
  names3: Record<Name, string>,
  pair: [Command, Command],
  names: [Name, Name],
  at: number,
): Promise<string[]> {
  const problems: string[] = [];
  const path = names3.path;
  const before = await readHeader(real, path);
  await shim.reset();
  let results: Outcome[];
  if (kind === 'held') {
    const first = start(pair[0], names3[names[0]], shim.env('hold-write', at));
    const firstPid = first.pid as number;
    const inside = await waitUntil(async () => (await shim.held()).includes(firstPid), 60_000);
    if (!inside) problems.push(`${pair[0].name} never reached header write ${at}`);
    const second = await outcome(start(pair[1], names3[names[1]], shim.env('count', 0)));
    await shim.release();
    results = [await outcome(first), second];
    const named = LOCKED.exec(second.stderr)?.[1];
    if (second.exitCode === 3 && named !== String(firstPid))
      problems.push(`the refusal names pid ${named}, not the holder ${firstPid}`);
  } else {
    const runs = pair.map((c, i) => start(c, names3[names[i] as Name], shim.env('hold-write', at, 2)));
    const settled = runs.map((r) => outcome(r));
    // Release the winner once the loser has ended (or after a minute, when both got in).
    await Promise.race([...settled, new Promise((r) => setTimeout(r, 60_000))]);
    await shim.release();
    results = await Promise.all(settled);
    const arrived = await shim.arrived();
    if (!runs.every((r) => arrived.includes(r.pid as number)))
      problems.push('the two runs did not both come to the lock together');
  }
  const winners = results.filter((r) => r.exitCode === 0);
  const losers = results.filter((r) => r.exitCode === 3 && LOCKED.test(r.stderr));
  if (winners.length !== 1 || losers.length !== 1) {
    problems.push(
      `exit codes ${results.map((r, i) => `${pair[i]?.name}: ${r.exitCode}${r.exitCode !== 0 ? ` (${r.stderr.trim().split('\n')[0]})` : ''}`).join(', ')}`,
    );
    return problems;
  }
  const winner = results.indexOf(winners[0] as Outcome);
  const w = pair[winner] as Command;
  const after = await readHeader(real, path);
  const view = viewVolume(after);
  const oldRecovery = (templates.get(template) as { recoveryKey: string | null }).recoveryKey;
  const delivered = RECOVERY_KEY.exec((winners[0] as Outcome).stderr)?.[1] ?? null;
  if (findPending(after).length > 0) problems.push('a record of the change is left');
  if (after.tokens.some((t) => t.keyslots.length === 0)) problems.push('a token dangles');
  if (view.problems.length > 0)
    problems.push(`broken tokens: ${view.problems.map((p) => p.error.problem).join('; ')}`);
  const stray = view.slots.filter((s) => s.id !== 0 && s.kind !== 'zymkey' && s.kind !== 'recovery');
  if (stray.length > 0)
    problems.push(`keyslots left that no token explains: ${stray.map((s) => s.id).join(',')}`);
  const passphrase = (templates.get(template) as { image: TestImage }).image.passphrase;
  if (!(await opens(path, passphrase, 0))) problems.push('the passphrase no longer opens keyslot 0');
  if (w.name !== 'remove') {
    problems.push(...(await zymkeyOpens({ path, before, after, oldRecovery, delivered })));
  }
  for (const rec of view.recovery) {
    let opened = false;
    for (const k of [oldRecovery, delivered])
      if (k !== null && !opened) opened = await opens(path, k, rec.slot);
    if (!opened) problems.push(`recovery keyslot ${rec.slot} opens with no key the admin was given`);
  }
  problems.push(...(await w.holds({ path, before, after, oldRecovery, delivered })));
  if (problems.length > 0) problems.unshift(`${w.name} won`);
  return problems;
}

interface Spec {
  kind: 'held' | 'same instant';
  template: Template;
  a: string;
  b: string;
  names: [Name, Name];
  /** The header write the winner is held at. */
  at: number;
}

function specs(): Spec[] {
  const all: Spec[] = [];
  const rounds = Number(process.env.ZKLUKS_RACE_ROUNDS ?? 1);
  for (let round = 0; round < rounds; round++)
    for (const kind of ['held', 'same instant'] as const)
      for (const [template, a, b] of PAIRS) {
        const n = all.length;
        all.push({ kind, template, a, b, names: NAMES[n % NAMES.length] as [Name, Name], at: (n % 3) + 1 });
      }
  return all;
}

describe('race harness', () => {
  it('of two changes at once on one volume, through any of its names, one runs and the other is refused with exit 3', async () => {
    const failures: string[] = [];
    const queue = specs();
    const lane = async (shim: Shim) => {
      for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
        const pair: [Command, Command] = [COMMANDS[s.a] as Command, COMMANDS[s.b] as Command];
        tally.tried++;
        const volume = await volumeOf(s.template);
        const problems = await trial(shim, s.kind, s.template, volume, pair, s.names, s.at);
        await rm(dirname(volume.path), { recursive: true, force: true });
        await rm(volume['hard link'], { force: true });
        if (problems.length === 0) tally.held++;
        else
          failures.push(
            `${s.kind}: ${s.a} (${s.names[0]}) vs ${s.b} (${s.names[1]}), held at write ${s.at}: ${problems.join('; ')}`,
          );
      }
    };
    await Promise.all(shims.map(lane));
    expect(failures).toEqual([]);
  }, 3_600_000);
});
