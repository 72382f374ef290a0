// Fuzzing the simulator's state readers (the host file in --sim-state and a module file in the
// module store): any text gives a 'state-corrupt' ZymkeyUnavailableError or the state exactly as
// stored, and every state the simulator writes reads back unchanged.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ZymkeyUnavailableError } from '../../src/errors.ts';
import {
  SIM_MODELS,
  newSimHost,
  newSimModule,
  parseSimHost,
  parseSimModule,
  type SimHost,
  type SimModule,
} from '../../src/device/sim-state.ts';
import { anyText, fuzz, jsonPlaces, typed } from './fuzz.ts';

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
    open: fc.boolean(),
  });

const moduleState: fc.Arbitrary<SimModule> = fc
  .record({
    created: iso,
    model: fc.constantFrom(...SIM_MODELS),
    serial: fc.stringMatching(/^[A-Za-z0-9-]{1,20}$/),
    firmware: fc.string(),
    id: hex(16),
    secret: hex(32).map((h) => Buffer.from(h, 'hex').toString('base64')),
    salt: hex(32),
    lockedTo: fc.option(fc.record({ pi: hex(16), card: fc.string() }), { nil: null }),
    plugged: fc.boolean(),
    brownout: fc.boolean(),
    asleep: fc.boolean(),
    battery: fc.record({
      present: fc.boolean(),
      action: fc.constantFrom('none' as const, 'sleep' as const, 'self-destruct' as const),
    }),
    perimeter: fc.tuple(channel(0), channel(1)),
    dead: fc.option(
      fc.oneof(
        fc.record({
          why: fc.constant('self-destruct' as const),
          at: iso,
          channel: fc.constantFrom(0 as const, 1 as const),
        }),
        fc.record({ why: fc.constant('battery' as const), at: iso }),
        fc.record({ why: fc.constant('state-lost' as const), at: iso }),
      ),
      { nil: null },
    ),
  })
  .map((s) => {
    const base = newSimModule(s.model, new Date(s.created));
    return {
      ...base,
      serial: s.serial,
      firmware: s.firmware,
      id: s.id,
      secret: s.dead === null ? s.secret : null,
      salt: s.salt,
      binding: { mode: s.lockedTo === null ? 'developer' : 'production', lockedTo: s.lockedTo },
      plugged: s.plugged,
      brownout: s.brownout,
      asleep: s.asleep,
      battery: s.battery,
      perimeter: s.perimeter,
      dead: s.dead,
    };
  });

const hostState: fc.Arbitrary<SimHost> = fc
  .record({
    created: iso,
    pi: hex(16),
    kernel: fc.stringMatching(/^\d{1,2}\.\d{1,2}[.\w+-]{0,20}$/),
    zkifc: fc.constantFrom('running' as const, 'stopped' as const),
    module: hex(16),
  })
  .map((s) => ({ ...newSimHost(s.module, new Date(s.created)), pi: s.pi, kernel: s.kernel, zkifc: s.zkifc }));

/** A stored state with one value somewhere replaced by any JSON value. */
function damaged<T>(state: fc.Arbitrary<T>): fc.Arbitrary<string> {
  return fc.tuple(state, fc.nat(), fc.jsonValue()).map(([s, pick, value]) => {
    const copy = JSON.parse(JSON.stringify(s)) as Record<string, unknown>;
    const spots = jsonPlaces(copy);
    const [obj, key] = spots[pick % spots.length]!;
    obj[key] = value;
    return JSON.stringify(copy);
  });
}

const readers = [
  { name: 'sim module', state: moduleState as fc.Arbitrary<unknown>, parse: parseSimModule },
  { name: 'sim host', state: hostState as fc.Arbitrary<unknown>, parse: parseSimHost },
] as const;

describe('fuzz: simulator state', { timeout: 300_000 }, () => {
  for (const { name, state, parse } of readers) {
    it(`${name}: reads back every state it writes`, () => {
      fuzz(
        name,
        fc.property(state, (s) => {
          expect(parse(`${JSON.stringify(s, null, 2)}\n`, 'fuzz.json')).toEqual(s);
        }),
        0.4,
      );
    });

    it(`${name}: answers any text or damaged state with state-corrupt, or the state exactly as stored`, () => {
      fuzz(
        name,
        fc.property(fc.oneof(damaged(state), anyText, fc.json()), (text) => {
          let read: unknown;
          try {
            read = parse(text, 'fuzz.json');
          } catch (error) {
            expect(error).toBeInstanceOf(ZymkeyUnavailableError);
            expect((error as ZymkeyUnavailableError).reason).toBe('state-corrupt');
            return;
          }
          expect(read).toEqual(JSON.parse(text));
          expect(typed(() => parse(JSON.stringify(read), 'again.json'))).toEqual(read);
        }),
        0.6,
      );
    });
  }
});
