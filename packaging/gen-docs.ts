// Writes the man pages (OUT/man1/*.1) and the bash completion (OUT/completion/zkluks) that
// scripts/build-deb puts in the package. Usage: gen-docs OUT VERSION DATE
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bashCompletion, commandDoc, manPages } from './docs.ts';

const [out, version, date] = process.argv.slice(2);
if (!out || !version || !date) {
  process.stderr.write('usage: gen-docs OUT VERSION DATE\n');
  process.exit(2);
}
const root = await commandDoc();
mkdirSync(join(out, 'man1'), { recursive: true });
mkdirSync(join(out, 'completion'), { recursive: true });
for (const [name, text] of manPages(root, version, date)) writeFileSync(join(out, 'man1', name), text);
writeFileSync(join(out, 'completion', 'zkluks'), bashCompletion(root));
