// Whether a zkluks-zymkey token would unlock its keyslot now: the outcome of unsealing its key
// with the Zymkey and testing it against the slot. Gathered before planning, shown by `verify`.
import type { ZymkeyFailure } from '../errors.ts';

export type ZymkeyCheckReason =
  'ok' | 'no-token' | 'corrupt-token' | 'slot-gone' | 'zymkey-unavailable' | 'key-rejected';

export interface ZymkeyCheck {
  tokenId: number | null;
  slot: number | null;
  opens: boolean;
  reason: ZymkeyCheckReason;
  /** For zymkey-unavailable: the Zymkey's own failure code. */
  zymkeyReason: ZymkeyFailure | null;
  /** One line saying what happened. */
  detail: string;
  /** What to do about it, when the failure names its own fix (the Zymkey's hint). */
  hint?: string;
}
