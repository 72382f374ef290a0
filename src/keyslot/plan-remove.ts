// Plan `zkluks remove` and `zkluks recovery remove`: remove every zkluks token of the type (usable,
// dangling or corrupt) and wipe the keyslots they were made for (slotsToWipe) — refused when no
// passphrase or recovery slot would remain.
import { RECOVERY_TOKEN_TYPE, ZYMKEY_TOKEN_TYPE } from './token.ts';
import {
  JSON_BYTES,
  requireJsonRoom,
  requireWayInWithoutZymkey,
  retireTokens,
  tokensOfType,
  unchangedPlan,
  type LockOutConsent,
  type Plan,
} from './plan.ts';
import type { VolumeView } from './volume-view.ts';
import type { ZymkeyCheck } from './zymkey-check.ts';

export function planTokenRemoval(
  operation: 'remove' | 'recovery-remove',
  view: VolumeView,
  consent: LockOutConsent,
  checks: readonly ZymkeyCheck[] = [],
  proven: readonly number[] = [],
): Plan {
  const volume = view.header.volume;
  const type = operation === 'remove' ? ZYMKEY_TOKEN_TYPE : RECOVERY_TOKEN_TYPE;
  const tokens = tokensOfType(view, type);
  if (tokens.length === 0) {
    return unchangedPlan(operation, volume, `'${volume}' has no ${type} token: nothing to remove`);
  }
  requireJsonRoom(operation, view.header, JSON_BYTES.pending);
  const { steps, notes } = retireTokens(operation, view, tokens, {
    checks,
    unlockOpens: proven,
    unlockName: 'key',
  });
  notes.push(...requireWayInWithoutZymkey(operation, view, steps, consent, proven));
  return { operation, volume, unchanged: null, generates: [], escrowRecipient: null, steps, notes };
}

/**
 * `checks`: the Zymkey's test of each token whose keyslot salt does not match (see slotsToWipe);
 * `proven`: keyslots a key given this run opens.
 */
export function planRemove(
  view: VolumeView,
  consent: LockOutConsent,
  checks: readonly ZymkeyCheck[] = [],
  proven: readonly number[] = [],
): Plan {
  return planTokenRemoval('remove', view, consent, checks, proven);
}
