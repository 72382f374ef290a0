// Everything the doctor knows about a system, gathered once. Every source is a Fact: either its
// value, or the reason it could not be read. A missing source becomes a finding, never a crash.
import type { EncryptionFacts } from './gather-encryption.ts';

export type Fact<T> =
  | { ok: true; value: T }
  | {
      ok: false;
      /** missing: not there; unreadable: there but could not be read; unavailable: not asked here. */
      status: 'missing' | 'unreadable' | 'unavailable';
      reason: string;
      /** For Zymkey failures: the ZymkeyFailure code (e.g. 'self-destructed'). */
      code?: string;
    };

export function known<T>(value: T): Fact<T> {
  return { ok: true, value };
}

export function missing<T>(reason: string): Fact<T> {
  return { ok: false, status: 'missing', reason };
}

export function unreadable<T>(reason: string, code?: string): Fact<T> {
  return code === undefined
    ? { ok: false, status: 'unreadable', reason }
    : { ok: false, status: 'unreadable', reason, code };
}

export function unavailable<T>(reason: string): Fact<T> {
  return { ok: false, status: 'unavailable', reason };
}

export function valueOf<T>(fact: Fact<T> | undefined): T | undefined {
  return fact?.ok ? fact.value : undefined;
}

export interface CrypttabEntryFacts {
  name: string;
  source: string;
  keyFile: string;
  options: string[];
  /** The 1-based line number in crypttab. */
  line: number;
  /** Whether the keyscript named in the options exists under --root; null without a keyscript. */
  keyscriptPresent: boolean | null;
}

export interface CrypttabFacts {
  path: string;
  entries: CrypttabEntryFacts[];
}

export interface VolumeFacts {
  /** The volume as named (argument or crypttab source). */
  name: string;
  /** The path the doctor read the header from (joined to --root for files inside it). */
  path: string;
  from: 'argument' | 'crypttab';
  /** The crypttab entry of this volume, when there is one. */
  crypttabName: string | null;
  /** False when neither the tree's /dev nor this host has it (src/root-device.ts). */
  present?: boolean;
}

export interface KeyslotFacts {
  id: number;
  kdf: string;
  priority: 'prefer' | 'normal' | 'ignore';
}

export interface TokenFacts {
  id: number;
  type: string;
  keyslots: number[];
  /** For zkluks tokens: whether the token parsed against its schema, and why not. */
  valid: boolean;
  problem: string | null;
  /** For zkluks tokens: whether the keyslot salt it recorded matches the slot it names now. */
  slotMatch?: 'match' | 'mismatch' | 'unrecorded';
  /** zkluks-zymkey: the sealed key (base64), the module it was sealed by and its binding then. */
  sealed?: string;
  backend?: string;
  zymkey?: { model: string; serial: string; binding: string };
  /** zkluks-recovery: escrowed to this age recipient. */
  escrowRecipient?: string | null;
  created?: string;
  /** zkluks-pending: the interrupted change it records, in one line (keyslot/pending.ts). */
  pending?: { operation: string | null; phase: string | null; slots: number[]; description: string };
}

export interface HeaderFacts {
  uuid: string;
  keyslots: KeyslotFacts[];
  tokens: TokenFacts[];
  /** The primary header's checksum field (hex), which every header write changes; null if unread. */
  checksum?: string | null;
}

/** The image's copy of a volume's token (the hook's, see the keyscript's make_copy). */
export interface TokenCopyFacts {
  /** The crypttab name it was made for. */
  name: string;
  /** The header checksum it was read under (hex). */
  csum: string;
  token: number;
  /** The sealed key it holds, as base64 (as the token stores it). */
  sealed: string;
}

export interface FileDigest {
  /** Path relative to the Zymbit state directory. */
  path: string;
  sha256: string;
}

export interface InitramfsFacts {
  /** The image the boot firmware will load, as a path under --root. */
  image: string;
  /** Why this image: e.g. "config.txt 'initramfs initrd.img followkernel'". */
  chosenBecause: string;
  /** Paths inside the image, without a leading './' or '/'. */
  files: string[];
  /** Kernel versions whose modules are inside the image (lib/modules/<v>). */
  kernelVersions: string[];
  /** Modules built into those kernels (the image's modules.builtin), named with '-'. */
  builtinModules?: string[];
  /** Digests of the Zymbit state inside the image (var/lib/zymbit/**). */
  zymbitState: FileDigest[];
  /** The token copies inside the image (etc/zkluks/tokens), whole ones only. */
  tokenCopies?: TokenCopyFacts[];
}

/** A file that may hold a key in plaintext: where it was found and whether it opens the volume. */
export interface KeyMaterialFacts {
  where: 'crypttab' | 'initramfs' | 'root filesystem';
  path: string;
  /** The keyslot the file opens (cryptsetup --test-passphrase), null if it opens none or was not tried. */
  opensSlot: number | null;
  tried: boolean;
}

export interface KernelFacts {
  /** `uname -r`, only when the doctor runs on the live system. */
  running: string | null;
  /** Versions with a /lib/modules/<v> directory. */
  installed: string[];
  /** Kernel images in /boot (vmlinuz-<v>, kernel*.img). */
  bootImages: string[];
}

export interface FirmwareConfigFacts {
  path: string;
  /** Effective lines (comments and blanks dropped), in order. */
  lines: string[];
}

export interface ZkenvFacts {
  path: string;
  wakePin: string | null;
}

export interface ZymbitStateFacts {
  path: string;
  files: FileDigest[];
}

export interface UnitFacts {
  activeState: string;
  journal: string[];
}

export interface BootRecordFacts {
  path: string;
  /** Seconds since the record was written, when known (file mtime against now). */
  fields: Record<string, string>;
  writtenAt: string;
}

export interface ZymkeyFacts {
  backend: 'zymbit' | 'sim';
  info: Fact<{ model: string; serial: string; firmware: string }>;
  binding: Fact<{ mode: 'developer' | 'production' | 'unknown'; bound: boolean | null }>;
  perimeter: Fact<
    { channel: 0 | 1; action: 'none' | 'notify' | 'self-destruct' | 'unknown'; firstBreach: string | null }[]
  >;
  /** A crypto call with no key involved (random bytes): does the module do crypto at all. */
  rng: Fact<true>;
  /** Unsealing the sealed key now (the key itself is discarded after testing it against the header). */
  unseal: Fact<{
    source: string;
    tokenId: number | null;
    opensSlot: boolean | null;
    /** The keyslot the unsealed key opened, when it opened one. */
    slot?: number | null;
  }>;
}

export interface SupervisedBootFacts {
  /** The boot partition the manifest's paths are relative to. */
  bootPartition: string;
  /** Each manifest file: matches / changed / missing against zkluks's record, or unrecorded. */
  entries: {
    file: string;
    path: string;
    state: 'matches' | 'changed' | 'missing' | 'unrecorded';
    recorded: { sha256: string; at: string; how: 'signed' | 'seen' } | null;
  }[];
  /** Files an interrupted `zkluks adopt` took out of the manifest and has yet to sign again. */
  takenOut: string[];
}

export interface I2cProbeFacts {
  status: 'ok' | 'conflict' | 'bus-missing' | 'bus-timeout' | 'unavailable';
  bus: number | null;
  busName: string | null;
  address: string;
  detail: string;
}

export interface Facts {
  root: string;
  /** Whether the doctor runs on the live system (--root /): live-only sources are read. */
  live: boolean;
  volume: Fact<VolumeFacts>;
  crypttab: Fact<CrypttabFacts>;
  header: Fact<HeaderFacts>;
  initramfs: Fact<InitramfsFacts>;
  /** Files that look like plaintext keys (crypttab key files, key.bin, *.key in the image). */
  keyMaterial: KeyMaterialFacts[];
  kernel: KernelFacts;
  firmwareConfig: Fact<FirmwareConfigFacts>;
  kernelCmdline: Fact<string>;
  zkenv: Fact<ZkenvFacts>;
  piModel: Fact<string>;
  zymbitState: Fact<ZymbitStateFacts>;
  initramfsModules: Fact<string>;
  unattendedUpgrades: Fact<boolean>;
  cpuGovernor: Fact<string>;
  /** /etc/kernel/postinst.d/initramfs-tools: the file's content. */
  kernelPostinstHook: Fact<string>;
  zkifc: Fact<UnitFacts>;
  bootRecord: Fact<BootRecordFacts>;
  zymkey: Fact<ZymkeyFacts>;
  i2c: Fact<I2cProbeFacts>;
  /** The LED pattern the user reported with --led, decoded (see led.ts). */
  led: string | null;
  /** A Zymbit SCM's Supervised Boot manifest against the boot partition (absent: not gathered). */
  supervisedBoot?: Fact<SupervisedBootFacts>;
  /** The encrypt-root journey (absent in facts made before it existed). */
  encryption?: EncryptionFacts;
}
