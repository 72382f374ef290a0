// Adds up vitest JSON reports into one closing line:
//   tests: N passed, N failed, N skipped; skipped tiers: boot (why); skipped tests: file > name, …
// Every tier that did not run (`--skipped-tier NAME=WHY`) and every skipped test is named on that
// line, so nothing is dropped silently. A tier whose report holds no test at all fails the run.
import { readFileSync } from 'node:fs';
import { basename, relative } from 'node:path';

const args = process.argv.slice(2);
const skippedTiers = [];
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--skipped-tier') skippedTiers.push(args[++i] ?? '?');
  else files.push(args[i]);
}

let passed = 0;
let failed = 0;
let skipped = 0;
const skippedTests = [];
const problems = [];
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
  for (const suite of report.testResults ?? []) {
    for (const t of suite.assertionResults ?? []) {
      if (t.status === 'pending' || t.status === 'skipped' || t.status === 'todo') {
        skippedTests.push(`${relative(process.cwd(), suite.name)} > ${t.fullName ?? t.title}`);
      }
    }
  }
}
const parts = [`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`];
if (problems.length > 0) parts.push(problems.join('; '));
parts.push(`skipped tiers: ${skippedTiers.length > 0 ? skippedTiers.join(', ') : 'none'}`);
parts.push(`skipped tests: ${skippedTests.length > 0 ? skippedTests.join(' | ') : 'none'}`);
console.log(parts.join('; '));
process.exit(failed === 0 && passed > 0 ? 0 : 1);
