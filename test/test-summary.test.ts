// scripts/test's closing line names the opaque failure-path pass with its own counts (one figure per
// mode over all its parts), does not list the tests its -t filter left out as skipped, and fails
// when that filter matched no test.
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { repoRoot } from './helpers/cli.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const report = (passed: number, skipped: number, skippedNames: string[] = []) => ({
  numPassedTests: passed,
  numFailedTests: 0,
  numPendingTests: skipped,
  numTodoTests: 0,
  numTotalTests: passed + skipped,
  success: true,
  testResults: [
    {
      name: join(repoRoot, 'test/cli/verify.test.ts'),
      assertionResults: skippedNames.map((fullName) => ({ status: 'skipped', fullName })),
    },
  ],
});

function summary(opaque: ReturnType<typeof report>, extra: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), 'zkluks-summary-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'unit.json'), JSON.stringify(report(10, 0)));
  writeFileSync(join(dir, 'opaque-silent.json'), JSON.stringify(opaque));
  return execa(
    process.execPath,
    ['scripts/test-summary.mjs', ...extra, join(dir, 'unit.json'), join(dir, 'opaque-silent.json')],
    { cwd: repoRoot, reject: false },
  );
}

describe('the opaque pass in the test summary', () => {
  it('is named with its counts; the tests it filtered out are not skipped tests', async () => {
    const r = await summary(report(7, 25, ['zkluks verify reports a corrupt token']));
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('tests: 17 passed, 0 failed, 0 skipped;');
    expect(r.stdout).toContain('opaque pass (ZKLUKS_SIM_OPAQUE=silent): 7 passed, 0 failed');
    expect(r.stdout).toContain('skipped tests: none');
  });

  it('adds up the parts of one mode (the filtered files and the doctor file run whole) into one figure', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zkluks-summary-'));
    dirs.push(dir);
    const files = {
      'unit.json': report(10, 0),
      'opaque-hang.json': report(7, 25),
      'opaque-hang-doctor.json': report(17, 0),
      'opaque-plain.json': report(7, 25),
      'opaque-plain-doctor.json': { ...report(16, 0), numFailedTests: 1, numTotalTests: 17, success: false },
    };
    for (const [name, r] of Object.entries(files)) writeFileSync(join(dir, name), JSON.stringify(r));
    const r = await execa(
      process.execPath,
      ['scripts/test-summary.mjs', ...Object.keys(files).map((f) => join(dir, f))],
      { cwd: repoRoot, reject: false },
    );
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain(
      'opaque pass (ZKLUKS_SIM_OPAQUE=hang): 24 passed, 0 failed; opaque pass (ZKLUKS_SIM_OPAQUE=plain): 23 passed, 1 failed;',
    );
    expect(r.stdout).not.toContain('ZKLUKS_SIM_OPAQUE=hang-doctor');
  });

  it('fails the run when its filter matched no test', async () => {
    const r = await summary(report(0, 25));
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain('tier opaque-silent ran no test (its -t filter matched none)');
  });
});

describe('a tier an environment variable narrowed', () => {
  it('is named on the closing line', async () => {
    const r = await summary(report(7, 0), ['--narrowed', 'crash harness (only ZKLUKS_CRASH_CASES=rotate)']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('narrowed: crash harness (only ZKLUKS_CRASH_CASES=rotate);');
  });

  it('is not mentioned when nothing narrowed a tier', async () => {
    const r = await summary(report(7, 0));
    expect(r.stdout).not.toContain('narrowed');
  });
});
