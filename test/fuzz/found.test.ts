// Inputs the fuzzers found, kept as ordinary tests: each failed before its parser was fixed.
import { describe, expect, it } from 'vitest';
import { ZkluksError } from '../../src/errors.ts';
import { parseBootRecord } from '../../src/doctor/gather-boot-record.ts';
import {
  parseCrypttab,
  restoreEntry,
  serializeCrypttab,
  setZkluksEntry,
} from '../../src/initramfs/crypttab.ts';
import { parseHeader } from '../../src/keyslot/header.ts';

const UUID = '0b6d4a5e-3c1f-4a8e-9d2b-7f1e2c3d4e5f';
const CONTEXT = { volume: '/dev/fuzz', uuid: UUID };

describe('found by fuzzing', () => {
  it('crypttab: a last line ending in a bare CR comes back exactly after install and remove', () => {
    for (const before of ['\r', '# x\r', 'a /dev/a none luks\n\r', '- \r']) {
      const tab = parseCrypttab(before);
      const installed = serializeCrypttab(setZkluksEntry(tab, { name: 'cryptroot', uuid: UUID }).crypttab);
      expect(serializeCrypttab(restoreEntry(parseCrypttab(installed), tab, 'cryptroot'))).toBe(before);
    }
  });

  it('LUKS2 metadata: a token or keyslot id beyond 31, or written with a leading zero, is malformed', () => {
    const meta = (keyslots: object, tokens: object) =>
      JSON.stringify({ keyslots, tokens, config: { json_size: '12288' } });
    const slot = { type: 'luks2', kdf: { type: 'pbkdf2', iterations: 1000, salt: 'AAAA' } };
    expect(() => parseHeader(meta({}, { 32: { type: 'zkluks-zymkey', keyslots: [] } }), CONTEXT)).toThrow(
      ZkluksError,
    );
    expect(() => parseHeader(meta({ 1: slot, '01': slot }, {}), CONTEXT)).toThrow(
      /keyslots entry '01' is malformed/,
    );
    expect(() => parseHeader(meta({ 1: slot }, { 0: { type: 'x', keyslots: ['40'] } }), CONTEXT)).toThrow(
      /names a keyslot outside 0…31/,
    );
    expect(
      parseHeader(meta({ 31: slot }, { 0: { type: 'x', keyslots: ['31'] } }), CONTEXT).tokens[0]?.keyslots,
    ).toEqual([31]);
  });

  it('boot record: a line whose key is __proto__ is a field, not the prototype', () => {
    const read = parseBootRecord('__proto__=x\nmethod=zymkey\n');
    expect(Object.keys(read)).toEqual(['__proto__', 'method']);
    expect(Object.getOwnPropertyDescriptor(read, '__proto__')?.value).toBe('x');
    expect(Object.getPrototypeOf(read)).toBe(Object.prototype);
  });
});
