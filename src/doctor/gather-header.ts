// The LUKS2 header through the keyslot subsystem's reader and token parsers, reduced to the doctor's view.
import type { Runner } from '../exec.ts';
import { readHeader, readHeaderChecksum } from '../keyslot/header.ts';
import { describePending, findPending, PENDING_TOKEN_TYPE, pendingSlots } from '../keyslot/pending.ts';
import {
  parseRecoveryToken,
  parseZymkeyToken,
  RECOVERY_TOKEN_TYPE,
  ZYMKEY_TOKEN_TYPE,
} from '../keyslot/token.ts';
import { slotMatch } from '../keyslot/volume-view.ts';
import { known, unreadable, type Fact, type HeaderFacts, type TokenFacts } from './facts.ts';

function problemOf(error: unknown): string {
  const e = error as { problem?: unknown; message?: unknown };
  return typeof e.problem === 'string' ? e.problem : String(e.message ?? error);
}

export async function gatherHeader(runner: Runner, volume: string): Promise<Fact<HeaderFacts>> {
  let header;
  try {
    header = await readHeader(runner, volume, { concurrent: true });
  } catch (error) {
    return unreadable(error instanceof Error ? error.message : String(error));
  }
  const tokens = header.tokens.map((t): TokenFacts => {
    const base: TokenFacts = { id: t.id, type: t.type, keyslots: t.keyslots, valid: true, problem: null };
    if (t.type === PENDING_TOKEN_TYPE) {
      const p = findPending({ tokens: [t] })[0];
      if (p) {
        base.pending = {
          operation: p.intent?.operation ?? null,
          phase: p.intent?.phase ?? null,
          slots: p.intent ? pendingSlots(p.intent) : [],
          description: describePending(p),
        };
      }
      return base;
    }
    if (t.type === ZYMKEY_TOKEN_TYPE || t.type === RECOVERY_TOKEN_TYPE) {
      base.slotMatch = slotMatch(header, t.json, t.keyslots[0] ?? null);
    }
    try {
      if (t.type === ZYMKEY_TOKEN_TYPE) {
        const z = parseZymkeyToken(t.json, { volume, tokenId: t.id });
        return { ...base, sealed: z.sealed, backend: z.backend, zymkey: { ...z.zymkey }, created: z.created };
      }
      if (t.type === RECOVERY_TOKEN_TYPE) {
        const r = parseRecoveryToken(t.json, { volume, tokenId: t.id });
        return { ...base, escrowRecipient: r.escrow?.recipient ?? null, created: r.created };
      }
    } catch (error) {
      // A token left dangling by luksKillSlot fails the parser for having no keyslot; that is its
      // own finding, so only other defects count as corruption.
      const problem = problemOf(error);
      return t.keyslots.length === 0 && /no keyslot/.test(problem)
        ? base
        : { ...base, valid: false, problem };
    }
    return base;
  });
  return known({
    uuid: header.uuid,
    keyslots: header.keyslots.map((k) => ({ id: k.id, kdf: k.kdf, priority: k.priority })),
    tokens,
    checksum: await readHeaderChecksum(volume),
  });
}
