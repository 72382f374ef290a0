// The module through the Zymkey port: info, binding, perimeter, a keyless crypto call, and an
// unseal of the sealed key tested against its keyslot. The unsealed key never leaves this function.
import { readFileSync } from 'node:fs';
import { ZymkeyUnavailableError } from '../errors.ts';
import type { Runner } from '../exec.ts';
import type { ZymkeyPort } from '../device/port.ts';
import { under } from '../root-path.ts';
import { readManifestState } from '../initramfs/manifest-verdict.ts';
import {
  known,
  unavailable,
  unreadable,
  type Fact,
  type HeaderFacts,
  type SupervisedBootFacts,
  type ZymkeyFacts,
} from './facts.ts';
import { keyOpens } from './key-test.ts';

async function ask<T>(call: () => Promise<T>): Promise<Fact<T>> {
  try {
    return known(await call());
  } catch (error) {
    if (error instanceof ZymkeyUnavailableError) return unreadable(error.message, error.reason);
    return unreadable(error instanceof Error ? error.message : String(error));
  }
}

interface SealedKey {
  source: string;
  tokenId: number | null;
  slot: number | null;
  sealed: Buffer;
  /** The serial of the module that sealed it, as the token recorded it. */
  sealedBy?: string;
}

function sealedKey(root: string, header: HeaderFacts | undefined): SealedKey | null {
  const token = header?.tokens.find((t) => t.type === 'zkluks-zymkey' && t.valid && t.sealed);
  if (token?.sealed) {
    return {
      source: `token ${token.id}`,
      tokenId: token.id,
      slot: token.keyslots[0] ?? null,
      sealed: Buffer.from(token.sealed, 'base64'),
      ...(token.zymkey ? { sealedBy: token.zymkey.serial } : {}),
    };
  }
  const lock = '/var/lib/zymbit/key.bin.lock';
  try {
    const sealed = readFileSync(under(root, lock));
    const only = header?.keyslots.length === 1 ? (header.keyslots[0]?.id ?? null) : null;
    return { source: lock, tokenId: null, slot: only, sealed };
  } catch {
    return null;
  }
}

/** The module answers no API call: its info is unreadable, or unknown (the Python API's client is None). */
function apiSilent(info: Fact<{ model: string }>): boolean {
  return !info.ok || info.value.model === 'unknown';
}

export async function gatherZymkey(opts: {
  port: ZymkeyPort;
  runner: Runner;
  root: string;
  volumePath: string | null;
  header: HeaderFacts | undefined;
}): Promise<ZymkeyFacts> {
  const { port } = opts;
  const info = await ask(() => port.info());
  const binding = await ask(() => port.binding());
  const perimeter = await ask(() => port.perimeter());
  const rng = await ask(async () => {
    await port.randomBytes(16);
    return true as const;
  });
  const key = sealedKey(opts.root, opts.header);
  let unseal: ZymkeyFacts['unseal'];
  if (!key) unseal = unavailable('no sealed key: no zkluks-zymkey token and no /var/lib/zymbit/key.bin.lock');
  else if (!rng.ok && rng.code === 'timeout' && apiSilent(info)) {
    // A tool that hung is stopped only at its deadline: a module that let zkgrifs hang and answers no
    // API call would let zkunlockifs hang as long, and its answer could tell nothing more.
    unseal = unreadable(
      `test unseal of the key in ${key.source} skipped because the module did not answer: ${rng.reason}`,
      'timeout',
    );
  } else {
    const plain = await ask(() =>
      port.unseal(key.sealed, key.sealedBy === undefined ? {} : { sealedBy: key.sealedBy }),
    );
    if (!plain.ok) unseal = plain;
    else {
      const opened = opts.volumePath
        ? await keyOpens(opts.runner, opts.volumePath, plain.value, key.slot)
        : null;
      plain.value.fill(0);
      unseal = known({
        source: key.source,
        tokenId: key.tokenId,
        opensSlot: opts.volumePath && opts.header ? opened !== null : null,
        slot: opened,
      });
    }
  }
  return { backend: port.backend, info, binding, perimeter, rng, unseal };
}

/** An SCM's manifest against the boot partition; unavailable when no SCM supervises this Pi. */
export async function gatherSupervisedBoot(
  port: ZymkeyPort,
  root: string,
): Promise<Fact<SupervisedBootFacts>> {
  const state = await readManifestState(port, root);
  if (state.status === 'none')
    return unavailable('no Zymbit SCM: nothing verifies the boot files before boot');
  if (state.status === 'unreadable') return unreadable(state.reason);
  return known({ bootPartition: state.bootPartition, entries: state.entries, takenOut: state.takenOut });
}
