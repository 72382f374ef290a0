// vitest globalSetup for the hint harness: after the run, one line summed over every hint test file,
// "hints: N followed, N worked", from the counts test/hints/follow.ts keeps per file (nothing when no
// hint test ran). With ZKLUKS_HINTS_DETAIL=1 each file also prints its own line. The counts stay on
// disk for scripts/test-summary.mjs, which puts the same sum on the closing line of scripts/test.
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where each hint test file leaves its counts (test/hints/follow.ts writes them). */
export const HINT_COUNTS_DIR = join(import.meta.dirname, '../../.cache/hint-counts');

let startedAt = 0;

export function setup(): void {
  startedAt = Date.now();
}

/** The counts written since `since` (ms): one entry per hint test file. */
export function hintCountsSince(
  dir: string,
  since: number,
): { file: string; followed: number; worked: number }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') && statSync(join(dir, f)).mtimeMs >= since)
    .map(
      (f) =>
        JSON.parse(readFileSync(join(dir, f), 'utf8')) as { file: string; followed: number; worked: number },
    );
}

export function teardown(): void {
  // A file's counts are rewritten by every run of it; older ones belong to another run.
  const files = hintCountsSince(HINT_COUNTS_DIR, startedAt - 1000);
  // Each project runs the global teardown (each its own copy of this module): the first to finish
  // leaves a mark, and the line is printed once per run.
  const mark = join(HINT_COUNTS_DIR, 'printed');
  if (files.length === 0 || (existsSync(mark) && statSync(mark).mtimeMs >= startedAt)) return;
  writeFileSync(mark, '');
  const followed = files.reduce((n, c) => n + c.followed, 0);
  const worked = files.reduce((n, c) => n + c.worked, 0);
  console.log(
    `hints: ${followed} followed, ${worked} worked (${files.length} file${files.length === 1 ? '' : 's'})`,
  );
}
