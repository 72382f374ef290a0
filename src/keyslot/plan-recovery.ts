// Plan `zkluks recovery add|remove`: a recovery key in its own keyslot with a zkluks-recovery token
// (optionally holding the key encrypted to an age recipient), verified before any old one goes; and
// its removal, refused when no other way in without the Zymkey would remain.
import { RECOVERY_TOKEN_TYPE } from './token.ts';
import {
  JSON_BYTES,
  requireFreeKeyslots,
  requireJsonRoom,
  retireTokens,
  tokensOfType,
  unchangedPlan,
  type KeyRef,
  type LockOutConsent,
  type Plan,
  type Step,
} from './plan.ts';
import { planTokenRemoval } from './plan-remove.ts';
import { freeKeyslots, freeTokenIds, type VolumeView } from './volume-view.ts';

export interface RecoveryAddFacts {
  view: VolumeView;
  authorizedBy: Extract<KeyRef, 'unlock' | 'zymkey-old'>;
  /** Among the old recovery keyslots, those the given passphrase opens (never wiped). */
  unlockOpens: number[];
}

export interface RecoveryAddOptions {
  force: boolean;
  escrow: string | null;
}

export function planRecoveryAdd(facts: RecoveryAddFacts, options: RecoveryAddOptions): Plan {
  const { view } = facts;
  const header = view.header;
  const volume = header.volume;
  // A recovery token copied from another volume is not this volume's recovery key.
  const existing = view.recovery.find((r) => r.match !== 'mismatch');
  if (existing && !options.force) {
    return unchangedPlan(
      'recovery-add',
      volume,
      `'${volume}' already has a recovery key in keyslot ${existing.slot} (token ${existing.tokenId}${existing.token.escrow ? `, escrowed to ${existing.token.escrow.recipient}` : ''}); use --force to replace it`,
    );
  }
  requireFreeKeyslots('recovery-add', header, 1);
  requireJsonRoom(
    'recovery-add',
    header,
    JSON_BYTES.pending +
      JSON_BYTES.keyslot +
      JSON_BYTES.recoveryToken +
      (options.escrow ? JSON_BYTES.escrow : 0),
  );
  const notes: string[] = [];
  const [slot] = freeKeyslots(header) as [number];
  const [tokenId] = freeTokenIds(header) as [number];
  const steps: Step[] = [
    { op: 'add-key', slot, key: 'recovery-new', authorizedBy: facts.authorizedBy },
    { op: 'import-token', tokenId, type: RECOVERY_TOKEN_TYPE, slot },
    { op: 'verify-key', slot, key: 'recovery-new' },
  ];
  const retired = retireTokens('recovery-add', view, tokensOfType(view, RECOVERY_TOKEN_TYPE), {
    unlockOpens: facts.unlockOpens,
    unlockName: 'key',
  });
  steps.push(...retired.steps);
  notes.push(...retired.notes);
  return {
    operation: 'recovery-add',
    volume,
    unchanged: null,
    generates: ['recovery-new'],
    escrowRecipient: options.escrow,
    steps,
    notes,
  };
}

/** `proven`: keyslots a key given this run opens (each counts as a way in that remains). */
export function planRecoveryRemove(
  view: VolumeView,
  consent: LockOutConsent,
  proven: readonly number[] = [],
): Plan {
  return planTokenRemoval('recovery-remove', view, consent, [], proven);
}
