// Which keyslots need the Zymkey and which do not: the question behind "is there a recovery path?".
// Several checks ask it, so it is answered once here from the facts.
import { valueOf, type Facts } from './facts.ts';

export interface WaysIn {
  /** Known at all: false when the header could not be read. */
  known: boolean;
  /** Slots that open only with a key the Zymkey unseals. */
  zymkeySlots: number[];
  /** Slots with a zkluks-recovery token. */
  recoverySlots: number[];
  /** Every slot that opens without the Zymkey (recovery keys, passphrases, other key files). */
  otherSlots: number[];
  /** The volume was set up by Zymbit's mk_encr_sd_rfs.sh (key.bin.lock, zk_get_key keyscript). */
  zymbitLayout: boolean;
  /**
   * What a keyslot command needs on Zymbit's layout to authorize a change (the sealed key.bin.lock,
   * since such a Pi never had a passphrase), with --root when not on the live system; '' otherwise.
   */
  zymbitAuthority: string;
  /** The name to put in commands: the volume as the user knows it. */
  volume: string;
  /** The crypttab (device-mapper) name, when known. */
  mapping: string | null;
}

export function waysIn(facts: Facts): WaysIn {
  const volume = valueOf(facts.volume);
  const header = valueOf(facts.header);
  const entry = valueOf(facts.crypttab)?.entries.find((e) => e.name === volume?.crypttabName);
  const keyscript = entry?.options.find((o) => o.startsWith('keyscript='))?.slice('keyscript='.length) ?? '';
  const zymbitState = valueOf(facts.zymbitState);
  const zymbitLayout =
    /zk_get_key$/.test(keyscript) || (zymbitState?.files.some((f) => f.path === 'key.bin.lock') ?? false);
  const hasLock = zymbitState?.files.some((f) => f.path === 'key.bin.lock') ?? false;
  const ourToken = header?.tokens.some((t) => t.type === 'zkluks-zymkey') ?? false;
  const base = {
    // The path commands can open (found through the tree's /dev for --root), else the name as written.
    volume: volume ? (volume.present === false ? volume.name : volume.path) : 'VOLUME',
    mapping: volume?.crypttabName ?? null,
    zymbitLayout,
    zymbitAuthority:
      hasLock && !ourToken
        ? ` --unlock-zymbit-key${facts.root && facts.root !== '/' ? ` --root ${facts.root}` : ''}`
        : '',
  };
  if (!header) return { known: false, zymkeySlots: [], recoverySlots: [], otherSlots: [], ...base };
  const slots = header.keyslots.map((k) => k.id);
  // A zkluks-zymkey token counts even when copied from elsewhere (the cautious reading: that slot may
  // need the Zymkey); a copied zkluks-recovery token names no recovery key of this volume.
  const tokenSlots = (type: string) =>
    header.tokens
      .filter((t) => t.type === type && (type === 'zkluks-zymkey' || t.slotMatch !== 'mismatch'))
      .flatMap((t) => t.keyslots.filter((s) => slots.includes(s)));
  let zymkeySlots = tokenSlots('zkluks-zymkey');
  const recoverySlots = tokenSlots('zkluks-recovery');
  // Zymbit's own script formats the volume with the sealed key as its one and only slot; once other
  // slots are added beside it (a recovery key first), it is the slot key.bin.lock's key opened.
  const unsealed = valueOf(facts.zymkey)?.unseal;
  const lockSlot =
    unsealed?.ok && unsealed.value.tokenId === null && typeof unsealed.value.slot === 'number'
      ? unsealed.value.slot
      : null;
  if (zymkeySlots.length === 0 && zymbitLayout) {
    if (lockSlot !== null && slots.includes(lockSlot)) zymkeySlots = [lockSlot];
    else if (slots.length === 1) zymkeySlots = slots;
  }
  const otherSlots = slots.filter((s) => !zymkeySlots.includes(s));
  return { known: true, zymkeySlots, recoverySlots, otherSlots, ...base };
}
