// `npm run bench`: builds dist/, compiles bench/bench.ts (it shares the test tiers' kernel and
// initramfs helpers) into .cache/bench/ and runs it. Arguments go through: --runs N, --smoke.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
execFileSync(process.execPath, [`${repo}scripts/bundle.mjs`], { stdio: 'inherit' });
const out = `${repo}.cache/bench/bench.mjs`;
await build({
  entryPoints: [`${repo}bench/bench.ts`],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  packages: 'external',
  outfile: out,
  logLevel: 'warning',
});
await import(pathToFileURL(out).href);
