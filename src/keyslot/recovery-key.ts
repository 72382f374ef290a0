// Recovery keys: 256 random bits written as 64 modhex characters in 8 groups of 8, like
// systemd-cryptenroll's recovery keys. Modhex uses only letters that sit in the same place on most
// keyboard layouts, so the key can be typed at a boot prompt on any keymap. The LUKS passphrase is
// the formatted text (dashes included); `normalizeRecoveryKey` accepts what a person types.
import { randomBytes } from 'node:crypto';

export const MODHEX = 'cbdefghijklnrtuv';
export const RECOVERY_KEY_BYTES = 32;
const GROUP = 8;

export function formatRecoveryKey(bytes: Buffer): string {
  if (bytes.length !== RECOVERY_KEY_BYTES) throw new Error(`a recovery key is ${RECOVERY_KEY_BYTES} bytes`);
  let chars = '';
  for (const b of bytes) chars += (MODHEX[b >> 4] as string) + (MODHEX[b & 15] as string);
  return (chars.match(new RegExp(`.{${GROUP}}`, 'g')) as string[]).join('-');
}

export function newRecoveryKey(): string {
  const bytes = randomBytes(RECOVERY_KEY_BYTES);
  try {
    return formatRecoveryKey(bytes);
  } finally {
    bytes.fill(0);
  }
}

/** The canonical key from typed text (any case, any spaces/dashes), or null if it is not one. */
export function normalizeRecoveryKey(text: string): string | null {
  const chars = text.toLowerCase().replace(/[\s-]/g, '');
  if (chars.length !== RECOVERY_KEY_BYTES * 2 || [...chars].some((c) => !MODHEX.includes(c))) return null;
  return (chars.match(new RegExp(`.{${GROUP}}`, 'g')) as string[]).join('-');
}
