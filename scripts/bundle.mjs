// Builds dist/zkluks.mjs: one file an admin copies to a Pi and runs with plain `node`.
// i2c-bus stays external: it is a native addon, loaded lazily and optional.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';

const outfile = new URL('../dist/zkluks.mjs', import.meta.url).pathname;
await build({
  entryPoints: [new URL('../src/cli/bin.ts', import.meta.url).pathname],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  outfile,
  external: ['i2c-bus'],
  logLevel: 'warning',
  banner: {
    js: [
      '#!/usr/bin/env node',
      "import { createRequire as __zkCreateRequire } from 'node:module';",
      'const require = __zkCreateRequire(import.meta.url);',
    ].join('\n'),
  },
});
chmodSync(outfile, 0o755);
