// Plan `zkluks recovery add|remove`: a recovery key in its own keyslot with a zkluks-recovery token
// (optionally holding the key encrypted to an age recipient), verified before any old one goes; and
// its removal, refused when no other way in without the Zymkey would remain.
import { RECOVERY_TOKEN_TYPE } from './token.ts';
import {
  JSON_BYTES,
  requireFreeKeyslots,
  requireJsonRoom,
  requireWayInWithoutZymkey,
  oldToken,
  slotsToWipe,
  unchangedPlan,
  type KeyRef,
  type LockOutConsent,
  type Plan,
  type Step,
} from './plan.ts';
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
    JSON_BYTES.keyslot + JSON_BYTES.recoveryToken + (options.escrow ? JSON_BYTES.escrow : 0),
  );
  const notes: string[] = [];
  const [slot] = freeKeyslots(header) as [number];
  const [tokenId] = freeTokenIds(header) as [number];
  const steps: Step[] = [
    { op: 'add-key', slot, key: 'recovery-new', authorizedBy: facts.authorizedBy },
    { op: 'import-token', tokenId, type: RECOVERY_TOKEN_TYPE, slot },
    { op: 'verify-key', slot, key: 'recovery-new' },
  ];
  for (const r of view.recovery)
    steps.push({ op: 'remove-token', tokenId: r.tokenId, type: RECOVERY_TOKEN_TYPE });
  const problems = view.problems.filter((p) => p.type === RECOVERY_TOKEN_TYPE);
  for (const p of problems) steps.push({ op: 'remove-token', tokenId: p.tokenId, type: RECOVERY_TOKEN_TYPE });
  const wipe = slotsToWipe('recovery-add', view, [...view.recovery.map(oldToken), ...problems], {
    unlockOpens: facts.unlockOpens,
    unlockName: 'key',
  });
  notes.push(...wipe.notes);
  for (const slot of wipe.kills) steps.push({ op: 'kill-slot', slot });
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

export function planRecoveryRemove(view: VolumeView, consent: LockOutConsent): Plan {
  const volume = view.header.volume;
  const problems = view.problems.filter((p) => p.type === RECOVERY_TOKEN_TYPE);
  if (view.recovery.length === 0 && problems.length === 0) {
    return unchangedPlan(
      'recovery-remove',
      volume,
      `'${volume}' has no zkluks-recovery token: nothing to remove`,
    );
  }
  const { kills, notes: kept } = slotsToWipe('recovery-remove', view, [
    ...view.recovery.map(oldToken),
    ...problems,
  ]);
  const notes = [
    ...kept,
    ...requireWayInWithoutZymkey(
      'recovery-remove',
      view,
      {
        killed: kills,
        removedTokens: [...view.recovery.map((r) => r.tokenId), ...problems.map((p) => p.tokenId)],
      },
      consent,
    ),
  ];
  const steps: Step[] = [
    ...view.recovery.map((r): Step => ({
      op: 'remove-token',
      tokenId: r.tokenId,
      type: RECOVERY_TOKEN_TYPE,
    })),
    ...problems.map((p): Step => ({ op: 'remove-token', tokenId: p.tokenId, type: RECOVERY_TOKEN_TYPE })),
    ...kills.map((slot): Step => ({ op: 'kill-slot', slot })),
  ];
  return {
    operation: 'recovery-remove',
    volume,
    unchanged: null,
    generates: [],
    escrowRecipient: null,
    steps,
    notes,
  };
}
