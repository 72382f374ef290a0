// zkluks recovery add, end to end: authorized by a key given, the current Zymkey key, or a key
// asked for; a new recovery key in its own keyslot, delivered before an old one goes (plan-recovery.ts).
import { UsageError } from '../errors.ts';
import type { ApplyHooks } from './apply.ts';
import {
  candidateSlots,
  requireKeyOpens,
  runOperation,
  slotsOpenedBy,
  type KeyslotDeps,
  type OperationResult,
} from './operation.ts';
import { planRecoveryAdd } from './plan-recovery.ts';
import { viewVolume } from './volume-view.ts';
import { workingZymkeyKey } from './zymkey-tokens.ts';

export interface RecoveryAddRequest {
  unlock?: Buffer;
  /** Asked for a passphrase when neither `unlock` nor the Zymkey can authorize. */
  askUnlock?: () => Promise<Buffer>;
  force: boolean;
  /** The age recipient; null: none; undefined: keep the recipient of the key it replaces. */
  escrow: string | null | undefined;
  dryRun: boolean;
}

export async function recoveryAdd(
  deps: KeyslotDeps,
  volume: string,
  request: RecoveryAddRequest,
  hooks: ApplyHooks = {},
): Promise<OperationResult> {
  return runOperation(
    deps,
    'recovery-add',
    volume,
    request.dryRun,
    async (header) => {
      const view = viewVolume(header);
      let unlock = request.unlock;
      let zymkeyOld: Buffer | undefined;
      const hasRecovery = view.recovery.some((r) => r.match !== 'mismatch');
      if (!unlock && !(hasRecovery && !request.force)) {
        const working = await workingZymkeyKey(deps, view);
        zymkeyOld = working.key;
        if (!zymkeyOld) {
          if (!request.askUnlock) {
            throw new UsageError(
              `Failed to add a recovery key to '${volume}': a key is needed to authorize it and the Zymkey cannot (${working.checks.map((c) => c.detail).join('; ') || 'not enrolled'})`,
              { hint: `zkluks recovery add --unlock-key-file FILE '${volume}' (- reads stdin)` },
            );
          }
          unlock = await request.askUnlock();
        }
      }
      if (unlock) await requireKeyOpens(deps, 'recovery-add', volume, unlock);
      const unlockOpens = await slotsOpenedBy(deps, volume, unlock, candidateSlots(view, 'zkluks-recovery'));
      // Replacing a recovery key keeps what the admin set up: its escrow recipient, unless told.
      const kept =
        request.escrow === undefined
          ? (view.recovery.find((r) => r.match !== 'mismatch' && r.token.escrow)?.token.escrow?.recipient ??
            null)
          : null;
      const plan = planRecoveryAdd(
        { view, authorizedBy: unlock ? 'unlock' : 'zymkey-old', unlockOpens },
        { force: request.force, escrow: request.escrow ?? kept },
      );
      if (kept && plan.unchanged === null) {
        plan.notes.push(
          `the new recovery key is escrowed to ${kept}, as the one it replaces was (--no-escrow drops the escrow, --escrow RECIPIENT changes it)`,
        );
      }
      return { plan, unlock, zymkeyOld };
    },
    hooks,
  );
}
