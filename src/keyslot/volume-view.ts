// What each keyslot of a volume is for, from the header facts: a Zymkey slot (our valid token), a
// recovery slot (our recovery token), a slot some other tool's token owns, a slot an interrupted
// change is adding or removing, or `unknown` (no token says: a passphrase, or a key nobody holds) —
// plus every zkluks token that cannot be used and why. Pure; `list`, the planners and the doctor
// read it.
import type { HeaderFacts, KeyslotFacts, KeyslotPriority } from './header.ts';
import { findPending, pendingSlots } from './pending.ts';
import {
  RECOVERY_TOKEN_TYPE,
  TokenError,
  ZYMKEY_TOKEN_TYPE,
  isZkluksTokenType,
  parseRecoveryToken,
  parseZymkeyToken,
  type RecoveryToken,
  type ZkluksTokenType,
  type ZymkeyToken,
} from './token.ts';

/**
 * `unknown`: no token names it, so what opens it cannot be told from the header — a passphrase, or
 * a key lost with an interrupted change. `unverified`: named only by zkluks tokens made for another
 * keyslot (their recorded salt differs). `pending`: added or to be wiped by an interrupted change.
 * None of these counts as a way in without the Zymkey unless a key given this run opens it.
 */
export type SlotKind = 'zymkey' | 'recovery' | 'unknown' | 'other-token' | 'unverified' | 'pending';

export interface SlotView {
  id: number;
  kind: SlotKind;
  kdf: string;
  iterations: number | null;
  priority: KeyslotPriority;
  /** Ids and types of the tokens assigned to this slot. */
  tokens: Array<{ id: number; type: string }>;
}

/**
 * Whether a zkluks token was made for the keyslot it names now: the `keyslot_salt` it recorded
 * against that slot's current KDF salt (new for every key added). `mismatch` is a token copied from
 * another volume, or a slot replaced since; `unrecorded` a token that holds no salt.
 */
export type SlotMatch = 'match' | 'mismatch' | 'unrecorded';

export interface OurToken<T> {
  tokenId: number;
  slot: number;
  token: T;
  match: SlotMatch;
}

/** A zkluks token that cannot be used. */
export interface TokenProblem {
  tokenId: number;
  type: ZkluksTokenType;
  /** dangling: its keyslot was killed; slot-gone: it names a slot that does not exist; corrupt: malformed. */
  kind: 'dangling' | 'slot-gone' | 'corrupt';
  /** The slot it names, when it names one that can be read. */
  slot: number | null;
  /** Whether a salt it records (readable even in a corrupt token) matches that slot's. */
  match: SlotMatch;
  error: TokenError;
}

export interface VolumeView {
  header: HeaderFacts;
  slots: SlotView[];
  zymkey: Array<OurToken<ZymkeyToken>>;
  recovery: Array<OurToken<RecoveryToken>>;
  problems: TokenProblem[];
}

/** Compare the `keyslot_salt` a token (valid or not) records with the salt of the slot it names. */
export function slotMatch(
  header: HeaderFacts,
  json: Record<string, unknown>,
  slot: number | null,
): SlotMatch {
  const recorded = json.keyslot_salt;
  if (typeof recorded !== 'string' || recorded === '') return 'unrecorded';
  const current = header.keyslots.find((k) => k.id === slot)?.salt;
  return current !== undefined && current !== null && current === recorded ? 'match' : 'mismatch';
}

function problemOf(
  header: HeaderFacts,
  tokenId: number,
  type: ZkluksTokenType,
  json: Record<string, unknown>,
  error: TokenError,
): TokenProblem {
  const slots = Array.isArray(json.keyslots) ? json.keyslots : null;
  if (slots !== null && slots.length === 0) {
    const e = new TokenError(type, 'its keyslot was removed (dangling token)', {
      volume: header.volume,
      tokenId,
    });
    return { tokenId, type, kind: 'dangling', slot: null, match: 'unrecorded', error: e };
  }
  const first = slots?.[0];
  const slot = typeof first === 'string' && /^\d+$/.test(first) ? Number(first) : null;
  return { tokenId, type, kind: 'corrupt', slot, match: slotMatch(header, json, slot), error };
}

export function viewVolume(header: HeaderFacts): VolumeView {
  const context = (tokenId: number) => ({ volume: header.volume, tokenId });
  const zymkey: Array<OurToken<ZymkeyToken>> = [];
  const recovery: Array<OurToken<RecoveryToken>> = [];
  const problems: TokenProblem[] = [];
  const slotIds = new Set(header.keyslots.map((k) => k.id));
  for (const t of header.tokens) {
    if (!isZkluksTokenType(t.type)) continue;
    try {
      if (t.type === ZYMKEY_TOKEN_TYPE) {
        const token = parseZymkeyToken(t.json, context(t.id));
        const slot = Number(token.keyslots[0]);
        zymkey.push({ tokenId: t.id, slot, token, match: slotMatch(header, t.json, slot) });
      } else {
        const token = parseRecoveryToken(t.json, context(t.id));
        const slot = Number(token.keyslots[0]);
        recovery.push({ tokenId: t.id, slot, token, match: slotMatch(header, t.json, slot) });
      }
    } catch (error) {
      if (!(error instanceof TokenError)) throw error;
      problems.push(problemOf(header, t.id, t.type, t.json, error));
    }
  }
  // A token naming a slot the header does not have (cryptsetup refuses to import one, but a header
  // edited by hand or restored from elsewhere can hold it).
  for (const list of [zymkey, recovery] as Array<Array<OurToken<ZymkeyToken | RecoveryToken>>>) {
    for (let i = list.length - 1; i >= 0; i--) {
      const ours = list[i] as OurToken<ZymkeyToken | RecoveryToken>;
      if (slotIds.has(ours.slot)) continue;
      list.splice(i, 1);
      const error = new TokenError(ours.token.type, `it names keyslot ${ours.slot}, which does not exist`, {
        volume: header.volume,
        tokenId: ours.tokenId,
      });
      problems.push({
        tokenId: ours.tokenId,
        type: ours.token.type,
        kind: 'slot-gone',
        slot: ours.slot,
        match: ours.match,
        error,
      });
    }
  }
  const pending = findPending(header).flatMap((p) => (p.intent ? pendingSlots(p.intent) : []));
  const slots = header.keyslots.map((k: KeyslotFacts): SlotView => {
    const tokens = header.tokens
      .filter((t) => t.keyslots.includes(k.id))
      .map((t) => ({ id: t.id, type: t.type }));
    // A zkluks token made for another keyslot (its recorded salt differs) does not say what this
    // slot is; when only such tokens name it, the slot is unverified.
    const ours = [...[...zymkey, ...recovery].map((o) => ({ ...o, type: o.token.type })), ...problems].filter(
      (o) => o.slot === k.id,
    );
    const trusted = ours.filter((o) => o.match !== 'mismatch');
    let kind: SlotKind = 'unknown';
    if (pending.includes(k.id)) kind = 'pending';
    else if (ours.length > 0 && trusted.length === 0) kind = 'unverified';
    else if (trusted.some((o) => o.type === ZYMKEY_TOKEN_TYPE)) kind = 'zymkey';
    else if (trusted.some((o) => o.type === RECOVERY_TOKEN_TYPE)) kind = 'recovery';
    else if (tokens.some((t) => !ours.some((o) => o.tokenId === t.id))) kind = 'other-token';
    return { id: k.id, kind, kdf: k.kdf, iterations: k.iterations, priority: k.priority, tokens };
  });
  problems.sort((a, b) => a.tokenId - b.tokenId);
  return { header, slots, zymkey, recovery, problems };
}

/**
 * Keyslots proven to open without the Zymkey or other hardware: a recovery slot whose token recorded
 * its current salt, or a slot in `proven` (a key given this run was tested against it). A slot of
 * priority ignore is never one: the boot prompt does not try it.
 */
export function waysInWithoutZymkey(view: VolumeView, proven: readonly number[] = []): SlotView[] {
  return view.slots.filter(
    (s) =>
      s.priority !== 'ignore' &&
      ((s.kind === 'recovery' && view.recovery.some((r) => r.slot === s.id && r.match === 'match')) ||
        proven.includes(s.id)),
  );
}

/** Lowest keyslot id not in use. */
export function freeKeyslots(header: HeaderFacts, taken: readonly number[] = []): number[] {
  const used = new Set([...header.keyslots.map((k) => k.id), ...taken]);
  const free: number[] = [];
  for (let id = 0; id < 32; id++) if (!used.has(id)) free.push(id);
  return free;
}

/** Token ids not in use. */
export function freeTokenIds(header: HeaderFacts, taken: readonly number[] = []): number[] {
  const used = new Set([...header.tokens.map((t) => t.id), ...taken]);
  const free: number[] = [];
  for (let id = 0; id < 32; id++) if (!used.has(id)) free.push(id);
  return free;
}
