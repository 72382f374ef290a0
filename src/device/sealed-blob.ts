// The simulator's sealed-blob format: AES-256-GCM under a key derived from the device secret, with a
// header naming the module (and, in production mode, the host) so a failure can say which binding
// was violated.
//
//   offset  size  field
//   0       4     magic "ZKSB"
//   4       1     format version (1)
//   5       1     flags: bit 0 = bound to the host (sealed in production mode)
//   6       16    module id
//   22      8     host tag: first 8 bytes of SHA-256(host fingerprint), zero when not host-bound
//   30      12    GCM nonce
//   42      n     ciphertext
//   42+n    16    GCM tag (the header is the additional authenticated data)
//   58+n    8     checksum: first 8 bytes of SHA-256 of everything before it
//
// The checksum is not a secret: it tells a damaged blob (corrupt-blob) from a blob of another
// module (wrong-module) before any key is involved. Authenticity comes from the GCM tag.
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import type { ZymkeyFailure } from '../errors.ts';

export const BLOB_MAGIC = Buffer.from('ZKSB', 'ascii');
export const BLOB_VERSION = 1;
const HEADER_LEN = 30;
const NONCE_LEN = 12;
const TAG_LEN = 16;
const CHECKSUM_LEN = 8;
const MIN_LEN = HEADER_LEN + NONCE_LEN + TAG_LEN + CHECKSUM_LEN;
const FLAG_HOST_BOUND = 1;

export interface SealKeyMaterial {
  /** The device secret (32 bytes). */
  secret: Buffer;
  /** The module id (16 bytes). */
  moduleId: Buffer;
  /** The host fingerprint to bind to, or null for a module-only binding (developer mode). */
  host: string | null;
}

export interface BlobHeader {
  version: number;
  hostBound: boolean;
  moduleId: Buffer;
  hostTag: Buffer;
}

/** Why a blob cannot be opened; `reason` is the ZymkeyFailure code. */
export class BlobError extends Error {
  constructor(
    readonly reason: Extract<ZymkeyFailure, 'corrupt-blob' | 'wrong-module' | 'host-mismatch'>,
    message: string,
  ) {
    super(message);
  }
}

export function hostTag(host: string): Buffer {
  return createHash('sha256').update(host).digest().subarray(0, 8);
}

function checksum(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest().subarray(0, CHECKSUM_LEN);
}

function deriveKey(secret: Buffer, moduleId: Buffer, host: string | null): Buffer {
  const info = `zkluks-sim seal v${BLOB_VERSION}${host === null ? '' : ` host ${host}`}`;
  return Buffer.from(hkdfSync('sha256', secret, moduleId, info, 32));
}

export function sealBlob(plain: Buffer, key: SealKeyMaterial): Buffer {
  const header = Buffer.alloc(HEADER_LEN);
  BLOB_MAGIC.copy(header, 0);
  header[4] = BLOB_VERSION;
  header[5] = key.host === null ? 0 : FLAG_HOST_BOUND;
  key.moduleId.copy(header, 6);
  if (key.host !== null) hostTag(key.host).copy(header, 22);
  const nonce = randomBytes(NONCE_LEN);
  const cipher = createCipheriv('aes-256-gcm', deriveKey(key.secret, key.moduleId, key.host), nonce);
  cipher.setAAD(Buffer.concat([header, nonce]));
  const body = Buffer.concat([header, nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  return Buffer.concat([body, checksum(body)]);
}

/** Check the framing and checksum and read the header; throws BlobError('corrupt-blob'). */
export function readBlobHeader(blob: Buffer): BlobHeader {
  if (blob.length < MIN_LEN) {
    throw new BlobError('corrupt-blob', `sealed data is ${blob.length} bytes, shorter than any sealed blob`);
  }
  if (!blob.subarray(0, 4).equals(BLOB_MAGIC)) {
    throw new BlobError('corrupt-blob', 'sealed data does not start with the sealed-blob header');
  }
  const body = blob.subarray(0, blob.length - CHECKSUM_LEN);
  if (!checksum(body).equals(blob.subarray(blob.length - CHECKSUM_LEN))) {
    throw new BlobError('corrupt-blob', 'sealed data is damaged (checksum mismatch)');
  }
  const version = blob[4] ?? 0;
  if (version !== BLOB_VERSION) {
    throw new BlobError('corrupt-blob', `sealed-blob format version ${version} is unknown`);
  }
  return {
    version,
    hostBound: ((blob[5] ?? 0) & FLAG_HOST_BOUND) !== 0,
    moduleId: Buffer.from(blob.subarray(6, 22)),
    hostTag: Buffer.from(blob.subarray(22, 30)),
  };
}

/**
 * Verify and decrypt. `currentHost` is the host the module sits on now; a host-bound blob opens only
 * there.
 */
export function openBlob(blob: Buffer, secret: Buffer, moduleId: Buffer, currentHost: string): Buffer {
  const header = readBlobHeader(blob);
  if (!header.moduleId.equals(moduleId)) {
    throw new BlobError(
      'wrong-module',
      `sealed by module ${header.moduleId.toString('hex')}, this is module ${moduleId.toString('hex')}`,
    );
  }
  if (header.hostBound && !header.hostTag.equals(hostTag(currentHost))) {
    throw new BlobError('host-mismatch', 'sealed in production mode on another host');
  }
  const body = blob.subarray(0, blob.length - CHECKSUM_LEN);
  const aad = body.subarray(0, HEADER_LEN + NONCE_LEN);
  const nonce = body.subarray(HEADER_LEN, HEADER_LEN + NONCE_LEN);
  const ciphertext = body.subarray(HEADER_LEN + NONCE_LEN, body.length - TAG_LEN);
  const tag = body.subarray(body.length - TAG_LEN);
  const decipher = createDecipheriv(
    'aes-256-gcm',
    deriveKey(secret, moduleId, header.hostBound ? currentHost : null),
    nonce,
  );
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    throw new BlobError('corrupt-blob', 'sealed data failed authentication');
  }
}
