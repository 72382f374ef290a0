// Fuzzing /etc/crypttab's reader and editor: any text reads and writes back byte for byte; the zkluks
// edit changes only its own line (and the line end a last line needs before a new one), and remove
// gives back the file as it was; refusals are RefusedErrors.
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { expect } from 'vitest';
import { RefusedError } from '../../src/errors.ts';
import {
  ZKLUKS_KEYSCRIPT,
  findEntry,
  isZkluksEntry,
  parseCrypttab,
  restoreEntry,
  serializeCrypttab,
  setZkluksEntry,
  type CrypttabLine,
} from '../../src/initramfs/crypttab.ts';
import { anyText, fuzz, typed } from './fuzz.ts';

const UUID = '0b6d4a5e-3c1f-4a8e-9d2b-7f1e2c3d4e5f';

const ws = fc.constantFrom(' ', '\t', '  ', ' \t ');
const maybeWs = fc.constantFrom('', ' ', '\t');
const word = fc.stringMatching(/^[A-Za-z0-9_./=:#-]{1,10}$/);
const name = fc.oneof(fc.constantFrom('cryptroot', 'root', 'data', 'sda2_crypt'), word);
const source = fc.oneof(
  fc.constantFrom(
    `UUID=${UUID}`,
    `UUID=${UUID.toUpperCase()}`,
    `UUID="${UUID}"`,
    'UUID=ffffffff-0000-0000-0000-000000000000',
    '/dev/mmcblk0p2',
    'PARTUUID=1234-02',
  ),
  word,
);
const option = fc.oneof(
  fc.constantFrom(
    'luks',
    'initramfs',
    'discard',
    'tries=1',
    'tries=0',
    'tries=5',
    'tries=x',
    'tries=',
    'keyslot=1',
    'key-slot=2',
    `keyscript=${ZKLUKS_KEYSCRIPT}`,
    'keyscript=/lib/cryptsetup/scripts/zk_get_key',
    'swap',
    'plain',
    'nofail',
    'x-systemd.device-timeout=10s',
    'bogus',
  ),
  word,
);
const options = fc.array(option, { maxLength: 5 }).map((o) => o.join(','));
const entry = fc
  .tuple(
    maybeWs,
    name,
    ws,
    source,
    fc.option(
      fc.tuple(ws, fc.constantFrom('none', '-', '/etc/keys/root.key'), fc.option(fc.tuple(ws, options))),
    ),
    maybeWs,
  )
  .map(
    ([a, n, b, s, rest, z]) =>
      `${a}${n}${b}${s}${rest ? `${rest[0]}${rest[1]}${rest[2] ? rest[2].join('') : ''}` : ''}${z}`,
  );
const noNewline = anyText.map((t) => t.replace(/\n/g, ''));
const line = fc.oneof(
  { weight: 4, arbitrary: entry },
  { weight: 1, arbitrary: noNewline.map((t) => `#${t}`) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', '\t', '\r') },
  { weight: 1, arbitrary: noNewline },
);
/** A crypttab file: lines with LF or CRLF ends, the last one maybe without. */
const crypttabText = fc
  .tuple(
    fc.array(fc.tuple(line, fc.constantFrom('\n', '\r\n')), { maxLength: 8 }),
    fc.boolean(),
    fc.option(noNewline),
  )
  .map(([lines, finalEnd, tail]) => {
    let text = lines.map(([l, e]) => l + e).join('');
    if (!finalEnd && text.endsWith('\n')) text = text.replace(/\r?\n$/, '');
    return tail ? `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${tail}` : text;
  });

/** The fields cryptsetup's `IFS=" <tab>" read -r name source key options` gives for a line. */
function debianFields(text: string): string[] {
  return text.replace(/^[ \t]+|[ \t]+$/g, '').split(/[ \t]+/);
}

const same = (a: CrypttabLine | undefined, b: CrypttabLine | undefined) =>
  a !== undefined && b !== undefined && a.text === b.text && a.eol === b.eol;

describe('fuzz: crypttab', { timeout: 300_000 }, () => {
  it('reads any text and writes it back byte for byte, one line per LF, fields split as cryptsetup does', () => {
    fuzz(
      'crypttab read',
      fc.property(fc.oneof(anyText, crypttabText), (text) => {
        const tab = parseCrypttab(text);
        expect(serializeCrypttab(tab)).toBe(text);
        const pieces = text.split('\n');
        expect(tab.lines.length).toBe(pieces.at(-1) === '' ? pieces.length - 1 : pieces.length);
        for (const l of tab.lines) {
          expect(l.text.includes('\n')).toBe(false);
          if (l.kind !== 'entry') continue;
          const [n, s, k, o] = debianFields(l.text);
          expect([l.entry.name, l.entry.source, l.entry.keyFile]).toEqual([n, s, k ?? 'none']);
          expect(n?.startsWith('#')).toBe(false);
          expect(l.entry.options.map((x) => (x.value === undefined ? x.key : `${x.key}=${x.value}`))).toEqual(
            (o ?? '').split(',').filter((x) => x !== '' && o !== '-'),
          );
        }
      }),
    );
  });

  it('install changes only its own line, writes it so cryptsetup reads it whole, and remove restores the file exactly', () => {
    fuzz(
      'crypttab edit',
      fc.property(
        crypttabText,
        fc.constantFrom('cryptroot', 'root', 'data', 'bad name'),
        fc.option(fc.constantFrom('/dev/mmcblk0p2', 'PARTUUID=1234-02')),
        fc.boolean(),
        (text, volumeName, src, deviceKnown) => {
          const tab = parseCrypttab(text);
          const change = typed(
            () =>
              setZkluksEntry(tab, {
                name: volumeName,
                uuid: UUID,
                deviceKnown,
                ...(src === null ? {} : { source: src }),
              }),
            RefusedError,
          );
          if (change === undefined) return;
          const out = serializeCrypttab(change.crypttab);
          const before = tab.lines;
          const after = change.crypttab.lines;
          if (change.action === 'unchanged') {
            expect(out).toBe(text);
            return;
          }
          // Every line but its own is kept; an unterminated last line only gains a line end.
          const changedAt =
            change.action === 'add' ? before.length : after.findIndex((l, i) => !same(l, before[i]));
          expect(after.length).toBe(before.length + (change.action === 'add' ? 1 : 0));
          after.forEach((l, i) => {
            if (i === changedAt) return;
            const b = before[i];
            if (change.action === 'add' && i === before.length - 1 && b?.eol === '') {
              expect(l.text).toBe(b.text);
              expect(['\n', '\r\n']).toContain(l.eol);
            } else expect(same(l, b)).toBe(true);
          });
          const ours = after[changedAt];
          expect(ours?.eol).toBe('\n');
          expect(ours?.text.includes('\r')).toBe(false);
          // The written text reads back to the same zkluks line.
          const reread = parseCrypttab(out);
          expect(serializeCrypttab(reread)).toBe(out);
          const entry = findEntry(reread, { uuid: UUID });
          expect(entry !== undefined && isZkluksEntry(entry)).toBe(true);
          expect(entry?.name).toBe(volumeName);
          expect(entry?.keyFile).toBe('none');
          for (const o of entry?.options ?? []) {
            expect(['keyslot', 'key-slot', 'plain', 'swap']).not.toContain(o.key);
            if (o.key === 'tries') expect(o.value).toMatch(/^(0|[2-9]|[0-9]{2,})$/);
          }
          // Remove gives back exactly what there was, unless a zkluks line was already there.
          const old = change.before === undefined ? undefined : before.find((l) => l.text === change.before);
          if (old?.kind === 'entry' && isZkluksEntry(old.entry)) return;
          expect(serializeCrypttab(restoreEntry(reread, tab, volumeName))).toBe(text);
        },
      ),
    );
  });
});
