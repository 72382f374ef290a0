// Bundles packaging/gen-docs.ts (with the command definitions it reads) and runs it:
//   node packaging/build-docs.mjs OUT VERSION DATE
import { build } from 'esbuild';
import { rawText } from '../scripts/raw-text-plugin.mjs';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

const here = dirname(new URL(import.meta.url).pathname);
const cache = resolve(here, '../.cache/packaging');
mkdirSync(cache, { recursive: true });
const outfile = resolve(cache, 'gen-docs.mjs');
await build({
  plugins: [rawText],
  entryPoints: [resolve(here, 'gen-docs.ts')],
  bundle: true,
  platform: 'node',
  target: 'node18.19',
  format: 'esm',
  outfile,
  external: ['i2c-bus'],
  define: { ZKLUKS_VERSION: JSON.stringify(process.argv[3] ?? 'development') },
  logLevel: 'warning',
  banner: {
    js: "import { createRequire as __zkCreateRequire } from 'node:module';\nconst require = __zkCreateRequire(import.meta.url);",
  },
});
execFileSync(process.execPath, [outfile, ...process.argv.slice(2)], { stdio: 'inherit' });
