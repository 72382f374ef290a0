// The boot record the keyscript writes to /run/zkluks/<name>.record (key=value lines).
import { readdirSync, statSync } from 'node:fs';
import { BOOT_PATHS } from '../initramfs/boot-files.ts';
import { under } from '../root-path.ts';
import { known, missing, type BootRecordFacts, type Fact } from './facts.ts';
import { readUnder } from './gather-system.ts';

export const BOOT_RECORD_DIR = BOOT_PATHS.runDir;

export function parseBootRecord(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    // defineProperty: a key such as __proto__ is a field like any other, not the object's prototype.
    const field = { value: line.slice(eq + 1).trim(), enumerable: true, writable: true, configurable: true };
    if (eq > 0) Object.defineProperty(fields, line.slice(0, eq).trim(), field);
  }
  return fields;
}

export function gatherBootRecord(root: string, name: string | null): Fact<BootRecordFacts> {
  let file: string | undefined;
  if (name) file = `${BOOT_RECORD_DIR}/${name}.record`;
  else {
    try {
      const found = readdirSync(under(root, BOOT_RECORD_DIR)).filter((f) => f.endsWith('.record'));
      file = found[0] && `${BOOT_RECORD_DIR}/${found[0]}`;
    } catch {
      file = undefined;
    }
  }
  if (!file) return missing(`no boot record in '${BOOT_RECORD_DIR}'`);
  const text = readUnder(root, file);
  if (!text.ok) return text;
  const writtenAt = statSync(under(root, file)).mtime.toISOString();
  return known({ path: file, fields: parseBootRecord(text.value), writtenAt });
}
