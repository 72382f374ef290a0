// The esbuild plugin behind `import text from './file?raw'`: the file embedded as a string (the boot
// scripts' templates). Used by scripts/bundle.mjs and packaging/build-docs.mjs.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export const rawText = {
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
