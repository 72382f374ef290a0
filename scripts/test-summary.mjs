// Adds up vitest JSON reports into one closing line:
//   tests: N passed, N failed, N skipped; hints: N followed, N worked; skipped tiers: boot (why); …
// `--hint-counts DIR` sums the per-file counts the hint harness (test/hints/follow.ts) left there into
// the one hints figure; a hint followed that did not work fails the run.
// Every tier that did not run (`--skipped-tier NAME=WHY`) and every skipped test is named on that
// line, so nothing is dropped silently, and so is every tier an environment variable narrowed
// (`--narrowed WHAT`). A tier whose report holds no test at all fails the run.
// A report named `opaque-<mode>.json` or `opaque-<mode>-<part>.json` is (part of) the failure-path
// pass with ZKLUKS_SIM_OPAQUE=<mode>: each mode is named once with the counts of all its parts, and
// the tests a part filtered out (-t) are not listed as skipped.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join, relative } from 'node:path';

const args = process.argv.slice(2);
const skippedTiers = [];
const narrowed = [];
const files = [];
let hintCountsDir = null;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--skipped-tier') skippedTiers.push(args[++i] ?? '?');
  else if (args[i] === '--narrowed') narrowed.push(args[++i] ?? '?');
  else if (args[i] === '--hint-counts') hintCountsDir = args[++i] ?? null;
  else files.push(args[i]);
}

let passed = 0;
let failed = 0;
let skipped = 0;
const skippedTests = [];
const problems = [];
/** Per opaque mode, in the order first seen: its passed and failed counts over all its parts. */
const opaquePasses = new Map();
for (const file of files) {
  const tier = basename(file, '.json');
  const report = JSON.parse(readFileSync(file, 'utf8'));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + report.numTodoTests;
  if (!report.success && report.numFailedTests === 0) failed += 1; // a suite that failed to load
  if (report.numTotalTests === 0) {
    failed += 1;
    problems.push(`tier ${tier} ran no test`);
  }
  const opaque = /^opaque-([^-]+)(?:-.+)?$/.exec(tier);
  if (opaque) {
    skipped -= report.numPendingTests + report.numTodoTests;
    if (report.numTotalTests > 0 && report.numPassedTests + report.numFailedTests === 0) {
      failed += 1;
      problems.push(`tier ${tier} ran no test (its -t filter matched none)`);
    }
    const mode = opaquePasses.get(opaque[1]) ?? { passed: 0, failed: 0 };
    mode.passed += report.numPassedTests;
    mode.failed += report.numFailedTests;
    opaquePasses.set(opaque[1], mode);
    continue;
  }
  for (const suite of report.testResults ?? []) {
    for (const t of suite.assertionResults ?? []) {
      if (t.status === 'pending' || t.status === 'skipped' || t.status === 'todo') {
        skippedTests.push(`${relative(process.cwd(), suite.name)} > ${t.fullName ?? t.title}`);
      }
    }
  }
}
const parts = [`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`];
if (hintCountsDir !== null) {
  const counts = existsSync(hintCountsDir)
    ? readdirSync(hintCountsDir)
        .filter((f) => f.endsWith('.json'))
        .map((f) => JSON.parse(readFileSync(join(hintCountsDir, f), 'utf8')))
    : [];
  const followed = counts.reduce((n, c) => n + c.followed, 0);
  const worked = counts.reduce((n, c) => n + c.worked, 0);
  parts.push(`hints: ${followed} followed, ${worked} worked`);
  if (worked < followed) {
    failed += 1;
    problems.push(`${followed - worked} hints followed did not work`);
  }
}
for (const [mode, n] of opaquePasses) {
  parts.push(`opaque pass (ZKLUKS_SIM_OPAQUE=${mode}): ${n.passed} passed, ${n.failed} failed`);
}
if (problems.length > 0) parts.push(problems.join('; '));
parts.push(`skipped tiers: ${skippedTiers.length > 0 ? skippedTiers.join(', ') : 'none'}`);
if (narrowed.length > 0) parts.push(`narrowed: ${narrowed.join(', ')}`);
parts.push(`skipped tests: ${skippedTests.length > 0 ? skippedTests.join(' | ') : 'none'}`);
console.log(parts.join('; '));
process.exit(failed === 0 && passed > 0 ? 0 : 1);
