// Plan `zkluks rotate`: a new Zymkey-sealed key in a new keyslot, verified, then the old Zymkey
// slot and token wiped — one call, never the other way round.
import { RefusedError, ZkluksError } from '../errors.ts';
import { ZYMKEY_TOKEN_TYPE } from './token.ts';
import {
  JSON_BYTES,
  requireFreeKeyslots,
  requireJsonRoom,
  retireTokens,
  tokensOfType,
  type Plan,
  type Step,
} from './plan.ts';
import { freeKeyslots, freeTokenIds, waysInWithoutZymkey, type VolumeView } from './volume-view.ts';
import type { ZymkeyCheck } from './zymkey-check.ts';

export interface RotateFacts {
  view: VolumeView;
  checks: ZymkeyCheck[];
  /** What authorizes the new keyslot: a passphrase the admin gave, or the current Zymkey key. */
  authorizedBy: 'unlock' | 'zymkey-old';
  /** Among the old Zymkey keyslots, those the given passphrase opens (never wiped). */
  unlockOpens: number[];
  /** Keyslots the given passphrase was shown to open this run. */
  proven?: number[];
}

export function planRotate(facts: RotateFacts): Plan {
  const { view } = facts;
  const header = view.header;
  const volume = header.volume;
  const problems = view.problems.filter((p) => p.type === ZYMKEY_TOKEN_TYPE);
  const corrupt = problems.filter((p) => p.kind !== 'dangling');
  if (corrupt.length > 0) {
    throw new RefusedError(
      `Refused to rotate the Zymkey key of '${volume}': ${corrupt.map((p) => `token ${p.tokenId}: ${p.error.problem}`).join('; ')}; rotate replaces only a working enrollment`,
      { hint: `zkluks enroll --force '${volume}'` },
    );
  }
  if (view.zymkey.length === 0) {
    throw new ZkluksError(
      `Failed to rotate the Zymkey key of '${volume}': it is not enrolled (no zkluks-zymkey token)`,
      {
        hint: `zkluks enroll '${volume}'`,
      },
    );
  }
  if (facts.authorizedBy === 'zymkey-old' && !facts.checks.some((c) => c.opens)) {
    const why = facts.checks.map((c) => c.detail).join('; ');
    throw new ZkluksError(
      `Failed to rotate the Zymkey key of '${volume}': the current Zymkey key cannot authorize the new keyslot: ${why}`,
      {
        hint: `zkluks rotate --unlock-key-file FILE '${volume}' (a passphrase or the recovery key; - reads stdin)`,
      },
    );
  }
  requireFreeKeyslots('rotate', header, 1);
  requireJsonRoom('rotate', header, JSON_BYTES.pending + JSON_BYTES.keyslot + JSON_BYTES.zymkeyToken);

  const notes: string[] = [];
  const [slot] = freeKeyslots(header) as [number];
  const [tokenId] = freeTokenIds(header) as [number];
  const steps: Step[] = [
    { op: 'add-key', slot, key: 'zymkey-new', authorizedBy: facts.authorizedBy },
    { op: 'set-priority', slot, priority: 'prefer' },
    { op: 'import-token', tokenId, type: ZYMKEY_TOKEN_TYPE, slot },
    { op: 'verify-key', slot, key: 'zymkey-new' },
  ];
  const retired = retireTokens('rotate', view, tokensOfType(view, ZYMKEY_TOKEN_TYPE), {
    checks: facts.checks,
    unlockOpens: facts.unlockOpens,
  });
  steps.push(...retired.steps);
  notes.push(...retired.notes);
  if (waysInWithoutZymkey(view, [...(facts.proven ?? []), ...facts.unlockOpens]).length === 0) {
    notes.push(
      `'${volume}' has no keyslot proven to open without the Zymkey (no recovery key made for it, and no passphrase given this run opens a keyslot): add a recovery key with zkluks recovery add '${volume}'`,
    );
  }
  return {
    operation: 'rotate',
    volume,
    unchanged: null,
    generates: ['zymkey-new'],
    escrowRecipient: null,
    steps,
    notes,
  };
}
