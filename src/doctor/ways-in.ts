// Which keyslots need the Zymkey and which do not: the question behind "is there a recovery path?".
// Several checks ask it, so it is answered once here from the facts.
import { valueOf, type Facts } from './facts.ts';

/** Why a keyslot that needs no Zymkey token is not a proven way in. */
export type UnprovenReason =
  /** No token names it: a passphrase, or a key nobody holds. */
  | 'no-token'
  /** Only another tool's token names it (systemd, clevis…): it opens with what that tool holds. */
  | 'other-token'
  /** A zkluks-recovery token names it, but recorded another slot's salt (or none). */
  | 'unverified'
  /** An interrupted zkluks change adds or wipes it. */
  | 'pending';

export interface UnprovenSlot {
  id: number;
  reason: UnprovenReason;
  /** The other tool's token type, for `other-token`. */
  tokenType?: string;
}

export interface WaysIn {
  /** Known at all: false when the header could not be read. */
  known: boolean;
  /** Slots that open only with a key the Zymkey unseals. */
  zymkeySlots: number[];
  /** Slots with a zkluks-recovery token (not one copied from another volume). */
  recoverySlots: number[];
  /**
   * Slots proven to open without the Zymkey from the header alone: a recovery slot whose token
   * recorded its current salt, tried at the boot prompt (priority not ignore). What "there is a
   * recovery path" rests on, as for `list` and the lock-out rule (keyslot/volume-view.ts).
   */
  provenSlots: number[];
  /** Slots that may open without the Zymkey, but the header does not prove it (tried at the prompt). */
  unproven: UnprovenSlot[];
  /** Slots besides the Zymkey's of priority ignore: the boot prompt never tries them. */
  ignoredSlots: number[];
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

/** Every keyslot besides the Zymkey's, proven or not, tried at the prompt or not. */
export function slotsWithoutZymkey(ways: WaysIn): number[] {
  return [...ways.provenSlots, ...ways.unproven.map((u) => u.id), ...ways.ignoredSlots].sort((a, b) => a - b);
}

/** What the header says of each unproven slot, e.g. "slot 0 has no token: zkluks cannot tell …". */
export function describeUnproven(ways: WaysIn, u: UnprovenSlot): string {
  switch (u.reason) {
    case 'no-token':
      return ways.zymbitLayout
        ? `slot ${u.id} has no token: zkluks cannot tell whether a passphrase opens it or, as on Zymbit's layout, the key sealed in key.bin.lock`
        : `slot ${u.id} has no token: zkluks cannot tell whether a passphrase opens it or a key nobody holds`;
    case 'other-token':
      return `slot ${u.id} belongs to a ${u.tokenType ?? 'non-zkluks'} token: it opens with what that tool holds, not a key zkluks knows of`;
    case 'unverified':
      return `slot ${u.id}'s zkluks-recovery token did not record this slot's salt: it may not have been made for it`;
    case 'pending':
      return `slot ${u.id} is being added or wiped by an interrupted zkluks change`;
  }
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
  if (!header) {
    return {
      known: false,
      zymkeySlots: [],
      recoverySlots: [],
      provenSlots: [],
      unproven: [],
      ignoredSlots: [],
      ...base,
    };
  }
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
  const pending = header.tokens.flatMap((t) => t.pending?.slots ?? []);
  const rest = header.keyslots.filter((k) => !zymkeySlots.includes(k.id));
  const ignoredSlots = rest.filter((k) => k.priority === 'ignore').map((k) => k.id);
  const tried = rest.filter((k) => k.priority !== 'ignore').map((k) => k.id);
  const proven = (s: number) =>
    !pending.includes(s) &&
    header.tokens.some(
      (t) => t.type === 'zkluks-recovery' && t.valid && t.slotMatch === 'match' && t.keyslots.includes(s),
    );
  const provenSlots = tried.filter(proven);
  const unproven = tried
    .filter((s) => !proven(s))
    .map((id): UnprovenSlot => {
      const tokens = header.tokens.filter((t) => t.keyslots.includes(id));
      if (pending.includes(id)) return { id, reason: 'pending' };
      if (tokens.some((t) => t.type === 'zkluks-recovery')) return { id, reason: 'unverified' };
      const other = tokens.find((t) => !t.type.startsWith('zkluks-'));
      return other ? { id, reason: 'other-token', tokenType: other.type } : { id, reason: 'no-token' };
    });
  return { known: true, zymkeySlots, recoverySlots, provenSlots, unproven, ignoredSlots, ...base };
}
