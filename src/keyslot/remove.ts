// zkluks remove and zkluks recovery remove, end to end: every zkluks token of the type goes, with the
// keyslots made for it (plan-remove.ts). When nothing else proves a way in that remains (a recovery
// key made for this volume), a key the admin gives is tested against the slots that remain, and
// only a slot it opens counts.
import { RefusedError } from '../errors.ts';
import type { HeaderFacts } from './header.ts';
import { runOperation, slotsOpenedBy, type KeyslotDeps, type OperationResult } from './operation.ts';
import { NoWayInError, type LockOutConsent, type Plan } from './plan.ts';
import { planRecoveryRemove } from './plan-recovery.ts';
import { planRemove } from './plan-remove.ts';
import { viewVolume, type VolumeView } from './volume-view.ts';
import type { ZymkeyCheck } from './zymkey-check.ts';
import { zymkeyChecksOnly } from './zymkey-tokens.ts';

export interface RemoveRequest extends LockOutConsent {
  dryRun: boolean;
  /** A key (passphrase) that opens a keyslot that stays: proves the way in that remains. */
  unlock?: Buffer;
  /** Asked for such a key when nothing else proves one (a terminal); absent: refused instead. */
  askUnlock?: () => Promise<Buffer>;
}

/** Plan with the proof at hand; when only a key could prove a way in, get one and test it. */
async function planWithProof(
  deps: KeyslotDeps,
  volume: string,
  request: RemoveRequest,
  planFor: (proven: number[]) => Plan,
): Promise<Plan> {
  const slots = (error: NoWayInError) => error.provable;
  try {
    return planFor([]);
  } catch (error) {
    if (!(error instanceof NoWayInError) || slots(error).length === 0) throw error;
    if (!request.unlock && !request.askUnlock) throw error;
    const key = request.unlock ?? (await (request.askUnlock as () => Promise<Buffer>)());
    try {
      const proven = await slotsOpenedBy(deps, volume, key, slots(error));
      if (proven.length === 0) {
        throw new RefusedError(
          `${error.message.split(': it would leave')[0]}: the key given opens none of keyslot ${slots(error).join(', ')}, so no keyslot proven to open without the Zymkey would remain`,
          { hint: error.hint },
        );
      }
      return planFor(proven);
    } finally {
      if (key !== request.unlock) key.fill(0);
    }
  }
}

async function zymkeyChecksWhereUnsure(deps: KeyslotDeps, view: VolumeView): Promise<ZymkeyCheck[]> {
  // A token whose recorded salt does not match its slot is settled by the Zymkey: does its key
  // open the slot? (Only then: a volume whose Zymkey is gone must still be able to drop it.)
  return view.zymkey.some((z) => z.match !== 'match') ? zymkeyChecksOnly(deps, view) : [];
}

export async function remove(
  deps: KeyslotDeps,
  volume: string,
  request: RemoveRequest,
): Promise<OperationResult> {
  return runOperation(
    deps,
    'remove',
    volume,
    request.dryRun,
    async (header: HeaderFacts) => {
      const view = viewVolume(header);
      const checks = await zymkeyChecksWhereUnsure(deps, view);
      return {
        plan: await planWithProof(deps, volume, request, (p) => planRemove(view, request, checks, p)),
      };
    },
    {},
  );
}

export async function recoveryRemove(
  deps: KeyslotDeps,
  volume: string,
  request: RemoveRequest,
): Promise<OperationResult> {
  return runOperation(
    deps,
    'recovery-remove',
    volume,
    request.dryRun,
    async (header: HeaderFacts) => {
      const view = viewVolume(header);
      return {
        plan: await planWithProof(deps, volume, request, (p) => planRecoveryRemove(view, request, p)),
      };
    },
    {},
  );
}
