// Fuzzing the zkluks token formats (zkluks-zymkey, zkluks-recovery): any JSON value or text gives a
// TokenError or a token that is exactly what was stored; tokens zkluks builds read back unchanged.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  TokenError,
  parseRecoveryToken,
  parseZymkeyToken,
  recoveryToken,
  serializeToken,
  zymkeyToken,
} from '../../src/keyslot/token.ts';
import { anyText, fuzz, typed } from './fuzz.ts';

const created = fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true });
const keyslot = fc.integer({ min: 0, max: 31 });
const salt = fc.option(
  fc.base64String({ minLength: 4, maxLength: 44 }).filter((s) => s !== ''),
  { nil: undefined },
);
const zymkey = fc
  .record({
    keyslot,
    sealed: fc.uint8Array({ minLength: 1, maxLength: 96 }).map((a) => Buffer.from(a)),
    backend: fc.constantFrom('zymbit' as const, 'sim' as const),
    zymkey: fc.record({
      model: fc.string({ minLength: 1 }),
      serial: fc.string({ minLength: 1 }),
      binding: fc.constantFrom('developer' as const, 'production' as const, 'unknown' as const),
    }),
    created,
    keyslotSalt: salt,
  })
  .map((f) => zymkeyToken(f));
const AGE = 'age1' + 'q'.repeat(58);
const recovery = fc
  .record({
    keyslot,
    created,
    keyslotSalt: salt,
    escrow: fc.option(
      fc.string().map((body) => ({
        format: 'age' as const,
        recipient: AGE,
        ciphertext: `-----BEGIN AGE ENCRYPTED FILE-----\n${body}\n-----END AGE ENCRYPTED FILE-----\n`,
      })),
      { nil: undefined },
    ),
  })
  .map((f) => recoveryToken(f));

/** A stored token with one field replaced by any JSON value, or removed, or one added. */
function damaged<T extends object>(token: fc.Arbitrary<T>) {
  return fc
    .tuple(token, fc.nat(), fc.oneof(fc.jsonValue(), fc.constant(undefined)), fc.string())
    .map(([t, pick, value, extra]) => {
      const copy = JSON.parse(JSON.stringify(t)) as Record<string, unknown>;
      const keys = [
        ...Object.keys(copy),
        ...Object.keys((copy.zymkey as object) ?? {}).map((k) => `zymkey.${k}`),
        extra,
      ];
      const key = keys[pick % keys.length] ?? extra;
      if (key.startsWith('zymkey.') && typeof copy.zymkey === 'object') {
        (copy.zymkey as Record<string, unknown>)[key.slice(7)] = value;
      } else copy[key] = value;
      return copy;
    });
}

function checkRead(parse: (v: unknown) => object, input: unknown): void {
  const token = typed(() => parse(input), TokenError);
  if (token === undefined) return;
  // A token that reads is the stored one, known fields only: nothing added, nothing altered.
  const stored = (typeof input === 'string' ? JSON.parse(input) : input) as Record<string, unknown>;
  for (const [k, v] of Object.entries(token)) expect(v).toEqual(stored[k]);
  expect(parse(serializeToken(token as never))).toEqual(token);
}

describe('fuzz: zkluks tokens', { timeout: 300_000 }, () => {
  it('reads back every zkluks-zymkey token it builds, and answers anything else with a TokenError or the stored token', () => {
    fuzz(
      'token zkluks-zymkey',
      fc.property(zymkey, (t) => {
        expect(parseZymkeyToken(serializeToken(t))).toEqual(t);
      }),
      0.3,
    );
    fuzz(
      'token zkluks-zymkey',
      fc.property(fc.oneof(damaged(zymkey), fc.jsonValue(), anyText), (input) =>
        checkRead(parseZymkeyToken, input),
      ),
      0.7,
    );
  });

  it('reads back every zkluks-recovery token it builds, and answers anything else with a TokenError or the stored token', () => {
    fuzz(
      'token zkluks-recovery',
      fc.property(recovery, (t) => {
        expect(parseRecoveryToken(serializeToken(t))).toEqual(t);
      }),
      0.3,
    );
    fuzz(
      'token zkluks-recovery',
      fc.property(fc.oneof(damaged(recovery), fc.jsonValue(), anyText), (input) =>
        checkRead(parseRecoveryToken, input),
      ),
      0.7,
    );
  });
});
