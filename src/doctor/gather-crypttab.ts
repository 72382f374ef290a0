// crypttab under --root, through the shared parser, reduced to what the checks need.
import { existsSync } from 'node:fs';
import { formatOptions, parseCrypttab, optionValue } from '../initramfs/crypttab.ts';
import { under } from '../root-path.ts';
import { known, type CrypttabEntryFacts, type CrypttabFacts, type Fact } from './facts.ts';
import { readUnder } from './gather-system.ts';

export const CRYPTTAB = '/etc/crypttab';

function keyscriptPath(value: string): string {
  return value.startsWith('/') ? value : `/lib/cryptsetup/scripts/${value}`;
}

export function gatherCrypttab(root: string): Fact<CrypttabFacts> {
  const text = readUnder(root, CRYPTTAB);
  if (!text.ok) return text;
  const tab = parseCrypttab(text.value);
  const entries: CrypttabEntryFacts[] = [];
  tab.lines.forEach((line, i) => {
    if (line.kind !== 'entry') return;
    const e = line.entry;
    const keyscript = optionValue(e, 'keyscript');
    const options = formatOptions(e.options);
    entries.push({
      name: e.name,
      source: e.source,
      keyFile: e.keyFile,
      options: options === '' ? [] : options.split(','),
      line: i + 1,
      keyscriptPresent: keyscript ? existsSync(under(root, keyscriptPath(keyscript))) : null,
    });
  });
  return known({ path: CRYPTTAB, entries });
}

/** The entry that unlocks the root: one with a Zymkey keyscript, else one marked initramfs, else the first. */
export function rootEntry(entries: readonly CrypttabEntryFacts[]): CrypttabEntryFacts | undefined {
  return (
    entries.find((e) => e.options.some((o) => /^keyscript=.*(zkluks|zk_get_key)$/.test(o))) ??
    entries.find((e) => e.options.includes('initramfs')) ??
    entries[0]
  );
}
