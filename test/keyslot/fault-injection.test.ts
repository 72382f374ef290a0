// Every cryptsetup step of enroll, rotate and remove fails in turn: the volume must be left exactly
// as before (or, had the step been the last, fully done) — never in between.
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { findTmpfs } from '../../src/device/tmpfs-dir.ts';
import { createRunner, failingRunner, type Runner } from '../../src/exec.ts';
import { readHeader, type HeaderFacts } from '../../src/keyslot/header.ts';
import { enroll, remove, rotate, verifyZymkey, type KeyslotDeps } from '../../src/keyslot/operations.ts';
import { viewVolume } from '../../src/keyslot/volume-view.ts';
import { luksImage, opens, type TestImage } from '../helpers/luks.ts';
import { keyslotDeps } from './sim-fixture.ts';

const real = createRunner();
const STEPS = new Set([
  'luksAddKey',
  'config',
  'token',
  'luksKillSlot',
  'luksHeaderBackup',
  'open',
  'luksDump',
]);
/** cryptsetup's action: its first argument that is not an option (`-v open …` is an `open`). */
const verbOf = (args: readonly string[]) => args.find((a) => !a.startsWith('-')) ?? '';
const isStep = (file: string, args: readonly string[]) => file === 'cryptsetup' && STEPS.has(verbOf(args));

/** A runner that counts step calls and fails the `failAt`-th (0-based; -1 never). */
function countingRunner(failAt: number): { runner: Runner; count: () => number; opens: () => number } {
  let n = 0;
  let opens = 0;
  const runner = failingRunner(real, (file, args) => {
    if (!isStep(file, args)) return false;
    if (verbOf(args) === 'open') opens++;
    return n++ === failAt;
  });
  return { runner, count: () => n, opens: () => opens };
}

const shape = (h: HeaderFacts) => ({ keyslots: h.keyslots, tokens: h.tokens });

type Op = 'enroll' | 'rotate' | 'remove';
const enrollRequest = (img: TestImage) => ({
  force: false,
  recoveryKey: true,
  escrow: null,
  dryRun: false,
  unlock: Buffer.from(img.passphrase),
});

async function prepare(op: Op, img: TestImage, deps: KeyslotDeps): Promise<void> {
  if (op !== 'enroll') await enroll(deps, img.path, enrollRequest(img));
}

async function perform(op: Op, img: TestImage, deps: KeyslotDeps): Promise<unknown> {
  if (op === 'enroll') return enroll(deps, img.path, enrollRequest(img));
  if (op === 'rotate') return rotate(deps, img.path, { dryRun: false });
  return remove(deps, img.path, { dryRun: false, lockMeOut: false, yes: false });
}

describe.each(['enroll', 'rotate', 'remove'] as const)(
  '%s with each cryptsetup step failing in turn',
  (op) => {
    it('leaves the volume as before or fully done, never in between', async () => {
      // A clean run counts the steps and gives the "fully done" shape.
      const cleanImg = await luksImage();
      const cleanDeps = await keyslotDeps();
      await prepare(op, cleanImg, cleanDeps);
      const counting = countingRunner(-1);
      await perform(op, cleanImg, { ...cleanDeps, runner: counting.runner });
      const total = counting.count();
      const done = shape(await readHeader(real, cleanImg.path));
      expect(total).toBeGreaterThanOrEqual(3);
      // The key tests are steps too: the count includes every `cryptsetup -v open --test-passphrase`.
      // remove tests no key: the recovery token, made for its slot (salt), proves the way in left.
      if (op === 'remove') expect(counting.opens(), 'remove tests no key').toBe(0);
      else expect(counting.opens(), 'open --test-passphrase calls counted').toBeGreaterThan(0);

      for (let failAt = 0; failAt < total; failAt++) {
        const img = await luksImage();
        const deps = await keyslotDeps();
        await prepare(op, img, deps);
        const before = await readHeader(real, img.path);
        const failing = countingRunner(failAt);
        const outcome = await perform(op, img, { ...deps, runner: failing.runner }).then(
          () => 'done',
          (error: Error) => error.message,
        );
        const after = await readHeader(real, img.path);
        if (outcome === 'done') {
          // Only possible when the failing call was not needed (e.g. a read-only test): then fully done.
          expect(after.keyslots.map((k) => k.id)).toEqual(done.keyslots.map((k) => k.id));
        } else {
          expect(outcome, `step ${failAt}`).toMatch(/^Failed to /);
          expect(shape(after), `step ${failAt}: ${outcome}`).toEqual(shape(before));
        }
        expect(await opens(img.path, img.passphrase), `step ${failAt}`).toBe(true);
        expect(viewVolume(after).problems, `step ${failAt}`).toEqual([]);
        if (op !== 'enroll' || outcome === 'done') {
          // Enrolled still (or newly), unless the Zymkey was removed: then it is not enrolled at all.
          const v = await verifyZymkey(deps, img.path);
          const removed = op === 'remove' && outcome === 'done';
          expect(v.ok, `step ${failAt}: ${v.detail}`).toBe(!removed);
          if (removed) expect(v.reason, `step ${failAt}`).toBe('no-token');
        }
      }
    }, 240_000);
  },
);

describe('the private tmpfs directory of a failed change', () => {
  async function privateTmpfs(): Promise<string> {
    const dir = await mkdtemp(join(findTmpfs(), 'zkluks-test-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }
  const failsOn = (...verbs: string[]) =>
    failingRunner(real, (file, args) => file === 'cryptsetup' && verbs.includes(args[0] ?? ''));

  it('is removed with every key file when the header is restored', async () => {
    const img = await luksImage();
    const tmpfs = await privateTmpfs();
    const deps = { ...(await keyslotDeps()), runner: failsOn('luksKillSlot', 'token'), tmpfs: [tmpfs] };
    await expect(enroll(deps, img.path, enrollRequest(img))).rejects.toThrow(
      /^Failed to enroll .*the header was restored from its backup and is as before$/,
    );
    expect(await readdir(tmpfs)).toEqual([]);
  });

  it('keeps only the 0600 header backup, no key file, when restoring the header fails too', async () => {
    const img = await luksImage();
    const tmpfs = await privateTmpfs();
    const before = await readHeader(real, img.path);
    const deps = { ...(await keyslotDeps()), runner: failsOn('token', 'luksHeaderRestore'), tmpfs: [tmpfs] };
    const message = await enroll(deps, img.path, enrollRequest(img)).then(
      () => 'done',
      (error: Error) => error.message,
    );
    expect(message).toMatch(/restoring the header backup failed too .*; the backup is kept at '[^']+'$/);
    const backup = /kept at '([^']+)'$/.exec(message)?.[1] ?? '';
    const [dir] = await readdir(tmpfs);
    expect(backup).toBe(join(tmpfs, dir ?? '', 'header-backup.img'));
    expect(await readdir(join(tmpfs, dir ?? ''))).toEqual(['header-backup.img']);
    expect((await stat(backup)).mode & 0o777).toBe(0o600);
    // The kept backup is the header as it was: restoring it by hand gives the volume back.
    await real('cryptsetup', ['luksHeaderRestore', '--batch-mode', img.path, '--header-backup-file', backup]);
    expect(shape(await readHeader(real, img.path))).toEqual(shape(before));
  });
});
