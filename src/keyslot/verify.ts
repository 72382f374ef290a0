// zkluks verify: would the Zymkey slot unlock this volume at boot? Read-only: unseal, then
// --test-passphrase. It also names a change an interruption left in the header.
import { readHeader } from './header.ts';
import type { KeyslotDeps } from './operation.ts';
import { describePending, findPending } from './pending.ts';
import { ZYMKEY_TOKEN_TYPE } from './token.ts';
import { viewVolume } from './volume-view.ts';
import type { ZymkeyCheck } from './zymkey-check.ts';
import { zymkeyChecksOnly } from './zymkey-tokens.ts';

export interface VerifyReport extends ZymkeyCheck {
  volume: string;
  ok: boolean;
  checks: ZymkeyCheck[];
  /** Changes an interruption left recorded in the header (the next zkluks change settles them). */
  interrupted: string[];
}

/** Would the Zymkey slot unlock this volume at boot? Read-only: unseal, then --test-passphrase. */
export async function verifyZymkey(deps: KeyslotDeps, volume: string): Promise<VerifyReport> {
  const header = await readHeader(deps.runner, volume);
  const view = viewVolume(header);
  const interrupted = findPending(header).map(describePending);
  const checks = await zymkeyChecksOnly(deps, view);
  const ok = checks.find((c) => c.opens);
  const problem = view.problems.find((p) => p.type === ZYMKEY_TOKEN_TYPE);
  const first: ZymkeyCheck =
    ok ??
    checks[0] ??
    (problem
      ? {
          tokenId: problem.tokenId,
          slot: problem.slot,
          opens: false,
          reason: problem.kind === 'corrupt' ? 'corrupt-token' : 'slot-gone',
          zymkeyReason: null,
          detail: problem.error.message,
        }
      : {
          tokenId: null,
          slot: null,
          opens: false,
          reason: 'no-token',
          zymkeyReason: null,
          detail: `'${volume}' has no zkluks-zymkey token: it is not enrolled`,
        });
  return { volume, ok: first.opens, ...first, checks, interrupted };
}
