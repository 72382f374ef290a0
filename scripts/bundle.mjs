// Builds dist/: the zkluks.mjs entry and the chunks it loads on demand (one per command, and what
// they share), the directory an admin copies to a Pi and runs with plain `node dist/zkluks.mjs`.
// i2c-bus stays external: it is a native addon, loaded lazily and optional. yargs' `assert` import
// gets the two checks it uses (src/cli/yargs-assert.ts) instead of node:assert.
// Two passes: the first build is asked for `zkluks --help` (src/cli/top-help.ts), which the second
// carries, so the entry prints it without loading yargs.
import { build } from 'esbuild';
import { rawText } from './raw-text-plugin.mjs';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = new URL('../dist', import.meta.url).pathname;
const tmp = `${dist}/.build-${process.pid}`;
const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

mkdirSync(dist, { recursive: true });
const options = {
  plugins: [rawText],
  entryPoints: { zkluks: new URL('../src/cli/bin.ts', import.meta.url).pathname },
  bundle: true,
  splitting: true,
  platform: 'node',
  target: 'node18.19',
  format: 'esm',
  outExtension: { '.js': '.mjs' },
  chunkNames: '[name]-[hash]',
  external: ['i2c-bus'],
  alias: { assert: new URL('../src/cli/yargs-assert.ts', import.meta.url).pathname },
  metafile: true,
  logLevel: 'warning',
  banner: {
    js: [
      "import { createRequire as __zkCreateRequire } from 'node:module';",
      'const require = __zkCreateRequire(import.meta.url);',
    ].join('\n'),
  },
};
const define = { ZKLUKS_VERSION: JSON.stringify(version) };

const first = await build({ ...options, outdir: `${tmp}-help`, define });
const mainChunk = Object.entries(first.metafile.outputs).find(([, o]) =>
  o.entryPoint?.endsWith('src/cli/main.ts'),
)?.[0];
if (!mainChunk) throw new Error('bundle: no chunk for src/cli/main.ts');
const { prebuiltHelpTexts } = await import(pathToFileURL(resolve(mainChunk)).href);
const help = await prebuiltHelpTexts();
rmSync(`${tmp}-help`, { recursive: true, force: true });

const result = await build({
  ...options,
  outdir: tmp,
  define: { ...define, ZKLUKS_TOP_HELP: JSON.stringify(help) },
});
// Chunks have content-hashed names and go in first; the entry is renamed in last, so a test running
// the previous build never sees a half-written one. Files of earlier builds are removed after.
const built = Object.keys(result.metafile.outputs).map((p) => basename(p));
// Files read beside the code at run time, under their own licences (packaging/copyright.mjs names them).
const besides = ['src/migrate/adopt/debian-initramfs-tools.postinst'];
for (const file of besides) {
  copyFileSync(new URL(`../${file}`, import.meta.url), join(tmp, basename(file)));
  built.push(basename(file));
}
for (const name of built.filter((n) => n !== 'zkluks.mjs')) renameSync(join(tmp, name), join(dist, name));
const entry = join(tmp, 'zkluks.mjs');
writeFileSync(entry, `#!/usr/bin/env node\n${readFileSync(entry, 'utf8')}`, { mode: 0o755 });
chmodSync(entry, 0o755);
renameSync(entry, join(dist, 'zkluks.mjs'));
rmSync(tmp, { recursive: true, force: true });
for (const name of readdirSync(dist)) {
  if (!built.includes(name) && !name.startsWith('.build-'))
    rmSync(join(dist, name), { recursive: true, force: true });
}
