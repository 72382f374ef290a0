// Unseal each zkluks-zymkey token with the Zymkey and test its key against its keyslot: what
// enroll, rotate, remove and verify need to know about the current enrollment.
import type { ZymkeyPort } from '../device/port.ts';
import { ZymkeyUnavailableError } from '../errors.ts';
import { keyOpensSlot } from './cryptsetup.ts';
import type { KeyslotDeps } from './operation.ts';
import { sealedKey } from './token.ts';
import type { VolumeView } from './volume-view.ts';
import type { ZymkeyCheck } from './zymkey-check.ts';

export interface Checked {
  checks: ZymkeyCheck[];
  /** Unsealed keys of the tokens that open their slot, by token id. */
  keys: Map<number, Buffer>;
}

/** Unseal each valid zkluks-zymkey token and test it against its keyslot. */
export async function checkZymkeyTokens(deps: KeyslotDeps, view: VolumeView): Promise<Checked> {
  const checks: ZymkeyCheck[] = [];
  const keys = new Map<number, Buffer>();
  let port: ZymkeyPort | null = null;
  for (const z of view.zymkey) {
    const base = { tokenId: z.tokenId, slot: z.slot };
    let key: Buffer;
    try {
      port ??= deps.zymkey();
      key = await port.unseal(sealedKey(z.token), { sealedBy: z.token.zymkey.serial });
    } catch (error) {
      if (!(error instanceof ZymkeyUnavailableError)) throw error;
      checks.push({
        ...base,
        opens: false,
        reason: 'zymkey-unavailable',
        zymkeyReason: error.reason,
        detail: error.message,
        ...(error.hint ? { hint: error.hint } : {}),
      });
      continue;
    }
    if (await keyOpensSlot(deps.runner, view.header.volume, key, z.slot)) {
      keys.set(z.tokenId, key);
      checks.push({
        ...base,
        opens: true,
        reason: 'ok',
        zymkeyReason: null,
        detail: `the unsealed key opens keyslot ${z.slot}`,
      });
    } else {
      key.fill(0);
      checks.push({
        ...base,
        opens: false,
        reason: 'key-rejected',
        zymkeyReason: null,
        detail: `the Zymkey unsealed token ${z.tokenId}, but its key does not open keyslot ${z.slot}${z.match === 'mismatch' ? ': the token was not made for that keyslot (its recorded keyslot salt differs: a token copied from another volume, or a keyslot replaced since)' : ' (a token copied from another volume, or a replaced keyslot)'}`,
      });
    }
  }
  return { checks, keys };
}

/** The checks alone; every unsealed key is wiped at once. */
export async function zymkeyChecksOnly(deps: KeyslotDeps, view: VolumeView): Promise<ZymkeyCheck[]> {
  const { checks, keys } = await checkZymkeyTokens(deps, view);
  for (const k of keys.values()) k.fill(0);
  return checks;
}

/** The checks, and the unsealed key of the first token that opens its slot (the others are wiped). */
export async function workingZymkeyKey(
  deps: KeyslotDeps,
  view: VolumeView,
): Promise<{ checks: ZymkeyCheck[]; key: Buffer | undefined }> {
  const { checks, keys } = await checkZymkeyTokens(deps, view);
  const working = checks.find((c) => c.opens)?.tokenId ?? null;
  for (const [id, k] of keys) if (id !== working) k.fill(0);
  return { checks, key: working === null ? undefined : keys.get(working) };
}
