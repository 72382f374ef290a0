// The closing line of scripts/test carries one hints figure, summed over every hint test file's
// counts, and a hint followed that did not work fails the run.
import { execa } from 'execa';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cli.ts';
import { hintCountsSince } from './summary.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function run(counts: { file: string; followed: number; worked: number }[]) {
  const dir = mkdtempSync(join(tmpdir(), 'zkluks-hint-summary-'));
  dirs.push(dir);
  mkdirSync(join(dir, 'counts'));
  for (const c of counts) writeFileSync(join(dir, 'counts', `${c.file}.json`), JSON.stringify(c));
  const report = {
    numPassedTests: 3,
    numFailedTests: 0,
    numPendingTests: 0,
    numTodoTests: 0,
    numTotalTests: 3,
    success: true,
    testResults: [],
  };
  writeFileSync(join(dir, 'unit.json'), JSON.stringify(report));
  return {
    dir,
    result: execa(
      process.execPath,
      ['scripts/test-summary.mjs', '--hint-counts', join(dir, 'counts'), join(dir, 'unit.json')],
      { cwd: repoRoot, reject: false },
    ),
  };
}

describe('the hints figure in the test summary', () => {
  it('sums every hint file into one line', async () => {
    const { dir, result } = run([
      { file: 'hints', followed: 7, worked: 7 },
      { file: 'journeys', followed: 6, worked: 6 },
      { file: 'doctor-hints', followed: 4, worked: 4 },
    ]);
    const r = await result;
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^tests: 3 passed, 0 failed, 0 skipped; hints: 17 followed, 17 worked; /);
    expect(r.stdout.match(/hints:/g)).toHaveLength(1);
    expect(
      hintCountsSince(join(dir, 'counts'), 0)
        .map((c) => c.file)
        .sort(),
    ).toEqual(['doctor-hints', 'hints', 'journeys']);
    // Counts older than the run are another run's.
    expect(hintCountsSince(join(dir, 'counts'), Date.now() + 60_000)).toEqual([]);
  });

  it('fails the run when a hint followed did not work', async () => {
    const r = await run([
      { file: 'hints', followed: 7, worked: 6 },
      { file: 'journeys', followed: 6, worked: 6 },
    ]).result;
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/hints: 13 followed, 12 worked; 1 hints followed did not work/);
  });
});
