// The key of a Zymkey keyslot: 64 bytes derived from the Zymkey's RNG and the host's RNG together
// (HKDF-SHA256 over both), so neither source alone decides it. It is then sealed by the module.
import { hkdfSync, randomBytes } from 'node:crypto';
import type { ZymkeyPort } from '../device/port.ts';

export const ZYMKEY_KEY_BYTES = 64;
const INFO = Buffer.from('zkluks zymkey keyslot key v1');

export function combineRandom(fromZymkey: Buffer, fromHost: Buffer): Buffer {
  const ikm = Buffer.concat([fromZymkey, fromHost]);
  try {
    return Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), INFO, ZYMKEY_KEY_BYTES));
  } finally {
    ikm.fill(0);
  }
}

export async function newZymkeyKey(port: ZymkeyPort): Promise<Buffer> {
  const zk = await port.randomBytes(ZYMKEY_KEY_BYTES);
  const host = randomBytes(ZYMKEY_KEY_BYTES);
  try {
    return combineRandom(zk, host);
  } finally {
    zk.fill(0);
    host.fill(0);
  }
}
