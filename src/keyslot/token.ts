// zkluks's two LUKS2 token types, as stored in the header (DESIGN.md "LUKS2 layout"):
// `zkluks-zymkey` holds the Zymkey-sealed key of one keyslot, `zkluks-recovery` marks the recovery
// keyslot and may hold the recovery key encrypted to an age recipient. Pure parse, validate, build
// and serialize; a malformed token is a TokenError naming what is wrong, never a crash.
import { ZkluksError } from '../errors.ts';
import type { Backend, BindingMode } from '../device/port.ts';

export const ZYMKEY_TOKEN_TYPE = 'zkluks-zymkey';
export const RECOVERY_TOKEN_TYPE = 'zkluks-recovery';
export const TOKEN_VERSION = 1;

export type ZkluksTokenType = typeof ZYMKEY_TOKEN_TYPE | typeof RECOVERY_TOKEN_TYPE;

export interface ZymkeyTokenInfo {
  model: string;
  serial: string;
  binding: BindingMode;
}

export interface ZymkeyToken {
  type: typeof ZYMKEY_TOKEN_TYPE;
  /** Exactly one keyslot id, as a decimal string (LUKS2 rule). */
  keyslots: [string];
  version: 1;
  /** The sealed 64-byte key, base64. */
  sealed: string;
  backend: Backend;
  zymkey: ZymkeyTokenInfo;
  /** ISO 8601 creation time. */
  created: string;
  /** The KDF salt of the keyslot when the token was made (SlotMatch in volume-view.ts compares it). */
  keyslot_salt?: string;
}

export interface AgeEscrow {
  format: 'age';
  /** The age recipient the key is encrypted to (`age1…`). */
  recipient: string;
  /** The ASCII-armored age file. */
  ciphertext: string;
}

export interface RecoveryToken {
  type: typeof RECOVERY_TOKEN_TYPE;
  keyslots: [string];
  version: 1;
  created: string;
  escrow?: AgeEscrow;
  /** The KDF salt of the keyslot when the token was made (SlotMatch in volume-view.ts compares it). */
  keyslot_salt?: string;
}

export type ZkluksToken = ZymkeyToken | RecoveryToken;

/** A zkluks token that cannot be used; `problem` is the specific defect. */
export class TokenError extends ZkluksError {
  readonly tokenType: ZkluksTokenType;
  readonly tokenId: number | null;
  readonly problem: string;

  constructor(type: ZkluksTokenType, problem: string, context: TokenContext = {}) {
    const where = context.volume ? ` of '${context.volume}'` : '';
    const id = context.tokenId === undefined ? '' : ` ${context.tokenId}`;
    const volume = context.volume ? `'${context.volume}'` : 'VOLUME';
    super(`Failed to read ${type} token${id}${where}: corrupt token: ${problem}`, {
      hint:
        type === ZYMKEY_TOKEN_TYPE
          ? `zkluks enroll --force ${volume} (re-seals a new key and replaces the token)`
          : `zkluks recovery remove ${volume} && zkluks recovery add ${volume}`,
    });
    this.tokenType = type;
    this.tokenId = context.tokenId ?? null;
    this.problem = problem;
  }
}

export interface TokenContext {
  volume?: string;
  tokenId?: number;
}

export const AGE_RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;
const AGE_ARMOR_BEGIN = '-----BEGIN AGE ENCRYPTED FILE-----';
const AGE_ARMOR_END = '-----END AGE ENCRYPTED FILE-----';
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function isZkluksTokenType(type: string): type is ZkluksTokenType {
  return type === ZYMKEY_TOKEN_TYPE || type === RECOVERY_TOKEN_TYPE;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function common(type: ZkluksTokenType, value: unknown, fail: (problem: string) => TokenError): Json {
  if (!isObject(value)) throw fail('it is not a JSON object');
  if (value.type !== type) throw fail(`type is '${String(value.type)}', expected '${type}'`);
  if (value.version !== TOKEN_VERSION) {
    throw fail(
      typeof value.version === 'number' && value.version > TOKEN_VERSION
        ? `version ${value.version} was written by a newer zkluks (this one reads version ${TOKEN_VERSION})`
        : `version is ${JSON.stringify(value.version) ?? 'missing'}, expected ${TOKEN_VERSION}`,
    );
  }
  const slots = value.keyslots;
  if (!Array.isArray(slots) || slots.length === 0) throw fail('it is assigned to no keyslot');
  if (slots.length !== 1) throw fail(`it is assigned to ${slots.length} keyslots, expected one`);
  if (typeof slots[0] !== 'string' || !/^(?:[0-9]|[12][0-9]|3[01])$/.test(slots[0])) {
    throw fail(`keyslot ${JSON.stringify(slots[0])} is not a keyslot id from "0" to "31"`);
  }
  if (typeof value.created !== 'string' || Number.isNaN(Date.parse(value.created))) {
    throw fail('created is not an ISO 8601 time');
  }
  return value;
}

/** The optional `keyslot_salt` field: absent, or a base64 string. */
function keyslotSalt(value: Json, fail: (problem: string) => TokenError): { keyslot_salt?: string } {
  const salt = value.keyslot_salt;
  if (salt === undefined) return {};
  if (typeof salt !== 'string' || salt === '' || !BASE64.test(salt)) {
    throw fail('keyslot_salt is not a base64 string');
  }
  return { keyslot_salt: salt };
}

function text(value: Json, key: string, fail: (problem: string) => TokenError, path = key): string {
  const v = value[key];
  if (typeof v !== 'string' || v === '') throw fail(`${path} is missing or not a string`);
  return v;
}

/** Validate a stored `zkluks-zymkey` token (parsed JSON or its text). */
export function parseZymkeyToken(value: unknown, context: TokenContext = {}): ZymkeyToken {
  const fail = (problem: string) => new TokenError(ZYMKEY_TOKEN_TYPE, problem, context);
  const v = common(ZYMKEY_TOKEN_TYPE, fromText(value, fail), fail);
  const sealed = text(v, 'sealed', fail);
  if (!BASE64.test(sealed)) throw fail('sealed is not base64');
  if (v.backend !== 'zymbit' && v.backend !== 'sim') {
    throw fail(`backend is ${JSON.stringify(v.backend) ?? 'missing'}, expected "zymbit" or "sim"`);
  }
  if (!isObject(v.zymkey)) throw fail('zymkey is missing or not an object');
  const binding = v.zymkey.binding;
  if (binding !== 'developer' && binding !== 'production' && binding !== 'unknown') {
    throw fail(`zymkey.binding is ${JSON.stringify(binding) ?? 'missing'}`);
  }
  return {
    type: ZYMKEY_TOKEN_TYPE,
    keyslots: [(v.keyslots as string[])[0] as string],
    version: 1,
    sealed,
    backend: v.backend,
    zymkey: {
      model: text(v.zymkey, 'model', fail, 'zymkey.model'),
      serial: text(v.zymkey, 'serial', fail, 'zymkey.serial'),
      binding,
    },
    created: v.created as string,
    ...keyslotSalt(v, fail),
  };
}

/** Validate a stored `zkluks-recovery` token (parsed JSON or its text). */
export function parseRecoveryToken(value: unknown, context: TokenContext = {}): RecoveryToken {
  const fail = (problem: string) => new TokenError(RECOVERY_TOKEN_TYPE, problem, context);
  const v = common(RECOVERY_TOKEN_TYPE, fromText(value, fail), fail);
  const token: RecoveryToken = {
    type: RECOVERY_TOKEN_TYPE,
    keyslots: [(v.keyslots as string[])[0] as string],
    version: 1,
    created: v.created as string,
    ...keyslotSalt(v, fail),
  };
  if (v.escrow !== undefined) {
    if (!isObject(v.escrow)) throw fail('escrow is not an object');
    if (v.escrow.format !== 'age') {
      throw fail(`escrow.format is ${JSON.stringify(v.escrow.format) ?? 'missing'}, expected "age"`);
    }
    const recipient = text(v.escrow, 'recipient', fail, 'escrow.recipient');
    if (!AGE_RECIPIENT.test(recipient)) throw fail('escrow.recipient is not an age1… recipient');
    const ciphertext = text(v.escrow, 'ciphertext', fail, 'escrow.ciphertext');
    if (!ciphertext.trimStart().startsWith(AGE_ARMOR_BEGIN) || !ciphertext.includes(AGE_ARMOR_END)) {
      throw fail('escrow.ciphertext is not an ASCII-armored age file');
    }
    token.escrow = { format: 'age', recipient, ciphertext };
  }
  return token;
}

function fromText(value: unknown, fail: (problem: string) => TokenError): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch {
    throw fail('it is not valid JSON');
  }
}

export function zymkeyToken(fields: {
  keyslot: number;
  sealed: Buffer;
  backend: Backend;
  zymkey: ZymkeyTokenInfo;
  created: Date;
  keyslotSalt?: string;
}): ZymkeyToken {
  return {
    type: ZYMKEY_TOKEN_TYPE,
    keyslots: [String(fields.keyslot)],
    version: 1,
    sealed: fields.sealed.toString('base64'),
    backend: fields.backend,
    zymkey: { ...fields.zymkey },
    created: fields.created.toISOString(),
    ...(fields.keyslotSalt ? { keyslot_salt: fields.keyslotSalt } : {}),
  };
}

export function recoveryToken(fields: {
  keyslot: number;
  created: Date;
  escrow?: AgeEscrow;
  keyslotSalt?: string;
}): RecoveryToken {
  return {
    type: RECOVERY_TOKEN_TYPE,
    keyslots: [String(fields.keyslot)],
    version: 1,
    created: fields.created.toISOString(),
    ...(fields.keyslotSalt ? { keyslot_salt: fields.keyslotSalt } : {}),
    ...(fields.escrow ? { escrow: { ...fields.escrow } } : {}),
  };
}

/** The token as `cryptsetup token import` reads it (compact JSON, fields in a fixed order). */
export function serializeToken(token: ZkluksToken): string {
  return JSON.stringify(token);
}

/** The keyslot a (validated) zkluks token belongs to. */
export function tokenKeyslot(token: ZkluksToken): number {
  return Number(token.keyslots[0]);
}

/** The sealed key bytes of a (validated) zymkey token. */
export function sealedKey(token: ZymkeyToken): Buffer {
  return Buffer.from(token.sealed, 'base64');
}
