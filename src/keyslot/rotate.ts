// zkluks rotate, end to end: authorized by a passphrase given or by the current Zymkey key, a new
// Zymkey key in a new keyslot, then the old one wiped (plan-rotate.ts).
import { ZymkeyUnavailableError } from '../errors.ts';
import {
  candidateSlots,
  requireKeyOpens,
  runOperation,
  slotsOpenedBy,
  type KeyslotDeps,
  type OperationResult,
} from './operation.ts';
import { planRotate } from './plan-rotate.ts';
import { ZYMKEY_TOKEN_TYPE } from './token.ts';
import { viewVolume } from './volume-view.ts';
import { workingZymkeyKey } from './zymkey-tokens.ts';

export interface RotateRequest {
  /** A passphrase to authorize with instead of the current Zymkey key. */
  unlock?: Buffer;
  dryRun: boolean;
}

export async function rotate(
  deps: KeyslotDeps,
  volume: string,
  request: RotateRequest,
): Promise<OperationResult> {
  return runOperation(
    deps,
    'rotate',
    volume,
    request.dryRun,
    async (header) => {
      const view = viewVolume(header);
      const opened = request.unlock ? [await requireKeyOpens(deps, 'rotate', volume, request.unlock)] : [];
      const { checks, key: zymkeyOld } = await workingZymkeyKey(deps, view);
      if (!request.unlock && !zymkeyOld && view.zymkey.length > 0) {
        const unavailable = checks.find((c) => c.reason === 'zymkey-unavailable');
        if (unavailable?.zymkeyReason) {
          throw new ZymkeyUnavailableError(
            unavailable.zymkeyReason,
            `Failed to rotate the Zymkey key of '${volume}': ${unavailable.detail}`,
            {
              hint: `zkluks rotate --unlock-key-file FILE '${volume}' (a passphrase or the recovery key; - reads stdin)`,
            },
          );
        }
      }
      const unlockOpens = await slotsOpenedBy(
        deps,
        volume,
        request.unlock,
        candidateSlots(view, ZYMKEY_TOKEN_TYPE),
      );
      const plan = planRotate({
        view,
        checks,
        authorizedBy: request.unlock ? 'unlock' : 'zymkey-old',
        unlockOpens,
        proven: opened,
      });
      return { plan, unlock: request.unlock, zymkeyOld };
    },
    {},
  );
}
