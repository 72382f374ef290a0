// Does this key open the volume? The doctor asks through the keyslot subsystem's testKey
// (`cryptsetup open --test-passphrase`, nothing activated) and wants the slot that opened, or null
// for any failure: a finding, never a crash.
import type { Runner } from '../exec.ts';
import { testKey } from '../keyslot/cryptsetup.ts';

/** The slot `key` opens (only `slot` when given), or null. */
export async function keyOpens(
  runner: Runner,
  volume: string,
  key: Buffer,
  slot: number | null,
): Promise<number | null> {
  const r = await testKey(runner, volume, { bytes: key }, slot ?? undefined);
  return r.opens ? r.slot : null;
}

/** The slot the key file at `file` opens, or null. */
export async function keyFileOpens(runner: Runner, volume: string, file: string): Promise<number | null> {
  const r = await testKey(runner, volume, { file });
  return r.opens ? r.slot : null;
}
