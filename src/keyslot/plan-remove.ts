// Plan `zkluks remove`: wipe the Zymkey keyslot and remove its token (and any zkluks-zymkey token
// left dangling or corrupt) — refused when no passphrase or recovery slot would remain. A slot the
// token was not made for keeps its key (slotsToWipe).
import { ZYMKEY_TOKEN_TYPE } from './token.ts';
import {
  requireWayInWithoutZymkey,
  oldToken,
  slotsToWipe,
  unchangedPlan,
  type LockOutConsent,
  type Plan,
  type Step,
} from './plan.ts';
import type { VolumeView } from './volume-view.ts';
import type { ZymkeyCheck } from './zymkey-check.ts';

/** `checks`: the Zymkey's test of each token whose keyslot salt does not match (see slotsToWipe). */
export function planRemove(
  view: VolumeView,
  consent: LockOutConsent,
  checks: readonly ZymkeyCheck[] = [],
): Plan {
  const volume = view.header.volume;
  const problems = view.problems.filter((p) => p.type === ZYMKEY_TOKEN_TYPE);
  if (view.zymkey.length === 0 && problems.length === 0) {
    return unchangedPlan('remove', volume, `'${volume}' has no zkluks-zymkey token: nothing to remove`);
  }
  const { kills, notes: kept } = slotsToWipe('remove', view, [...view.zymkey.map(oldToken), ...problems], {
    checks,
  });
  const notes = [
    ...kept,
    ...requireWayInWithoutZymkey(
      'remove',
      view,
      {
        killed: kills,
        removedTokens: [...view.zymkey.map((z) => z.tokenId), ...problems.map((p) => p.tokenId)],
      },
      consent,
    ),
  ];
  const steps: Step[] = [
    ...view.zymkey.map((z): Step => ({ op: 'remove-token', tokenId: z.tokenId, type: ZYMKEY_TOKEN_TYPE })),
    ...problems.map((p): Step => ({ op: 'remove-token', tokenId: p.tokenId, type: ZYMKEY_TOKEN_TYPE })),
    ...kills.map((slot): Step => ({ op: 'kill-slot', slot })),
  ];
  steps.sort((a, b) => (a.op === b.op ? 0 : a.op === 'remove-token' ? -1 : 1));
  return { operation: 'remove', volume, unchanged: null, generates: [], escrowRecipient: null, steps, notes };
}
