// The crash harness. For each command that changes a volume (the CASES table: add a row to cover
// another command), a clean run through the counting cryptsetup shim (shim.ts) counts its
// cryptsetup calls; then, on a fresh copy of the same volume each time, zkluks is killed with SIGKILL
// before the first call and after every call, cryptsetup itself is killed while each header write
// runs, and zkluks gets SIGHUP after each header write. After each trial:
//   - an interrupted change is described by `zkluks list --json` (slots pending, `interrupted`) and,
//     once per command, by `zkluks doctor` (luks.interrupted);
//   - the next run (`zkluks repair`) rolls it back or finishes it, leaving no record;
//   - every key that opened the volume before still opens it, or the key that replaced it was
//     delivered (printed) and opens it; the keyslots are those before or those of a completed run
//     (no leaked slot); no token dangles; no key file of the killed process is left in the tmpfs.
// The rows for `initramfs install` and `initramfs remove` (initramfs-crash.ts) run on staged trees and
// count in the same tally. Prints "crash points: N tried, N survived" over every row, with the
// figures of the header rows and the initramfs rows after it.
import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findTmpfs } from '../../src/device/tmpfs-dir.ts';
import { simInit } from '../../src/device/sim-control.ts';
import { openZymkey } from '../../src/device/open.ts';
import { createRunner } from '../../src/exec.ts';
import { readHeader, type HeaderFacts } from '../../src/keyslot/header.ts';
import { verifyZymkey, type KeyslotDeps } from '../../src/keyslot/operations.ts';
import { findPending } from '../../src/keyslot/pending.ts';
import { viewVolume } from '../../src/keyslot/volume-view.ts';
import { bundle } from '../helpers/cli.ts';
import { opens, type TestImage } from '../helpers/luks.ts';
import {
  INITRAMFS_CASES,
  initramfsCrashPoints,
  makeInitramfsHarness,
  type InitramfsHarness,
} from './initramfs-crash.ts';
import { makeShim, WRITING, type Shim, type ShimMode } from './shim.ts';
import { makeTemplate, TEMPLATES, type Template, type TemplateVolume } from './templates.ts';

interface Case {
  name: string;
  template: Template;
  args: (volume: string, unlockKeyFile: string) => string[];
  /** The way in a completed run takes away on purpose. */
  removes?: 'zymkey' | 'recovery';
}

export const CASES: Case[] = [
  { name: 'enroll', template: 'fresh', args: (v, k) => ['enroll', v, '--unlock-key-file', k] },
  {
    name: 'enroll --force',
    template: 'enrolled',
    args: (v, k) => ['enroll', '--force', v, '--unlock-key-file', k],
  },
  { name: 'rotate', template: 'enrolled', args: (v) => ['rotate', v] },
  { name: 'remove', template: 'enrolled', args: (v) => ['remove', v], removes: 'zymkey' },
  { name: 'recovery add', template: 'enrolled-no-recovery', args: (v) => ['recovery', 'add', v] },
  { name: 'recovery add --force', template: 'enrolled', args: (v) => ['recovery', 'add', '--force', v] },
  {
    name: 'recovery remove',
    template: 'enrolled',
    args: (v, k) => ['recovery', 'remove', v, '--unlock-key-file', k],
    removes: 'recovery',
  },
];

const real = createRunner();
const RECOVERY_KEY = /^ {4}([cbdefghijklnrtuv]{8}(?:-[cbdefghijklnrtuv]{8}){7})$/m;
const tally = { tried: 0, survived: 0 };
const byArea = { header: { tried: 0, survived: 0 }, initramfs: { tried: 0, survived: 0 } };
const failures: string[] = [];

let work: string;
let simState: string;
let shim: Shim;
let deps: KeyslotDeps;
const templates = new Map<Template, TemplateVolume>();
let keyFile: string;

const env = () => ({ NO_COLOR: '1', ZKLUKS_BACKEND: 'sim', ZKLUKS_SIM_STATE: simState });
const cli = (args: string[], extra: Record<string, string> = {}, nodeArgs: string[] = []) =>
  execa(process.execPath, [...nodeArgs, bundle, ...args], { env: { ...env(), ...extra }, reject: false });
const only = process.env.ZKLUKS_CRASH_CASES?.split(',');
const selected = <T extends { name: string }>(cases: T[]) =>
  cases.filter((c) => !only || only.includes(c.name));
let initramfs: InitramfsHarness | undefined;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'zkluks-crash-'));
  simState = join(work, 'sim');
  simInit(simState);
  shim = await makeShim();
  deps = {
    runner: real,
    zymkey: () => openZymkey({ backend: 'sim', simState, runner: real }),
    lockDir: join(work, 'lock'),
  };
  const wanted = new Set<Template>(selected(CASES).map((c) => c.template));
  if (selected(INITRAMFS_CASES).length > 0) wanted.add('enrolled');
  for (const t of TEMPLATES) {
    if (!wanted.has(t) && t !== 'fresh') continue;
    templates.set(t, await makeTemplate(deps, t));
  }
  keyFile = join(work, 'unlock.key');
  await writeFile(keyFile, (templates.get('fresh') as { image: TestImage }).image.passphrase, {
    mode: 0o600,
  });
  if (selected(INITRAMFS_CASES).length > 0) {
    const volume = (templates.get('enrolled') as { image: TestImage }).image.path;
    initramfs = await makeInitramfsHarness({
      work,
      volume,
      uuid: (await readHeader(real, volume)).uuid,
      cli,
    });
  }
}, 300_000);

afterAll(async () => {
  const { header: k, initramfs: i } = byArea;
  console.log(
    `crash points: ${tally.tried} tried, ${tally.survived} survived (keyslot changes: ${k.tried} tried, ${k.survived} survived; initramfs install/remove: ${i.tried} tried, ${i.survived} survived)${only ? `; only the cases ZKLUKS_CRASH_CASES names: ${only.join(', ')}` : ''}`,
  );
  await initramfs?.cleanup();
  for (const t of templates.values()) await t.image.cleanup();
  await shim?.cleanup();
  await rm(work, { recursive: true, force: true });
});

let copies = 0;
async function copyOf(t: Template): Promise<string> {
  const path = join(work, `v${copies++}.img`);
  await copyFile((templates.get(t) as { image: TestImage }).image.path, path);
  return path;
}

const ids = (h: HeaderFacts) => h.keyslots.map((k) => k.id).join(',');
const same = (a: HeaderFacts, b: HeaderFacts) =>
  JSON.stringify({ k: a.keyslots, t: a.tokens }) === JSON.stringify({ k: b.keyslots, t: b.tokens });

/** Key files a process left in the tmpfs (its private directories carry its pid). */
async function keyFilesOf(pid: number): Promise<string[]> {
  const tmpfs = findTmpfs();
  const left: string[] = [];
  for (const d of await readdir(tmpfs)) {
    if (!d.startsWith(`zkluks-${pid}-`)) continue;
    for (const f of await readdir(join(tmpfs, d)).catch(() => []))
      if (f.endsWith('.key')) left.push(`${d}/${f}`);
  }
  return left;
}

/** One trial; the reasons it did not survive (empty: survived). */
async function trial(c: Case, mode: ShimMode, at: number, done: HeaderFacts, askDoctor: { done: boolean }) {
  const problems: string[] = [];
  const template = templates.get(c.template) as { image: TestImage; recoveryKey: string | null };
  const path = await copyOf(c.template);
  const before = await readHeader(real, path);
  await shim.reset();
  const run = cli(c.args(path, keyFile), shim.env(mode, at));
  const pid = run.pid as number;
  const r = await run;
  const delivered = RECOVERY_KEY.exec(String(r.stderr))?.[1] ?? null;
  const crashed = await readHeader(real, path);
  const pending = findPending(crashed);
  if (pending.length > 0) {
    const list = JSON.parse(String((await cli(['list', path, '--json'])).stdout)) as {
      interrupted: unknown[];
      slots: Array<{ kind: string }>;
    };
    if (list.interrupted.length !== pending.length)
      problems.push('list does not report the interrupted change');
    if (!askDoctor.done) {
      askDoctor.done = true;
      const doctor = await cli(['doctor', path, '--json']);
      if (!String(doctor.stdout).includes('luks.interrupted'))
        problems.push('doctor does not report luks.interrupted');
    }
  }
  if (pending.length > 0 || !same(before, crashed) || mode !== 'kill-before') {
    // The next run settles what the interruption left (and clears the killed process's leftovers).
    const repair = await cli(['repair', path]);
    if (repair.exitCode !== 0) problems.push(`repair failed: ${String(repair.stderr).trim()}`);
  }
  const after = await readHeader(real, path);
  const view = viewVolume(after);
  if (findPending(after).length > 0) problems.push('a record of the change is left after the next run');
  if (after.tokens.some((t) => t.keyslots.length === 0)) problems.push('a token dangles');
  if (view.problems.length > 0)
    problems.push(`broken tokens: ${view.problems.map((p) => p.error.problem).join('; ')}`);
  const completed = ids(after) === ids(done) && ids(after) !== ids(before);
  if (ids(after) !== ids(before) && ids(after) !== ids(done)) {
    problems.push(`keyslots are [${ids(after)}], neither before [${ids(before)}] nor done [${ids(done)}]`);
  }
  if (!(await opens(path, template.image.passphrase, 0)))
    problems.push('the passphrase no longer opens slot 0');
  const v = await verifyZymkey(deps, path);
  const zymkeyMayGo = c.template === 'fresh' || (c.removes === 'zymkey' && completed);
  if (!v.ok && !(zymkeyMayGo && v.reason === 'no-token'))
    problems.push(`the Zymkey no longer opens it: ${v.detail}`);
  for (const rec of view.recovery) {
    const keys = [template.recoveryKey, delivered].filter((k): k is string => k !== null);
    let opened = false;
    for (const k of keys) if (!opened && (await opens(path, k, rec.slot))) opened = true;
    if (!opened) problems.push(`recovery keyslot ${rec.slot} opens with no key the admin was given`);
  }
  if (template.recoveryKey && !(await opens(path, template.recoveryKey))) {
    const replaced = delivered !== null && (await opens(path, delivered));
    if (!replaced && !(c.removes === 'recovery' && completed)) {
      problems.push('the old recovery key no longer opens and no replacement was delivered');
    }
  }
  const left = await keyFilesOf(pid);
  if (left.length > 0) problems.push(`key files left: ${left.join(', ')}`);
  await rm(path, { force: true });
  return problems;
}

describe.each(selected(CASES))('crash harness: $name', (c) => {
  it('every kill, cryptsetup kill and SIGHUP leaves every way in, and the next run settles it', async () => {
    const path = await copyOf(c.template);
    await shim.reset();
    const clean = await cli(c.args(path, keyFile), shim.env('count', 0));
    expect(clean.exitCode, String(clean.stderr)).toBe(0);
    const verbs = await shim.calls();
    const done = await readHeader(real, path);
    const points: Array<[ShimMode, number]> = [['kill-before', 1]];
    verbs.forEach((verb, i) => {
      points.push(['kill-after', i + 1]);
      if (WRITING.has(verb)) points.push(['kill-cryptsetup', i + 1], ['hup-after', i + 1]);
    });
    const askDoctor = { done: false };
    const mine: string[] = [];
    for (const [mode, at] of points) {
      tally.tried++;
      byArea.header.tried++;
      const problems = await trial(c, mode, at, done, askDoctor);
      if (problems.length === 0) {
        tally.survived++;
        byArea.header.survived++;
      } else mine.push(`${mode} at call ${at} (${verbs[at - 1]}): ${problems.join('; ')}`);
    }
    failures.push(...mine);
    expect(mine).toEqual([]);
  }, 1_800_000);
});

describe.each(selected(INITRAMFS_CASES))('crash harness: $name', (c) => {
  it('every kill, SIGHUP and killed rebuild leaves crypttab and the boot files old or new and the boot working, and the next run finishes', async () => {
    const h = initramfs as InitramfsHarness;
    const { tried, failures: mine } = await initramfsCrashPoints(h, c, { cli, keyFilesOf });
    tally.tried += tried;
    tally.survived += tried - mine.length;
    byArea.initramfs.tried += tried;
    byArea.initramfs.survived += tried - mine.length;
    failures.push(...mine);
    expect(tried).toBeGreaterThan(10);
    expect(mine).toEqual([]);
  }, 1_800_000);
});
