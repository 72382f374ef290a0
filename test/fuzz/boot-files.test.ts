// Fuzzing the readers of the boot record (/run/zkluks/<name>.record), config.txt and the kernel
// command line (cmdline.txt): any text reads without a crash, and what the keyscript or an admin
// writes reads back exactly.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseBootRecord } from '../../src/doctor/gather-boot-record.ts';
import { parseConfigTxt } from '../../src/initramfs/boot-image.ts';
import { promptConsole } from '../../src/initramfs/console.ts';
import { anyText, fuzz } from './fuzz.ts';

const key = fc.oneof(
  fc.stringMatching(/^[a-z_][a-z0-9_]{0,15}$/),
  fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty'),
);
const value = fc.oneof(
  fc.stringMatching(/^[^\n]{0,40}$/).map((v) => v.trim()),
  fc.constantFrom('ok', 'zymkey', 'self-destructed', 'a=b=c', ''),
);
const eol = fc.constantFrom('\n', '\r\n');

describe('fuzz: boot record', { timeout: 300_000 }, () => {
  it('reads back every key=value line the keyscript writes, whatever the key', () => {
    fuzz(
      'boot record',
      fc.property(fc.dictionary(key, value, { maxKeys: 12 }), eol, (fields, end) => {
        const text = Object.entries(fields)
          .map(([k, v]) => `${k}=${v}${end}`)
          .join('');
        const read = parseBootRecord(text);
        expect(Object.keys(read).sort()).toEqual(Object.keys(fields).sort());
        for (const [k, v] of Object.entries(fields))
          expect(Object.getOwnPropertyDescriptor(read, k)?.value).toBe(v);
      }),
      0.5,
    );
  });

  it('reads any text without a crash, one field per line, no line breaks in keys or values', () => {
    fuzz(
      'boot record',
      fc.property(anyText, (text) => {
        const read = parseBootRecord(text);
        const lines = text.split('\n').filter((l) => l.indexOf('=') > 0);
        expect(Object.keys(read).length).toBeLessThanOrEqual(lines.length);
        for (const [k, v] of Object.entries(read)) {
          expect(k).not.toMatch(/[\n]/);
          expect(v).not.toMatch(/[\n]/);
        }
      }),
      0.5,
    );
  });
});

const cfgKey = fc.stringMatching(/^[A-Za-z0-9_]{1,16}$/);
const cfgValue = fc.stringMatching(/^[^#\n\r]{0,30}$/).map((v) => v.trim());
const cfgLine = fc.oneof(
  fc.tuple(cfgKey, cfgValue).map(([k, v]) => ({ text: `${k}=${v}`, line: { key: k, value: v } })),
  fc
    .tuple(
      fc.constantFrom('initramfs', 'include'),
      fc.stringMatching(/^[A-Za-z0-9_.]{1,12}( followkernel)?$/),
    )
    .map(([k, v]) => ({ text: `${k} ${v}`, line: { key: k, value: v } })),
  fc.stringMatching(/^[^\n]{0,30}$/).map((c) => ({ text: `# ${c}`, line: null })),
  fc.constantFrom('', '  ', '\t').map((t) => ({ text: t, line: null })),
  fc
    .constantFrom('all', 'pi4', 'pi5', 'cm4', 'none', 'PI4')
    .map((s) => ({ text: `[${s}]`, section: s.toLowerCase(), line: null })),
);

describe('fuzz: config.txt and cmdline.txt', { timeout: 300_000 }, () => {
  it('reads back the lines of a config.txt with their sections, whatever the line ends', () => {
    fuzz(
      'config.txt',
      fc.property(fc.array(fc.tuple(cfgLine, eol), { maxLength: 12 }), (lines) => {
        const text = lines.map(([l, e]) => l.text + e).join('');
        let section = 'all';
        const want: Array<{ section: string; key: string; value: string }> = [];
        for (const [l] of lines) {
          if ('section' in l && l.section !== undefined) section = l.section;
          else if (l.line) want.push({ section, ...l.line });
        }
        expect(parseConfigTxt(text)).toEqual(want);
      }),
      0.5,
    );
  });

  it('reads any config.txt text without a crash; keys hold no whitespace and values are trimmed', () => {
    fuzz(
      'config.txt',
      fc.property(anyText, (text) => {
        for (const l of parseConfigTxt(text)) {
          expect(l.key).not.toMatch(/\s/);
          expect(l.key).not.toBe('');
          expect(l.value).toBe(l.value.trim());
          expect(l.section).not.toMatch(/\n/);
        }
      }),
      0.5,
    );
  });

  it('finds the prompt on the last console= of any command line', () => {
    const word = fc.stringMatching(/^[A-Za-z0-9_.=,:/-]{1,20}$/);
    const consoleArg = fc.stringMatching(/^[A-Za-z0-9]{1,8}(,[0-9a-z]{1,8})?$/).map((c) => `console=${c}`);
    fuzz(
      'cmdline.txt',
      fc.property(
        fc.array(fc.oneof(word, consoleArg), { maxLength: 10 }),
        fc.constantFrom(' ', '  ', '\t'),
        fc.constantFrom('', '\n', ' \n'),
        (words, sep, end) => {
          const found = promptConsole(words.join(sep) + end);
          const consoles = words.filter((w) => w.startsWith('console=')).map((w) => w.slice(8));
          expect(found.consoles).toEqual(consoles);
          expect(found.device).toBe(consoles.length === 0 ? 'tty0' : consoles.at(-1)!.split(',')[0]);
          expect(found.summary).not.toMatch(/\n/);
        },
      ),
      0.5,
    );
    fuzz(
      'cmdline.txt',
      fc.property(anyText, (text) => {
        const found = promptConsole(text);
        expect(typeof found.device).toBe('string');
        expect(found.consoles.length).toBe(text.split(/\s+/).filter((w) => w.startsWith('console=')).length);
      }),
      0.5,
    );
  });
});
