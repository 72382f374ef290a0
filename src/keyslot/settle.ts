// Settle a change that a crash, a kill or a power cut interrupted, from the intent it left in the
// header (pending.ts). Phase add: roll back (remove the tokens it imported, wipe the slots it added),
// so every way in that existed before is all there is again. Phase remove: finish (the new keys were
// verified and delivered before anything old went). Either way, no slot whose salt changed since the
// intent was written, and no slot another token uses, is ever wiped. Pure plan, thin executor; every
// command that changes a volume settles first, `zkluks repair` settles on its own.
import { RefusedError } from '../errors.ts';
import type { Runner } from '../exec.ts';
import { safeText } from '../safe-text.ts';
import { killSlot, removeToken } from './cryptsetup.ts';
import type { HeaderFacts } from './header.ts';
import { describePending, findPending, PENDING_TOKEN_TYPE, type Pending } from './pending.ts';
import { isZkluksTokenType } from './token.ts';

export type SettleStep =
  { op: 'remove-token'; tokenId: number; type: string } | { op: 'kill-slot'; slot: number };

export interface SettlePlan {
  volume: string;
  tokenId: number;
  operation: string;
  action: 'roll-back' | 'finish';
  /** What was under way, in one line. */
  description: string;
  steps: SettleStep[];
  /** Slots or tokens left alone, and why. */
  notes: string[];
}

/** The plan that settles one pending intent; refused for an unreadable one. */
export function planSettle(header: HeaderFacts, pending: Pending): SettlePlan {
  const volume = header.volume;
  if (!pending.intent) {
    throw new RefusedError(
      `Refused to change '${volume}': its header holds a zkluks-pending token ${pending.tokenId} that cannot be read (${safeText(pending.error)}), so what an interrupted change was doing cannot be told`,
      {
        hint: `zkluks list '${volume}'; check each keyslot opens with a key you hold (cryptsetup open --test-passphrase --key-slot N '${volume}'), then cryptsetup token remove --token-id ${pending.tokenId} '${volume}'`,
      },
    );
  }
  const intent = pending.intent;
  const steps: SettleStep[] = [];
  const notes: string[] = [];
  const tokenAt = (id: number) => header.tokens.find((t) => t.id === id);
  const slotAt = (id: number) => header.keyslots.find((k) => k.id === id);
  const removing = new Set<number>([pending.tokenId]);
  // Tokens that stay and use `slot`: a reason never to wipe it.
  const usersOf = (slot: number) =>
    header.tokens.filter(
      (t) => t.keyslots.includes(slot) && !removing.has(t.id) && t.type !== PENDING_TOKEN_TYPE,
    );

  const wipe = (slot: number, salt: string | null, why: string) => {
    const k = slotAt(slot);
    if (!k) return;
    const users = usersOf(slot);
    if (users.length > 0) {
      notes.push(
        `keyslot ${slot} is kept: ${users.map((t) => `${safeText(t.type)} token ${t.id}`).join(', ')} ${users.length > 1 ? 'use' : 'uses'} it`,
      );
    } else if (salt !== null ? k.salt !== salt : !(k.kdf === 'pbkdf2' && k.iterations === 1000)) {
      notes.push(
        `keyslot ${slot} is kept: it is not the keyslot the interrupted ${intent.operation} ${why} (its KDF salt or parameters differ: re-keyed or replaced since)`,
      );
    } else steps.push({ op: 'kill-slot', slot });
  };

  if (intent.phase === 'add') {
    const addedSlots = intent.added.slots.map((s) => s.slot);
    for (const id of intent.added.tokens) {
      const t = tokenAt(id);
      if (!t) continue;
      if (isZkluksTokenType(t.type) && t.keyslots.every((s) => addedSlots.includes(s))) {
        steps.push({ op: 'remove-token', tokenId: id, type: t.type });
        removing.add(id);
      } else
        notes.push(
          `token ${id} is kept: it is a ${safeText(t.type)} token the interrupted change did not make`,
        );
    }
    for (const s of intent.added.slots) wipe(s.slot, s.salt, 'added');
  } else {
    for (const r of intent.removed.tokens) {
      const t = tokenAt(r.id);
      if (!t) continue;
      if (t.type === r.type) {
        steps.push({ op: 'remove-token', tokenId: r.id, type: r.type });
        removing.add(r.id);
      } else
        notes.push(`token ${r.id} is kept: it is now a ${t.type} token, not the ${r.type} token planned`);
    }
    for (const s of intent.removed.slots) wipe(s.slot, s.salt, 'was to wipe');
  }
  steps.push({ op: 'remove-token', tokenId: pending.tokenId, type: PENDING_TOKEN_TYPE });
  return {
    volume,
    tokenId: pending.tokenId,
    operation: intent.operation,
    action: intent.phase === 'add' ? 'roll-back' : 'finish',
    description: describePending(pending),
    steps,
    notes,
  };
}

/** Plans for every pending intent in the header (usually none). */
export function planSettleAll(header: HeaderFacts): SettlePlan[] {
  return findPending(header).map((p) => planSettle(header, p));
}

export function describeSettleStep(step: SettleStep): string {
  return step.op === 'kill-slot'
    ? `wipe keyslot ${step.slot}`
    : step.type === PENDING_TOKEN_TYPE
      ? `remove the record of the interrupted change (zkluks-pending token ${step.tokenId})`
      : `remove ${step.type} token ${step.tokenId}`;
}

export function describeSettle(plan: SettlePlan): string {
  return [
    `${plan.action === 'roll-back' ? 'Roll back' : 'Finish'} ${plan.description}`,
    ...plan.steps.map((s, i) => `  ${i + 1}. ${describeSettleStep(s)}`),
    ...plan.notes.map((n) => `  note: ${n}`),
  ].join('\n');
}

/**
 * Run settle plans. Each step is one atomic header write and can be repeated, so an interruption
 * here leaves an intent the next run settles in turn; the record goes last.
 */
export async function applySettle(runner: Runner, plans: readonly SettlePlan[]): Promise<void> {
  for (const plan of plans) {
    for (const step of plan.steps) {
      if (step.op === 'kill-slot') await killSlot(runner, plan.volume, step.slot);
      else await removeToken(runner, plan.volume, step.tokenId);
    }
  }
}
