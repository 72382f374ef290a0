// The fuzz tier's one entry point: run a fast-check property for a named parser, write how many
// cases ran (and whether one failed) where the summary (test/fuzz/summary.ts) adds them up, and fail
// the test with fast-check's report (seed and shrunk counterexample) when the property does not hold.
// ZKLUKS_FUZZ_RUNS sets the cases per property (default 10,000), ZKLUKS_FUZZ_SEED replays a run.
import fc from 'fast-check';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ZkluksError } from '../../src/errors.ts';

export const COUNTS_DIR = join(import.meta.dirname, '../../.cache/fuzz-counts');
export const RUNS = Number(process.env.ZKLUKS_FUZZ_RUNS ?? 10_000);
const SEED = process.env.ZKLUKS_FUZZ_SEED === undefined ? undefined : Number(process.env.ZKLUKS_FUZZ_SEED);

/** Check `property` on `share` × RUNS cases (the shares of one parser's properties add up to 1 or more). */
export function fuzz<Ts extends [unknown, ...unknown[]]>(
  parser: string,
  property: fc.IProperty<Ts>,
  share = 1,
): void {
  const numRuns = Math.max(1, Math.round(RUNS * share));
  const details = fc.check(property, { numRuns, ...(SEED === undefined ? {} : { seed: SEED }) });
  mkdirSync(COUNTS_DIR, { recursive: true });
  writeFileSync(
    join(COUNTS_DIR, `${process.pid}-${Date.now()}-${Math.random().toString(16).slice(2)}.json`),
    JSON.stringify({ parser, cases: details.numRuns, failures: details.failed ? 1 : 0 }),
  );
  if (details.failed) throw new Error(fc.defaultReportMessage(details) ?? 'property failed');
}

/**
 * Run `parse`; a thrown error must be a ZkluksError (a typed, explained refusal), of `type` when
 * given. Returns the result, or undefined after a typed error.
 */
export function typed<T>(
  parse: () => T,
  type: abstract new (...args: never[]) => Error = ZkluksError,
): T | undefined {
  try {
    return parse();
  } catch (error) {
    if (error instanceof type) return undefined;
    throw error;
  }
}

/** Every place in a parsed JSON value, depth first: each object (or array) with one of its keys. */
export function jsonPlaces(value: unknown): Array<[Record<string, unknown>, string]> {
  const places: Array<[Record<string, unknown>, string]> = [];
  const walk = (o: unknown) => {
    if (typeof o !== 'object' || o === null) return;
    for (const k of Object.keys(o)) {
      places.push([o as Record<string, unknown>, k]);
      walk((o as Record<string, unknown>)[k]);
    }
  };
  walk(value);
  return places;
}

/** Any text: printable ASCII, the line ends and whitespace parsers split on, and any Unicode. */
export const anyText = fc.oneof(
  fc.string({ unit: fc.constantFrom(...' \t\r\n#=,[]"\'aZ09_-./:'.split('')), maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ maxLength: 80 }),
);
