// zkluks enroll, end to end: the passphrase given must open a keyslot (which proves that slot a way
// in), the current enrollment is checked with the Zymkey, then plan-enroll.ts plans.
import type { ApplyHooks } from './apply.ts';
import {
  candidateSlots,
  requireKeyOpens,
  runOperation,
  slotsOpenedBy,
  type KeyslotDeps,
  type OperationResult,
} from './operation.ts';
import { planEnroll, type EnrollOptions } from './plan-enroll.ts';
import { ZYMKEY_TOKEN_TYPE } from './token.ts';
import { viewVolume } from './volume-view.ts';
import { zymkeyChecksOnly } from './zymkey-tokens.ts';

export interface EnrollRequest extends EnrollOptions {
  /** The existing passphrase (or key) that authorizes the change. */
  unlock: Buffer;
  dryRun: boolean;
}

export async function enroll(
  deps: KeyslotDeps,
  volume: string,
  request: EnrollRequest,
  hooks: ApplyHooks = {},
): Promise<OperationResult> {
  return runOperation(
    deps,
    'enroll',
    volume,
    request.dryRun,
    async (header) => {
      const view = viewVolume(header);
      const opened = await requireKeyOpens(deps, 'enroll', volume, request.unlock);
      const checks = await zymkeyChecksOnly(deps, view);
      const unlockOpens = await slotsOpenedBy(
        deps,
        volume,
        request.unlock,
        candidateSlots(view, ZYMKEY_TOKEN_TYPE),
      );
      return {
        plan: planEnroll({ view, checks, unlockOpens, proven: [opened] }, request),
        unlock: request.unlock,
      };
    },
    hooks,
  );
}
