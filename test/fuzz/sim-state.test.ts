// Fuzzing the simulator's state file reader: any text gives a 'state-corrupt' ZymkeyUnavailableError
// or the state exactly as stored, and every state the simulator writes reads back unchanged.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ZymkeyUnavailableError } from '../../src/errors.ts';
import { SIM_MODELS, newSimState, parseSimState, type SimState } from '../../src/device/sim-state.ts';
import { anyText, fuzz, typed } from './fuzz.ts';

const iso = fc
  .date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true })
  .map((d) => d.toISOString());
const hex = (bytes: number) =>
  fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((a) => Buffer.from(a).toString('hex'));
const channel = (n: 0 | 1) =>
  fc.record({
    channel: fc.constant(n),
    action: fc.constantFrom('none' as const, 'notify' as const, 'self-destruct' as const),
    firstBreach: fc.option(iso, { nil: null }),
  });
const state: fc.Arbitrary<SimState> = fc
  .record({
    created: iso,
    model: fc.constantFrom(...SIM_MODELS),
    serial: fc.string({ minLength: 1 }),
    firmware: fc.string(),
    id: hex(16),
    secret: hex(32).map((h) => Buffer.from(h, 'hex').toString('base64')),
    host: hex(16),
    mode: fc.constantFrom('developer' as const, 'production' as const),
    boundHost: hex(16),
    reachable: fc.boolean(),
    perimeter: fc.tuple(channel(0), channel(1)),
    destroyed: fc.option(fc.record({ at: iso, channel: fc.constantFrom(0 as const, 1 as const) }), {
      nil: null,
    }),
  })
  .map((s) => {
    const base = newSimState(s.model, new Date(s.created));
    return {
      ...base,
      module: { ...base.module, serial: s.serial, firmware: s.firmware, id: s.id },
      secret: s.destroyed === null ? s.secret : null,
      host: s.host,
      binding: { mode: s.mode, boundHost: s.boundHost },
      reachable: s.reachable,
      perimeter: s.perimeter,
      selfDestruct: s.destroyed,
    };
  });

/** A stored state with one value somewhere replaced by any JSON value. */
const damaged = fc.tuple(state, fc.nat(), fc.jsonValue()).map(([s, pick, value]) => {
  const copy = JSON.parse(JSON.stringify(s)) as Record<string, unknown>;
  const spots: Array<[Record<string, unknown>, string]> = [];
  const walk = (o: unknown) => {
    if (typeof o !== 'object' || o === null) return;
    for (const k of Object.keys(o)) {
      spots.push([o as Record<string, unknown>, k]);
      walk((o as Record<string, unknown>)[k]);
    }
  };
  walk(copy);
  const [obj, key] = spots[pick % spots.length]!;
  obj[key] = value;
  return JSON.stringify(copy);
});

describe('fuzz: simulator state', { timeout: 300_000 }, () => {
  it('reads back every state it writes', () => {
    fuzz(
      'sim state',
      fc.property(state, (s) => {
        expect(parseSimState(`${JSON.stringify(s, null, 2)}\n`, 'fuzz.json')).toEqual(s);
      }),
      0.4,
    );
  });

  it('answers any text or damaged state with state-corrupt, or the state exactly as stored', () => {
    fuzz(
      'sim state',
      fc.property(fc.oneof(damaged, anyText, fc.json()), (text) => {
        let read: SimState | undefined;
        try {
          read = parseSimState(text, 'fuzz.json');
        } catch (error) {
          expect(error).toBeInstanceOf(ZymkeyUnavailableError);
          expect((error as ZymkeyUnavailableError).reason).toBe('state-corrupt');
          return;
        }
        expect(read).toEqual(JSON.parse(text));
        expect(typed(() => parseSimState(JSON.stringify(read), 'again.json'))).toEqual(read);
      }),
      0.6,
    );
  });
});
