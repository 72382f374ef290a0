// Builds dist/zkluks.mjs: one file an admin copies to a Pi and runs with plain `node`.
// i2c-bus stays external: it is a native addon, loaded lazily and optional.
import { build } from 'esbuild';
import { chmodSync, readFileSync, renameSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

const outfile = new URL('../dist/zkluks.mjs', import.meta.url).pathname;
// `import text from './file?raw'` embeds the file as a string (the boot-script templates).
const rawText = {
  name: 'raw-text',
  setup(b) {
    b.onResolve({ filter: /\?raw$/ }, (args) => ({
      path: resolve(dirname(args.importer), args.path.slice(0, -'?raw'.length)),
      namespace: 'raw-text',
    }));
    b.onLoad({ filter: /.*/, namespace: 'raw-text' }, (args) => ({
      contents: readFileSync(args.path, 'utf8'),
      loader: 'text',
    }));
  },
};

await build({
  plugins: [rawText],
  entryPoints: [new URL('../src/cli/bin.ts', import.meta.url).pathname],
  bundle: true,
  platform: 'node',
  target: 'node18.19',
  format: 'esm',
  outfile: `${outfile}.${process.pid}.tmp`,
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
// Written aside and renamed, so a test running the previous bundle never sees a half-written file.
chmodSync(`${outfile}.${process.pid}.tmp`, 0o755);
renameSync(`${outfile}.${process.pid}.tmp`, outfile);
