import { describe, expect, it } from 'vitest';
import {
  TokenError,
  parseRecoveryToken,
  parseZymkeyToken,
  recoveryToken,
  sealedKey,
  serializeToken,
  tokenKeyslot,
  zymkeyToken,
} from '../../src/keyslot/token.ts';

const created = new Date('2026-01-02T03:04:05.000Z');
const good = zymkeyToken({
  keyslot: 2,
  sealed: Buffer.from('sealed bytes'),
  backend: 'sim',
  zymkey: { model: 'ZYMKEY4i', serial: 'SIM-1', binding: 'developer' },
  created,
});
const recipient = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
const armored = '-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n';

describe('zkluks-zymkey token', () => {
  it('serializes to the contract shape and parses back to the same value', () => {
    const text = serializeToken(good);
    expect(JSON.parse(text)).toEqual({
      type: 'zkluks-zymkey',
      keyslots: ['2'],
      version: 1,
      sealed: Buffer.from('sealed bytes').toString('base64'),
      backend: 'sim',
      zymkey: { model: 'ZYMKEY4i', serial: 'SIM-1', binding: 'developer' },
      created: '2026-01-02T03:04:05.000Z',
    });
    const back = parseZymkeyToken(text);
    expect(back).toEqual(good);
    expect(tokenKeyslot(back)).toBe(2);
    expect(sealedKey(back).toString()).toBe('sealed bytes');
  });

  it.each([
    ['not JSON', '{', /not valid JSON/],
    ['not an object', '[]', /not a JSON object/],
    ['wrong type', { ...good, type: 'clevis' }, /type is 'clevis'/],
    ['newer version', { ...good, version: 2 }, /newer zkluks/],
    ['no keyslot', { ...good, keyslots: [] }, /assigned to no keyslot/],
    ['two keyslots', { ...good, keyslots: ['1', '2'] }, /2 keyslots/],
    ['numeric keyslot', { ...good, keyslots: [2] }, /not a keyslot id/],
    ['keyslot 32', { ...good, keyslots: ['32'] }, /not a keyslot id/],
    ['bad base64', { ...good, sealed: 'a*b' }, /sealed is not base64/],
    ['no sealed', { ...good, sealed: undefined }, /sealed is missing/],
    ['bad backend', { ...good, backend: 'tpm' }, /backend is "tpm"/],
    ['no zymkey', { ...good, zymkey: null }, /zymkey is missing/],
    ['bad binding', { ...good, zymkey: { ...good.zymkey, binding: 'x' } }, /zymkey.binding/],
    ['bad time', { ...good, created: 'yesterday' }, /created/],
  ])('a token with %s is a corrupt-token error naming the defect', (_name, value, pattern) => {
    let error: unknown;
    try {
      parseZymkeyToken(value, { volume: '/dev/sda2', tokenId: 4 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TokenError);
    expect((error as TokenError).message).toMatch(
      /^Failed to read zkluks-zymkey token 4 of '\/dev\/sda2': corrupt token: /,
    );
    expect((error as TokenError).message).toMatch(pattern);
    expect((error as TokenError).hint).toMatch(/zkluks enroll --force '\/dev\/sda2'/);
    expect((error as TokenError).tokenId).toBe(4);
  });
});

describe('zkluks-recovery token', () => {
  it('round-trips with and without an age escrow', () => {
    const plain = recoveryToken({ keyslot: 5, created });
    expect(JSON.parse(serializeToken(plain))).toEqual({
      type: 'zkluks-recovery',
      keyslots: ['5'],
      version: 1,
      created: created.toISOString(),
    });
    expect(parseRecoveryToken(serializeToken(plain))).toEqual(plain);
    const escrowed = recoveryToken({
      keyslot: 5,
      created,
      escrow: { format: 'age', recipient, ciphertext: armored },
    });
    expect(parseRecoveryToken(JSON.parse(serializeToken(escrowed)))).toEqual(escrowed);
  });

  it.each([
    ['escrow not an object', 'x', /escrow is not an object/],
    ['another format', { format: 'gpg', recipient, ciphertext: armored }, /escrow.format is "gpg"/],
    ['a bad recipient', { format: 'age', recipient: 'age1nope', ciphertext: armored }, /not an age1/],
    ['unarmored ciphertext', { format: 'age', recipient, ciphertext: 'binary' }, /ASCII-armored/],
  ])('an escrow with %s is a corrupt-token error', (_name, escrow, pattern) => {
    const value = { ...recoveryToken({ keyslot: 1, created }), escrow };
    expect(() => parseRecoveryToken(value)).toThrow(TokenError);
    expect(() => parseRecoveryToken(value)).toThrow(pattern);
  });
});
