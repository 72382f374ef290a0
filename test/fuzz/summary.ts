// vitest globalSetup for the fuzz tier: clears the counts before the run and prints one line after it,
// "fuzz: N cases over M parsers, 0 failures", from what test/fuzz/fuzz.ts wrote (nothing when no
// fuzz test ran, e.g. in the boot project).
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const COUNTS_DIR = join(import.meta.dirname, '../../.cache/fuzz-counts');

export function setup(): void {
  rmSync(COUNTS_DIR, { recursive: true, force: true });
}

export function teardown(): void {
  if (!existsSync(COUNTS_DIR)) return;
  const per = new Map<string, { cases: number; failures: number }>();
  for (const f of readdirSync(COUNTS_DIR)) {
    const c = JSON.parse(readFileSync(join(COUNTS_DIR, f), 'utf8')) as {
      parser: string;
      cases: number;
      failures: number;
    };
    const sum = per.get(c.parser) ?? { cases: 0, failures: 0 };
    per.set(c.parser, { cases: sum.cases + c.cases, failures: sum.failures + c.failures });
  }
  if (per.size === 0) return;
  const all = [...per.values()];
  const cases = all.reduce((n, c) => n + c.cases, 0);
  const failures = all.reduce((n, c) => n + c.failures, 0);
  const each = [...per.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([p, c]) => `${p} ${c.cases}${c.failures > 0 ? ` (${c.failures} failed)` : ''}`);
  console.log(`fuzz: ${each.join(', ')}`);
  console.log(`fuzz: ${cases} cases over ${per.size} parsers, ${failures} failures`);
  // Printed once: a second teardown in the same run finds nothing.
  rmSync(COUNTS_DIR, { recursive: true, force: true });
}
