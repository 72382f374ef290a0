import { describe, expect, it } from 'vitest';
import { formatRecoveryKey, newRecoveryKey, normalizeRecoveryKey } from '../../src/keyslot/recovery-key.ts';
import { combineRandom } from '../../src/keyslot/zymkey-key.ts';

describe('recovery keys', () => {
  it('are 256 bits as 8 groups of 8 modhex letters, and differ every time', () => {
    expect(formatRecoveryKey(Buffer.alloc(32, 0x0f))).toBe(Array(8).fill('cvcvcvcv').join('-'));
    const a = newRecoveryKey();
    expect(a).toMatch(/^([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}$/);
    expect(newRecoveryKey()).not.toBe(a);
  });

  it('normalize what a person types (case, spaces, missing dashes) and reject anything else', () => {
    const key = newRecoveryKey();
    expect(normalizeRecoveryKey(key.toUpperCase().replace(/-/g, ' '))).toBe(key);
    expect(normalizeRecoveryKey(key.replace(/-/g, ''))).toBe(key);
    expect(normalizeRecoveryKey(`${key}a`)).toBeNull();
    expect(normalizeRecoveryKey(key.replace(/^./, 'a'))).toBeNull();
  });
});

describe('the Zymkey slot key', () => {
  it('is 64 bytes that depend on both the Zymkey and the host random bytes', () => {
    const zk = Buffer.alloc(64, 1);
    const host = Buffer.alloc(64, 2);
    const key = combineRandom(zk, host);
    expect(key).toHaveLength(64);
    expect(combineRandom(zk, host)).toEqual(key);
    expect(combineRandom(Buffer.alloc(64, 3), host)).not.toEqual(key);
    expect(combineRandom(zk, Buffer.alloc(64, 3))).not.toEqual(key);
  });
});
