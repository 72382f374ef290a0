// The intent of a keyslot change, kept in the header itself as a `zkluks-pending` token that names no
// keyslot: what the operation adds, what it will remove (each slot with its KDF salt, so a slot
// re-keyed since is never wiped), and the phase it reached. LUKS2 writes its header atomically, so
// after a crash, a kill or a power cut the header says exactly what was under way, on this Pi or any
// other machine. Phase `add`: new slots and tokens are being added (an interruption rolls them back);
// phase `remove`: the new keys were added, verified and delivered, and the old ones are being removed
// (an interruption is finished). Pure parse and build.
import { safeText } from '../safe-text.ts';
import type { HeaderFacts } from './header.ts';
import type { Operation, Plan } from './plan.ts';
import { isZkluksTokenType, type ZkluksTokenType } from './token.ts';

export const PENDING_TOKEN_TYPE = 'zkluks-pending';

export type PendingPhase = 'add' | 'remove';

export interface PendingIntent {
  type: typeof PENDING_TOKEN_TYPE;
  /** Always empty: the token belongs to no keyslot. */
  keyslots: [];
  version: 1;
  operation: Operation;
  phase: PendingPhase;
  created: string;
  /** Slots the change adds (with their salt once added) and the ids of the tokens it imports. */
  added: { slots: Array<{ slot: number; salt: string | null }>; tokens: number[] };
  /** Tokens the change removes and the slots it wipes, each with the salt it had when planned. */
  removed: {
    tokens: Array<{ id: number; type: ZkluksTokenType }>;
    slots: Array<{ slot: number; salt: string }>;
  };
}

/** A pending token found in a header: its intent, or why it cannot be read. */
export type Pending =
  { tokenId: number; intent: PendingIntent; error: null } | { tokenId: number; intent: null; error: string };

const OPERATIONS: readonly Operation[] = ['enroll', 'rotate', 'remove', 'recovery-add', 'recovery-remove'];

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isSlot = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) < 32;

/** Read a stored pending token; throws a sentence naming the defect. */
export function parsePendingToken(json: unknown): PendingIntent {
  if (!isObject(json)) throw new Error('it is not a JSON object');
  if (json.type !== PENDING_TOKEN_TYPE) throw new Error(`type is '${String(json.type)}'`);
  if (json.version !== 1)
    throw new Error(`version is ${JSON.stringify(json.version) ?? 'missing'}, expected 1`);
  if (!OPERATIONS.includes(json.operation as Operation))
    throw new Error('operation is not a zkluks operation');
  if (json.phase !== 'add' && json.phase !== 'remove') throw new Error('phase is not "add" or "remove"');
  if (typeof json.created !== 'string') throw new Error('created is missing');
  const { added, removed } = json;
  if (!isObject(added) || !Array.isArray(added.slots) || !Array.isArray(added.tokens)) {
    throw new Error('added is not {slots, tokens}');
  }
  if (!isObject(removed) || !Array.isArray(removed.slots) || !Array.isArray(removed.tokens)) {
    throw new Error('removed is not {slots, tokens}');
  }
  const addedSlots = added.slots.map((s) => {
    if (!isObject(s) || !isSlot(s.slot)) throw new Error('an added slot is malformed');
    if (s.salt !== null && typeof s.salt !== 'string') throw new Error('an added slot salt is malformed');
    return { slot: s.slot, salt: s.salt };
  });
  const addedTokens = added.tokens.map((t) => {
    if (!isSlot(t)) throw new Error('an added token id is malformed');
    return t;
  });
  const removedTokens = removed.tokens.map((t) => {
    if (!isObject(t) || !isSlot(t.id) || typeof t.type !== 'string' || !isZkluksTokenType(t.type)) {
      throw new Error('a removed token is malformed');
    }
    return { id: t.id, type: t.type };
  });
  const removedSlots = removed.slots.map((s) => {
    if (!isObject(s) || !isSlot(s.slot) || typeof s.salt !== 'string' || s.salt === '') {
      throw new Error('a removed slot is malformed');
    }
    return { slot: s.slot, salt: s.salt };
  });
  return {
    type: PENDING_TOKEN_TYPE,
    keyslots: [],
    version: 1,
    operation: json.operation as Operation,
    phase: json.phase,
    created: json.created,
    added: { slots: addedSlots, tokens: addedTokens },
    removed: { tokens: removedTokens, slots: removedSlots },
  };
}

/** Every pending token in a header, parsed or with its defect. */
export function findPending(header: Pick<HeaderFacts, 'tokens'>): Pending[] {
  return header.tokens
    .filter((t) => t.type === PENDING_TOKEN_TYPE)
    .map((t): Pending => {
      try {
        return { tokenId: t.id, intent: parsePendingToken(t.json), error: null };
      } catch (error) {
        return { tokenId: t.id, intent: null, error: (error as Error).message };
      }
    });
}

/** Keyslots an intent touches (added or to be wiped). */
export function pendingSlots(intent: PendingIntent): number[] {
  return [...intent.added.slots.map((s) => s.slot), ...intent.removed.slots.map((s) => s.slot)];
}

/** One line saying what was under way. */
export function describePending(p: Pending): string {
  // `created` and a parse error can carry any text a crafted header holds: shown through safeText.
  if (!p.intent) return `zkluks-pending token ${p.tokenId} is unreadable (${safeText(p.error)})`;
  const i = p.intent;
  const added = i.added.slots.map((s) => s.slot);
  const wiped = i.removed.slots.map((s) => s.slot);
  return `an interrupted ${i.operation} (started ${safeText(i.created)}, phase ${i.phase}: ${i.phase === 'add' ? 'new keys were being added; the next zkluks run rolls them back' : 'the new keys were added, verified and delivered; the next zkluks run finishes removing the old ones'}): adds keyslot ${added.join(', ') || 'none'} and token ${i.added.tokens.join(', ') || 'none'}; removes token ${i.removed.tokens.map((t) => t.id).join(', ') || 'none'} and keyslot ${wiped.join(', ') || 'none'}`;
}

export function serializePending(intent: PendingIntent): string {
  return JSON.stringify(intent);
}

/**
 * The intent of `plan` on the header `before`, in phase add: the slots and tokens its steps add, the
 * tokens it removes and the slots it wipes with their current salt.
 */
export function intentOf(plan: Plan, before: Pick<HeaderFacts, 'keyslots'>, created: Date): PendingIntent {
  const removedSlots = plan.steps.flatMap((s) => {
    if (s.op !== 'kill-slot') return [];
    const salt = before.keyslots.find((k) => k.id === s.slot)?.salt;
    if (!salt) throw new Error(`keyslot ${s.slot} has no KDF salt to record`);
    return [{ slot: s.slot, salt }];
  });
  return {
    type: PENDING_TOKEN_TYPE,
    keyslots: [],
    version: 1,
    operation: plan.operation,
    phase: 'add',
    created: created.toISOString(),
    added: {
      slots: plan.steps.flatMap((s) => (s.op === 'add-key' ? [{ slot: s.slot, salt: null }] : [])),
      tokens: plan.steps.flatMap((s) => (s.op === 'import-token' ? [s.tokenId] : [])),
    },
    removed: {
      tokens: plan.steps.flatMap((s) => (s.op === 'remove-token' ? [{ id: s.tokenId, type: s.type }] : [])),
      slots: removedSlots,
    },
  };
}
