// zkluks repair: settle a change an interruption left recorded in the header, on its own (every
// change also does it first), and clear what a killed zkluks left in the tmpfs. With a dry run, only
// say how it would be settled.
import { sweepStaleDirs } from '../device/tmpfs-dir.ts';
import { readHeader } from './header.ts';
import type { KeyslotDeps } from './operation.ts';
import { applySettle, planSettleAll, type SettlePlan } from './settle.ts';
import { DEFAULT_LOCK_DIR, withVolumeLock } from './volume-lock.ts';

export interface RepairResult {
  volume: string;
  /** One plan per interrupted change found; empty when there was none. */
  plans: SettlePlan[];
  applied: boolean;
}

export async function repair(deps: KeyslotDeps, volume: string, dryRun: boolean): Promise<RepairResult> {
  sweepStaleDirs(deps.tmpfs);
  return withVolumeLock(
    volume,
    async () => {
      const plans = planSettleAll(await readHeader(deps.runner, volume));
      if (!dryRun && plans.length > 0) await applySettle(deps.runner, plans);
      return { volume, plans, applied: !dryRun && plans.length > 0 };
    },
    deps.lockDir ?? DEFAULT_LOCK_DIR,
  );
}
