// The key Zymbit's mk_encr_sd_rfs.sh sealed to /var/lib/zymbit/key.bin.lock, as the authority for a
// keyslot change on a Pi that never had a passphrase: read the sealed file, unseal it through the
// Zymkey port, and prove it opens the volume. The plaintext stays in memory (the caller wipes it)
// and reaches cryptsetup only on stdin.
import { readFile } from 'node:fs/promises';
import type { ZymkeyPort } from '../device/port.ts';
import { ZkluksError, ZymkeyUnavailableError } from '../errors.ts';
import type { Runner } from '../exec.ts';
import { under } from '../root-path.ts';
import { testKey } from './cryptsetup.ts';

/** Where Zymbit's script keeps the sealed key (phase 2 of mk_encr_sd_rfs.sh). */
export const ZYMBIT_KEY_LOCK = '/var/lib/zymbit/key.bin.lock';

/**
 * The sealed file to read: `file` as given (a path on this machine), or, when none is given,
 * Zymbit's key.bin.lock inside the system tree at `root`.
 */
export function zymbitKeyPath(root: string, file?: string | null): string {
  return file ? file : under(root, ZYMBIT_KEY_LOCK);
}

export interface ZymbitKey {
  /** The unsealed key; wipe it with fill(0) when done. */
  key: Buffer;
  /** The keyslot it opened. */
  slot: number;
  /** The sealed file it came from. */
  path: string;
}

/** Read the sealed file and unseal it with the Zymkey (nothing is tested yet). */
export async function readZymbitKey(
  deps: { zymkey: () => ZymkeyPort },
  path: string,
  volume: string,
): Promise<Buffer> {
  let sealed: Buffer;
  try {
    sealed = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ZkluksError(`Failed to read Zymbit's sealed key '${path}': ${code}`, {
      hint: `ls -l '${path}'; a Pi that has a passphrase or recovery key can authorize with --unlock-key-file FILE instead`,
    });
  }
  try {
    return await deps.zymkey().unseal(sealed);
  } catch (error) {
    if (!(error instanceof ZymkeyUnavailableError)) throw error;
    throw new ZymkeyUnavailableError(
      error.reason,
      `Failed to unseal Zymbit's sealed key '${path}': ${error.message}`,
      { hint: error.hint ?? `zkluks doctor '${volume}'`, cause: error },
    );
  }
}

/** Unseal `path` with the Zymkey and test the key against `volume`; throws a teaching error otherwise. */
export async function unsealZymbitKey(
  deps: { runner: Runner; zymkey: () => ZymkeyPort },
  volume: string,
  path: string,
): Promise<ZymbitKey> {
  const key = await readZymbitKey(deps, path, volume);
  const tested = await testKey(deps.runner, volume, { bytes: key });
  if (!tested.opens) {
    key.fill(0);
    if (tested.exitCode === 2 || /No key available/i.test(tested.stderr)) {
      throw new ZkluksError(
        `Failed to use Zymbit's sealed key '${path}': the Zymkey unsealed it, but the key does not open any keyslot of '${volume}'`,
        {
          hint: `check the volume is the one Zymbit's script encrypted (grep cryptrfs /etc/crypttab), or authorize with --unlock-key-file FILE`,
        },
      );
    }
    throw new ZkluksError(
      `Failed to test Zymbit's key against '${volume}': ${tested.stderr.trim() || `cryptsetup exited ${tested.exitCode}`}`,
      { hint: `cryptsetup luksDump '${volume}'` },
    );
  }
  return { key, slot: tested.slot, path };
}
