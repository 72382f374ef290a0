// A fresh simulated Zymkey in a temporary state directory, removed after the test.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, onTestFinished } from 'vitest';
import { openZymkey } from '../../src/device/open.ts';
import { simInit } from '../../src/device/sim-control.ts';
import { createRunner, type RunRecord, type Runner } from '../../src/exec.ts';
import { readHeader } from '../../src/keyslot/header.ts';
import type { KeyslotDeps } from '../../src/keyslot/operations.ts';
import { viewVolume } from '../../src/keyslot/volume-view.ts';
import { opens } from '../helpers/luks.ts';

export async function simStateDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'zkluks-sim-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  simInit(dir);
  return dir;
}

/** Deps for the keyslot operations: the real runner (recording) and the simulator. */
export async function keyslotDeps(
  options: { runner?: Runner; records?: RunRecord[]; simState?: string } = {},
): Promise<KeyslotDeps & { simState: string; lockDir: string }> {
  const simState = options.simState ?? (await simStateDir());
  const runner = options.runner ?? createRunner({ records: options.records });
  const lockDir = await mkdtemp(join(tmpdir(), 'zkluks-lock-'));
  onTestFinished(() => rm(lockDir, { recursive: true, force: true }));
  return { runner, simState, lockDir, zymkey: () => openZymkey({ backend: 'sim', simState, runner }) };
}

/** Environment for running the CLI against the simulator. */
export function simEnv(simState: string): Record<string, string> {
  return { ZKLUKS_BACKEND: 'sim', ZKLUKS_SIM_STATE: simState };
}

/** The volume still opens with its original passphrase and no zkluks token dangles or is broken. */
export async function expectIntact(volume: string, passphrase: string): Promise<void> {
  const header = await readHeader(createRunner(), volume);
  expect(await opens(volume, passphrase), 'the original passphrase opens the volume').toBe(true);
  expect(
    header.tokens.filter((t) => t.keyslots.length === 0),
    'no token dangles',
  ).toEqual([]);
  expect(viewVolume(header).problems, 'no zkluks token is broken').toEqual([]);
}
