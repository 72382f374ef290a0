// Facts about a LUKS2 header, read through `cryptsetup luksDump --dump-json-metadata` (never the
// text dump). Plain data: planners, `list`, the doctor and the boot installer all read these.
import { open, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { CommandFailedError, UsageError, ZkluksError } from '../errors.ts';
import type { Runner } from '../exec.ts';

/** LUKS2 allows 32 keyslots and 32 tokens (ids "0"…"31"). */
export const LUKS2_KEYSLOTS_MAX = 32;
export const LUKS2_TOKENS_MAX = 32;

/** `cryptsetup config --priority`: stored as 0 (ignore), absent/1 (normal), 2 (prefer). */
export type KeyslotPriority = 'ignore' | 'normal' | 'prefer';

export interface KeyslotFacts {
  id: number;
  /** Keyslot type, "luks2" for every ordinary slot. */
  type: string;
  /** KDF type: "pbkdf2", "argon2id" or "argon2i". */
  kdf: string;
  /** pbkdf2 iterations or argon2 time cost; null when the header has none. */
  iterations: number | null;
  /** argon2 memory cost in KiB; null for pbkdf2. */
  memoryKiB: number | null;
  priority: KeyslotPriority;
  /** Size of the volume key this slot holds, in bytes. */
  keySize: number;
  /**
   * The KDF salt (base64), new for every key added to a slot: it tells this keyslot apart from an
   * earlier or another volume's keyslot with the same id. Null when the header has none.
   */
  salt: string | null;
}

export interface TokenFacts {
  id: number;
  type: string;
  /** Keyslot ids the token is assigned to (empty when its slot was killed: a dangling token). */
  keyslots: number[];
  /** The token exactly as stored. */
  json: Record<string, unknown>;
}

export interface HeaderFacts {
  volume: string;
  version: 2;
  uuid: string;
  keyslots: KeyslotFacts[];
  tokens: TokenFacts[];
  /** Keyslots still free (of LUKS2_KEYSLOTS_MAX). */
  freeKeyslots: number;
  /** Size of the JSON metadata area in bytes (config.json_size). */
  jsonSize: number;
  /** Bytes the metadata takes when stored (compact JSON, as cryptsetup writes it). */
  jsonUsed: number;
}

export type LuksKind = 'luks2' | 'luks1' | 'not-luks' | 'missing';

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function badHeader(volume: string, cause: string): ZkluksError {
  return new ZkluksError(`Failed to read LUKS header of '${volume}': ${cause}`, {
    hint: `cryptsetup luksDump '${volume}'`,
  });
}

function toInt(value: unknown): number | null {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'string' && /^\d+$/.test(value)) return Number(value);
  return null;
}

function priorityOf(value: unknown): KeyslotPriority {
  if (value === 0) return 'ignore';
  if (value === 2) return 'prefer';
  return 'normal';
}

function ids(object: unknown, what: string, volume: string): Array<[number, Json]> {
  if (object === undefined) return [];
  if (!isObject(object)) throw badHeader(volume, `'${what}' is not an object`);
  return Object.entries(object)
    .map(([key, value]): [number, Json] => {
      // LUKS2 ids are "0"…"31", written without leading zeros (so no two keys name one id).
      const id = /^(?:[0-9]|[12][0-9]|3[01])$/.test(key) ? Number(key) : null;
      if (id === null || !isObject(value)) throw badHeader(volume, `${what} entry '${key}' is malformed`);
      return [id, value];
    })
    .sort((a, b) => a[0] - b[0]);
}

/**
 * Header facts from the text of `luksDump --dump-json-metadata` (pure; throws on JSON that is not a
 * LUKS2 metadata object). `uuid` comes from `cryptsetup luksUUID`: the JSON area does not hold it.
 */
export function parseHeader(json: string, context: { volume: string; uuid: string }): HeaderFacts {
  const { volume } = context;
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (error) {
    throw badHeader(volume, `metadata is not JSON (${(error as Error).message})`);
  }
  if (!isObject(data) || !isObject(data.keyslots) || !isObject(data.config)) {
    throw badHeader(volume, 'metadata has no keyslots or config object');
  }
  const keyslots = ids(data.keyslots, 'keyslots', volume).map(([id, slot]): KeyslotFacts => {
    const kdf = isObject(slot.kdf) ? slot.kdf : {};
    return {
      id,
      type: typeof slot.type === 'string' ? slot.type : 'unknown',
      kdf: typeof kdf.type === 'string' ? kdf.type : 'unknown',
      iterations: toInt(kdf.iterations) ?? toInt(kdf.time),
      memoryKiB: toInt(kdf.memory),
      priority: priorityOf(slot.priority),
      keySize: toInt(slot.key_size) ?? 0,
      salt: typeof kdf.salt === 'string' && kdf.salt !== '' ? kdf.salt : null,
    };
  });
  const tokens = ids(data.tokens, 'tokens', volume).map(([id, token]): TokenFacts => {
    const slots = Array.isArray(token.keyslots) ? token.keyslots : [];
    const keyslots = slots.map(toInt).filter((n): n is number => n !== null);
    if (keyslots.some((n) => n < 0 || n >= LUKS2_KEYSLOTS_MAX)) {
      throw badHeader(volume, `token ${id} names a keyslot outside 0…${LUKS2_KEYSLOTS_MAX - 1}`);
    }
    return {
      id,
      type: typeof token.type === 'string' ? token.type : '',
      keyslots,
      json: token,
    };
  });
  return {
    volume,
    version: 2,
    uuid: context.uuid,
    keyslots,
    tokens,
    freeKeyslots: LUKS2_KEYSLOTS_MAX - keyslots.length,
    jsonSize: toInt(data.config.json_size) ?? 0,
    jsonUsed: Buffer.byteLength(JSON.stringify(data)),
  };
}

/** What sits at `volume`: a LUKS2 or LUKS1 header, something else, or nothing. */
export async function isLuks(runner: Runner, volume: string): Promise<LuksKind> {
  try {
    await stat(volume);
  } catch {
    return 'missing';
  }
  const any = await runner('cryptsetup', ['isLuks', volume], { reject: false });
  if (any.exitCode !== 0) return 'not-luks';
  const v2 = await runner('cryptsetup', ['isLuks', '--type', 'luks2', volume], { reject: false });
  return v2.exitCode === 0 ? 'luks2' : 'luks1';
}

/** Throw the error that explains why `volume` cannot be used, for a kind other than luks2. */
export function notLuks2Error(volume: string, kind: Exclude<LuksKind, 'luks2'>): ZkluksError {
  switch (kind) {
    case 'missing':
      // A path that does not exist is bad input, exit 2 in every command.
      return new UsageError(`Failed to read LUKS header of '${volume}': no such file or device`, {
        hint: volume.startsWith('/dev/')
          ? 'lsblk -f (name the LUKS partition, e.g. /dev/mmcblk0p2)'
          : `ls -l '${dirname(resolve(volume))}' (name the image file that holds the LUKS volume)`,
      });
    case 'not-luks':
      return new ZkluksError(`Failed to read LUKS header of '${volume}': not a LUKS volume`, {
        hint: `blkid '${volume}' (zkluks works on an existing LUKS2 volume; create one with cryptsetup luksFormat --type luks2)`,
      });
    case 'luks1':
      return new ZkluksError(
        `Failed to read LUKS header of '${volume}': it is LUKS1; zkluks needs LUKS2 (tokens and keyslot priorities)`,
        {
          hint: `cryptsetup luksHeaderBackup '${volume}' --header-backup-file /root/luks1-header.img && cryptsetup convert --type luks2 '${volume}'`,
        },
      );
  }
}

export interface ReadHeaderOptions {
  /**
   * Ask for the UUID while the dump runs, not after it: for reports that only read (`list`, the
   * doctor). A change keeps its cryptsetup calls one after another, in one fixed order.
   */
  concurrent?: boolean;
}

/** Where the primary LUKS2 header keeps its checksum field, and how long it is. */
const CHECKSUM_OFFSET = 448;
const CHECKSUM_BYTES = 64;

/**
 * The primary header's checksum field as hex: cryptsetup rewrites it with every header write, so it
 * tells whether the header is still the one read earlier (the image's token copy keys on it). Null
 * when the volume cannot be read.
 */
export async function readHeaderChecksum(volume: string): Promise<string | null> {
  try {
    const file = await open(volume, 'r');
    try {
      const buf = Buffer.alloc(CHECKSUM_BYTES);
      const { bytesRead } = await file.read(buf, 0, CHECKSUM_BYTES, CHECKSUM_OFFSET);
      return bytesRead === CHECKSUM_BYTES ? buf.toString('hex') : null;
    } finally {
      await file.close();
    }
  } catch {
    return null;
  }
}

/** Read the header facts of a LUKS2 volume; a clear error for a missing path, non-LUKS or LUKS1. */
export async function readHeader(
  runner: Runner,
  volume: string,
  options: ReadHeaderOptions = {},
): Promise<HeaderFacts> {
  // The dump answers for a good LUKS2 header; only when it fails is the volume asked what it is.
  const dumping = runner('cryptsetup', ['luksDump', '--dump-json-metadata', volume], { reject: false });
  const askUuid = () => runner('cryptsetup', ['luksUUID', volume]);
  const early = options.concurrent ? askUuid() : undefined;
  // An early UUID counts only once the dump has succeeded; until then its failure is held here.
  const earlySettled = early?.then(
    () => {},
    () => {},
  );
  const dump = await dumping;
  if (dump.exitCode !== 0) {
    // No luksUUID is left running while the volume is asked what it is.
    await earlySettled;
    const kind = await isLuks(runner, volume);
    if (kind !== 'luks2') throw notLuks2Error(volume, kind);
    throw badHeader(volume, dump.stderr.trim() || `cryptsetup exited ${dump.exitCode}`);
  }
  try {
    const uuid = await (early ?? askUuid());
    return parseHeader(dump.stdout, { volume, uuid: uuid.stdout.trim() });
  } catch (error) {
    if (error instanceof CommandFailedError) {
      throw badHeader(volume, error.stderr.trim() || `cryptsetup exited ${error.commandExitCode}`);
    }
    throw error;
  }
}

/**
 * Keyslots and tokens alone, from one `luksDump` (no UUID lookup, no LUKS-kind diagnosis): what a
 * change re-reads between its own steps, on a volume readHeader has already read.
 */
export async function readMetadata(
  runner: Runner,
  volume: string,
): Promise<Pick<HeaderFacts, 'keyslots' | 'tokens'>> {
  const dump = await runner('cryptsetup', ['luksDump', '--dump-json-metadata', volume], { reject: false });
  if (dump.exitCode !== 0) {
    throw badHeader(volume, dump.stderr.trim() || `cryptsetup exited ${dump.exitCode}`);
  }
  const { keyslots, tokens } = parseHeader(dump.stdout, { volume, uuid: '' });
  return { keyslots, tokens };
}
