// What every keyslot operation shares: its deps, and one run — take the volume's lock, read the
// header, settle a change a crash interrupted (settle.ts), gather the facts the planner needs, plan,
// and (unless it is a dry run or there is nothing to do) apply. Also the key tests that prove a way
// in: which keyslots a key given this run opens.
import type { ZymkeyPort } from '../device/port.ts';
import { sweepStaleDirs } from '../device/tmpfs-dir.ts';
import { RefusedError, ZkluksError } from '../errors.ts';
import type { Runner } from '../exec.ts';
import { applyPlan, type ApplyHooks, type ApplyResult } from './apply.ts';
import { keyOpensSlot, testKey } from './cryptsetup.ts';
import { readHeader, type HeaderFacts } from './header.ts';
import { VERBS, type Operation, type Plan } from './plan.ts';
import { applySettle, planSettleAll, type SettlePlan } from './settle.ts';
import { ZYMKEY_TOKEN_TYPE } from './token.ts';
import type { VolumeView } from './volume-view.ts';
import { withVolumeLock, DEFAULT_LOCK_DIR } from './volume-lock.ts';

export interface KeyslotDeps {
  runner: Runner;
  /** Opens the Zymkey port (openZymkey from src/device/open.ts); called only when needed. */
  zymkey: () => ZymkeyPort;
  signal?: AbortSignal;
  lockDir?: string;
  tmpfs?: readonly string[];
  now?: () => Date;
}

export interface OperationResult {
  plan: Plan;
  /** Null for a dry run or when there was nothing to do. */
  applied: ApplyResult | null;
  /** Interrupted changes this run rolled back or finished before its own (usually none). */
  settled: SettlePlan[];
}

export interface Planned {
  plan: Plan;
  unlock?: Buffer;
  zymkeyOld?: Buffer;
}

/** Keyslots among `slots` that `key` opens (each tested on its own). */
export async function slotsOpenedBy(
  deps: KeyslotDeps,
  volume: string,
  key: Buffer | undefined,
  slots: readonly number[],
): Promise<number[]> {
  if (!key) return [];
  const opened: number[] = [];
  for (const slot of slots) if (await keyOpensSlot(deps.runner, volume, key, slot)) opened.push(slot);
  return opened;
}

/** The keyslot `key` opens; a clear error when it opens none. */
export async function requireKeyOpens(
  deps: KeyslotDeps,
  operation: Operation,
  volume: string,
  key: Buffer,
): Promise<number> {
  const r = await testKey(deps.runner, volume, { bytes: key });
  if (r.opens && r.slot >= 0) return r.slot;
  if (!r.opens && r.exitCode !== 2 && !/No key available/i.test(r.stderr)) {
    throw new ZkluksError(
      `Failed to test a key against '${volume}': ${r.stderr.trim() || `cryptsetup exited ${r.exitCode}`}`,
      { hint: `cryptsetup luksDump '${volume}'` },
    );
  }
  // A key file made with echo ends with a newline, which cryptsetup --key-file (and zkluks) read
  // as part of the key: say so when the key without it would open.
  const newline = /\r?\n$/.exec(key.toString('latin1'))?.[0].length ?? 0;
  if (
    newline > 0 &&
    (await testKey(deps.runner, volume, { bytes: key.subarray(0, key.length - newline) })).opens
  ) {
    throw new ZkluksError(
      `Failed to ${VERBS[operation]} '${volume}': the key file ends with a newline, which is read as part of the key (as cryptsetup --key-file does); without the newline it opens the volume`,
      {
        hint: `remove the newline: truncate -s -${newline} FILE (make key files with printf %s, not echo), then run this again`,
      },
    );
  }
  throw new ZkluksError(
    `Failed to ${VERBS[operation]} '${volume}': wrong passphrase: the key given does not open any keyslot${newline > 0 ? ' (with or without the newline it ends with)' : ''}`,
    {
      hint: `check the key file exactly as zkluks reads it: cryptsetup open --test-passphrase --key-file FILE '${volume}'`,
    },
  );
}

/** Keyslots the planner may wipe for tokens of `type`: those its tokens (usable or not) name. */
export function candidateSlots(view: VolumeView, type: string): number[] {
  const ours = type === ZYMKEY_TOKEN_TYPE ? view.zymkey : view.recovery;
  return [
    ...ours.map((t) => t.slot),
    ...view.problems.filter((p) => p.type === type).map((p) => p.slot),
  ].filter((s): s is number => s !== null && view.header.keyslots.some((k) => k.id === s));
}

/**
 * Settle what an interrupted change left (none on a dry run: refused, since the plan depends on it),
 * then return the header to plan on.
 */
export async function settleFirst(
  deps: KeyslotDeps,
  operation: Operation,
  volume: string,
  dryRun: boolean,
): Promise<{ header: HeaderFacts; settled: SettlePlan[] }> {
  const header = await readHeader(deps.runner, volume);
  const settled = planSettleAll(header);
  if (settled.length === 0) return { header, settled };
  if (dryRun) {
    throw new RefusedError(
      `Refused to plan ${VERBS[operation]} '${volume}': its header records ${settled.map((p) => p.description).join('; ')}; a dry run changes nothing, and this plan depends on how that is settled`,
      { hint: `zkluks repair --dry-run '${volume}' (shows how), then zkluks repair '${volume}'` },
    );
  }
  await applySettle(deps.runner, settled);
  return { header: await readHeader(deps.runner, volume), settled };
}

export async function runOperation(
  deps: KeyslotDeps,
  operation: Operation,
  volume: string,
  dryRun: boolean,
  plan: (header: HeaderFacts) => Promise<Planned>,
  hooks: ApplyHooks,
): Promise<OperationResult> {
  sweepStaleDirs(deps.tmpfs);
  return withVolumeLock(
    volume,
    async () => {
      const { header, settled } = await settleFirst(deps, operation, volume, dryRun);
      const planned = await plan(header);
      try {
        if (dryRun || planned.plan.unchanged) return { plan: planned.plan, applied: null, settled };
        const applied = await applyPlan(
          planned.plan,
          header,
          { runner: deps.runner, zymkey: deps.zymkey, signal: deps.signal, tmpfs: deps.tmpfs, now: deps.now },
          { unlock: planned.unlock, zymkeyOld: planned.zymkeyOld },
          hooks,
        );
        return { plan: planned.plan, applied, settled };
      } finally {
        planned.zymkeyOld?.fill(0);
      }
    },
    deps.lockDir ?? DEFAULT_LOCK_DIR,
  );
}
