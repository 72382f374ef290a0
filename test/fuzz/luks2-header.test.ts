// Fuzzing the LUKS2 JSON metadata reader (`luksDump --dump-json-metadata` -> HeaderFacts): any text
// or JSON gives a ZkluksError or facts that hold together, and well-formed metadata reads back exactly.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseHeader, type KeyslotPriority } from '../../src/keyslot/header.ts';
import { anyText, fuzz, jsonPlaces, typed } from './fuzz.ts';

const CONTEXT = { volume: '/dev/fuzz', uuid: '0b6d4a5e-3c1f-4a8e-9d2b-7f1e2c3d4e5f' };
const id = fc.integer({ min: 0, max: 31 });
const salt = fc.base64String({ minLength: 4, maxLength: 44 });

const keyslot = fc.record({
  kdf: fc.oneof(
    fc.record({ type: fc.constant('pbkdf2'), iterations: fc.integer({ min: 1000, max: 1e7 }), salt }),
    fc.record({
      type: fc.constantFrom('argon2id', 'argon2i'),
      time: fc.integer({ min: 1, max: 20 }),
      memory: fc.integer({ min: 32, max: 1048576 }),
      salt,
    }),
  ),
  priority: fc.option(fc.constantFrom(0, 1, 2), { nil: undefined }),
  key_size: fc.constantFrom(32, 64),
});
const token = fc.record({
  type: fc.oneof(fc.constantFrom('zkluks-zymkey', 'zkluks-recovery', 'systemd-tpm2'), fc.string()),
  keyslots: fc.array(id.map(String), { maxLength: 3 }),
});
const metadata = fc.record({
  keyslots: fc.dictionary(id.map(String), keyslot, { maxKeys: 8 }),
  tokens: fc.dictionary(id.map(String), token, { maxKeys: 6 }),
  config: fc.record({ json_size: fc.constantFrom('12288', '16384') }),
});

const PRIORITY: Record<number, KeyslotPriority> = { 0: 'ignore', 1: 'normal', 2: 'prefer' };

/** Metadata with one value somewhere replaced by any JSON value, or a key renamed. */
const mutated = fc
  .tuple(
    metadata,
    fc.jsonValue(),
    fc.nat(),
    fc.constantFrom('value', 'key'),
    fc.oneof(fc.string(), fc.constantFrom('01', '1 ', '-1', '1e1', '32', '__proto__')),
  )
  .map(([m, value, pick, what, newKey]) => {
    const copy = JSON.parse(JSON.stringify(m)) as Record<string, unknown>;
    const spots = jsonPlaces(copy);
    const [obj, key] = spots[pick % spots.length] ?? [copy, 'keyslots'];
    if (what === 'value') obj[key] = value;
    else {
      const v = obj[key];
      delete obj[key];
      Object.defineProperty(obj, newKey, { value: v, enumerable: true, writable: true, configurable: true });
    }
    return JSON.stringify(copy);
  });

describe('fuzz: LUKS2 metadata', { timeout: 300_000 }, () => {
  it('reads well-formed metadata exactly', () => {
    fuzz(
      'luks2 metadata',
      fc.property(metadata, (m) => {
        const facts = parseHeader(JSON.stringify(m), CONTEXT);
        const ids = Object.keys(m.keyslots)
          .map(Number)
          .sort((a, b) => a - b);
        expect(facts.keyslots.map((k) => k.id)).toEqual(ids);
        for (const k of facts.keyslots) {
          const slot = m.keyslots[String(k.id)]!;
          expect(k.kdf).toBe(slot.kdf.type);
          expect(k.iterations).toBe('iterations' in slot.kdf ? slot.kdf.iterations : slot.kdf.time);
          expect(k.memoryKiB).toBe('memory' in slot.kdf ? slot.kdf.memory : null);
          expect(k.priority).toBe(PRIORITY[slot.priority ?? 1]);
          expect(k.salt).toBe(slot.kdf.salt === '' ? null : slot.kdf.salt);
          expect(k.keySize).toBe(slot.key_size);
        }
        expect(facts.tokens.map((t) => [t.id, t.type, t.keyslots])).toEqual(
          Object.entries(m.tokens)
            .map(([i, t]) => [Number(i), t.type, t.keyslots.map(Number)])
            .sort((a, b) => (a[0] as number) - (b[0] as number)),
        );
        expect(facts.freeKeyslots).toBe(32 - ids.length);
      }),
      0.5,
    );
  });

  it('answers any text or damaged metadata with a ZkluksError or facts that hold together', () => {
    fuzz(
      'luks2 metadata',
      fc.property(fc.oneof(anyText, fc.json(), mutated), (text) => {
        const facts = typed(() => parseHeader(text, CONTEXT));
        if (facts === undefined) return;
        const ids = facts.keyslots.map((k) => k.id);
        expect(new Set(ids).size).toBe(ids.length);
        for (const k of facts.keyslots) {
          expect(Number.isInteger(k.id) && k.id >= 0 && k.id < 32).toBe(true);
          expect(['ignore', 'normal', 'prefer']).toContain(k.priority);
        }
        const tokenIds = facts.tokens.map((t) => t.id);
        expect(new Set(tokenIds).size).toBe(tokenIds.length);
        for (const t of facts.tokens) {
          expect(Number.isInteger(t.id) && t.id >= 0 && t.id < 32).toBe(true);
          for (const s of t.keyslots) expect(Number.isInteger(s) && s >= 0 && s < 32).toBe(true);
        }
        expect(facts.freeKeyslots).toBe(32 - ids.length);
      }),
      0.5,
    );
  });
});
