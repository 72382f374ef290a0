// Plan `zkluks enroll`: a new Zymkey-sealed key in its own keyslot (priority prefer) with its token,
// verified; a recovery key unless the volume has one; and, with --force, the old Zymkey slot and
// token removed only after the new one is verified.
import { RefusedError } from '../errors.ts';
import { ZYMKEY_TOKEN_TYPE } from './token.ts';
import {
  JSON_BYTES,
  requireFreeKeyslots,
  requireJsonRoom,
  requireWayInWithoutZymkey,
  retireTokens,
  tokensOfType,
  unchangedPlan,
  type Plan,
  type Step,
} from './plan.ts';
import { freeKeyslots, freeTokenIds, type VolumeView } from './volume-view.ts';
import type { ZymkeyCheck } from './zymkey-check.ts';

export interface EnrollFacts {
  view: VolumeView;
  /** The outcome of unsealing and testing each valid zkluks-zymkey token. */
  checks: ZymkeyCheck[];
  /** Among the keyslots the plan could wipe, those the unlock passphrase opens. */
  unlockOpens: number[];
  /** Keyslots the unlock passphrase was shown to open this run. */
  proven?: number[];
}

export interface EnrollOptions {
  /** Replace an existing enrollment. */
  force: boolean;
  /** Create a recovery key when the volume has none (default true; --no-recovery-key). */
  recoveryKey: boolean;
  /** age recipient for the new recovery key. */
  escrow: string | null;
}

export function planEnroll(facts: EnrollFacts, options: EnrollOptions): Plan {
  const { view } = facts;
  const header = view.header;
  const volume = header.volume;
  const problems = view.problems.filter((p) => p.type === ZYMKEY_TOKEN_TYPE);
  const working = facts.checks.filter((c) => c.opens);
  const notes: string[] = [];
  // A recovery token copied from another volume is not this volume's recovery key.
  const recovery = view.recovery.filter((r) => r.match !== 'mismatch');
  const hasRecovery = recovery.length > 0;
  if (options.escrow && hasRecovery) {
    notes.push(
      `'${volume}' already has a recovery key (keyslot ${recovery[0]?.slot}); to escrow a new one run zkluks recovery add --force --escrow ${options.escrow} '${volume}'`,
    );
  }

  if (!options.force) {
    const first = working[0];
    if (first) {
      return unchangedPlan(
        'enroll',
        volume,
        `'${volume}' is already enrolled: keyslot ${first.slot} opens with the Zymkey (token ${first.tokenId}); use --force to replace its key`,
        notes,
      );
    }
    const broken = [
      ...facts.checks
        .filter((c) => !c.opens)
        .map((c) => `token ${c.tokenId} (keyslot ${c.slot}): ${c.detail}`),
      ...problems.filter((p) => p.kind !== 'dangling').map((p) => `token ${p.tokenId}: ${p.error.problem}`),
    ];
    if (broken.length > 0) {
      throw new RefusedError(
        `Refused to enroll '${volume}': it already has a zkluks-zymkey token that does not unlock it (${broken.join('; ')}); zkluks replaces an enrollment only when asked with --force`,
        { hint: `zkluks enroll --force '${volume}'` },
      );
    }
  }

  const createRecovery = options.recoveryKey && !hasRecovery;
  const retired = retireTokens('enroll', view, tokensOfType(view, ZYMKEY_TOKEN_TYPE), {
    checks: facts.checks,
    unlockOpens: facts.unlockOpens,
  });
  notes.push(...retired.notes);

  requireFreeKeyslots(
    'enroll',
    header,
    createRecovery ? 2 : 1,
    createRecovery
      ? `zkluks enroll --no-recovery-key '${volume}' (needs one free keyslot), or free a keyslot: cryptsetup luksKillSlot '${volume}' N`
      : undefined,
  );
  requireJsonRoom(
    'enroll',
    header,
    JSON_BYTES.pending +
      JSON_BYTES.keyslot +
      JSON_BYTES.zymkeyToken +
      (createRecovery
        ? JSON_BYTES.keyslot + JSON_BYTES.recoveryToken + (options.escrow ? JSON_BYTES.escrow : 0)
        : 0),
  );
  if (!createRecovery) {
    notes.push(
      ...requireWayInWithoutZymkey('enroll', view, retired.steps, { lockMeOut: false, yes: false }, [
        ...(facts.proven ?? []),
        ...facts.unlockOpens,
      ]),
    );
  }

  const [zSlot, rSlot] = freeKeyslots(header) as [number, number];
  const [zToken, rToken] = freeTokenIds(header) as [number, number];
  const steps: Step[] = [
    { op: 'add-key', slot: zSlot, key: 'zymkey-new', authorizedBy: 'unlock' },
    { op: 'set-priority', slot: zSlot, priority: 'prefer' },
    { op: 'import-token', tokenId: zToken, type: ZYMKEY_TOKEN_TYPE, slot: zSlot },
    { op: 'verify-key', slot: zSlot, key: 'zymkey-new' },
  ];
  if (createRecovery) {
    steps.push(
      { op: 'add-key', slot: rSlot, key: 'recovery-new', authorizedBy: 'unlock' },
      { op: 'import-token', tokenId: rToken, type: 'zkluks-recovery', slot: rSlot },
      { op: 'verify-key', slot: rSlot, key: 'recovery-new' },
    );
  } else if (!hasRecovery) {
    notes.push(
      `no recovery key is made (--no-recovery-key): keep the passphrase you gave, it stays the way in without the Zymkey`,
    );
  }
  steps.push(...retired.steps);
  return {
    operation: 'enroll',
    volume,
    unchanged: null,
    generates: createRecovery ? ['zymkey-new', 'recovery-new'] : ['zymkey-new'],
    escrowRecipient: createRecovery ? options.escrow : null,
    steps,
    notes,
  };
}
