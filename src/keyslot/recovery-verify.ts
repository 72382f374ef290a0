// The recovery key, read-only: does a key as typed open the recovery keyslot, and decrypt the
// escrowed copy with an age identity.
import { ZkluksError } from '../errors.ts';
import { keyOpensSlot } from './cryptsetup.ts';
import { openAgeEscrow } from './escrow.ts';
import { readHeader } from './header.ts';
import type { KeyslotDeps } from './operation.ts';
import { normalizeRecoveryKey } from './recovery-key.ts';
import { viewVolume } from './volume-view.ts';

export interface RecoveryVerifyReport {
  volume: string;
  ok: boolean;
  slot: number | null;
  tokenId: number | null;
  detail: string;
}

/** Does `key` (as typed) open the recovery keyslot? */
export async function verifyRecovery(
  deps: KeyslotDeps,
  volume: string,
  typed: string,
): Promise<RecoveryVerifyReport> {
  const view = viewVolume(await readHeader(deps.runner, volume));
  const r = view.recovery.find((x) => x.match !== 'mismatch') ?? view.recovery[0];
  if (!r) {
    return {
      volume,
      ok: false,
      slot: null,
      tokenId: null,
      detail: `'${volume}' has no zkluks-recovery token`,
    };
  }
  const key = normalizeRecoveryKey(typed) ?? typed.replace(/\r?\n$/, '');
  const ok = await keyOpensSlot(deps.runner, volume, key, r.slot);
  return {
    volume,
    ok,
    slot: r.slot,
    tokenId: r.tokenId,
    detail: ok
      ? `the recovery key opens keyslot ${r.slot}`
      : `the key given does not open recovery keyslot ${r.slot}`,
  };
}

/** Decrypt the escrowed recovery key with an age identity file. */
export async function unlockEscrow(
  deps: KeyslotDeps,
  volume: string,
  identityFile: string,
): Promise<{ key: string; slot: number }> {
  const view = viewVolume(await readHeader(deps.runner, volume));
  const r =
    view.recovery.find((x) => x.token.escrow && x.match !== 'mismatch') ??
    view.recovery.find((x) => x.token.escrow);
  if (!r?.token.escrow) {
    const problem = view.problems.find((p) => p.type === 'zkluks-recovery');
    if (problem) throw problem.error;
    throw new ZkluksError(
      `Failed to open the escrowed recovery key of '${volume}': it has no escrowed recovery key`,
      {
        hint: `zkluks recovery add --force --escrow age1… '${volume}'`,
      },
    );
  }
  return { key: await openAgeEscrow(deps.runner, r.token.escrow, identityFile), slot: r.slot };
}
