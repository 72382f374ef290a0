// Bytes of /etc/crypttab that zkluks does not own survive install and remove exactly: line ends
// (CRLF, mixed, a last line without one), comments and spacing; and the line zkluks writes is one
// cryptsetup's `read` loop sees whole (ended by a bare LF).
import { describe, expect, it } from 'vitest';
import {
  ZKLUKS_KEYSCRIPT,
  entries,
  parseCrypttab,
  restoreEntry,
  serializeCrypttab,
  setZkluksEntry,
  zkluksOptions,
} from '../../src/initramfs/crypttab.ts';

const UUID = '0b6d4a5e-3c1f-4a8e-9d2b-7f1e2c3d4e5f';
const OURS = `cryptroot UUID=${UUID} none luks,initramfs,keyscript=${ZKLUKS_KEYSCRIPT}`;

function roundTrip(before: string, name = 'cryptroot'): { installed: string; removed: string } {
  const tab = parseCrypttab(before);
  const installed = serializeCrypttab(setZkluksEntry(tab, { name, uuid: UUID }).crypttab);
  const removed = serializeCrypttab(restoreEntry(parseCrypttab(installed), tab, name));
  return { installed, removed };
}

describe('crypttab line ends', () => {
  it('keeps mixed LF and CRLF line ends byte for byte', () => {
    for (const text of ['a b\nc d\r\ne f\n', 'a b\r\nc d\ne f', 'a b\r\n\r\n# x\n', '\r\n\n']) {
      expect(serializeCrypttab(parseCrypttab(text))).toBe(text);
    }
  });

  it('splits lines at every LF, so a CRLF line after an LF line is a line of its own', () => {
    const tab = parseCrypttab('a /dev/a none luks\nb /dev/b none luks\r\nc /dev/c none luks\n');
    expect(entries(tab).map((e) => [e.name, e.options])).toEqual([
      ['a', [{ key: 'luks' }]],
      ['b', [{ key: 'luks' }]],
      ['c', [{ key: 'luks' }]],
    ]);
  });

  it('writes its own line with a bare LF in a CRLF file and keeps every other CRLF', () => {
    const before = '# mine\r\nother /dev/sdb none luks\r\n';
    const { installed, removed } = roundTrip(before);
    expect(installed).toBe(`${before}${OURS}\n`);
    expect(removed).toBe(before);
  });

  it('ends a last line that had no newline before appending, and takes that newline away again', () => {
    for (const before of [
      '# mine\nother /dev/sdb none luks',
      'other /dev/sdb none luks\r\nx /dev/x none',
      '# c',
    ]) {
      const { installed, removed } = roundTrip(before);
      expect(installed.endsWith(`\n${OURS}\n`)).toBe(true);
      expect(installed.startsWith(before)).toBe(true);
      expect(removed).toBe(before);
    }
  });

  it('rewrites a CRLF or unterminated root line with an LF and puts it back exactly on remove', () => {
    for (const before of [
      `# x\r\ncryptroot UUID=${UUID} none luks,discard\r\n# y\r\n`,
      `# x\ncryptroot UUID=${UUID} none luks,discard`,
    ]) {
      const { installed, removed } = roundTrip(before);
      expect(installed).toContain(
        `cryptroot UUID=${UUID} none luks,initramfs,discard,keyscript=${ZKLUKS_KEYSCRIPT}\n`,
      );
      expect(installed).not.toContain(`${ZKLUKS_KEYSCRIPT}\r`);
      expect(removed).toBe(before);
    }
  });

  it('splits fields at spaces and tabs only, as cryptsetup does', () => {
    const tab = parseCrypttab('a\u00a0b /dev/x none luks\n');
    expect(entries(tab)[0]?.name).toBe('a\u00a0b');
  });

  it('puts back a line it renamed, found by its source, when the backup has neither the UUID nor the name', () => {
    const before = '# x\nroot /dev/mmcblk0p2 none luks,discard\n';
    const tab = parseCrypttab(before);
    const installed = setZkluksEntry(tab, {
      name: 'cryptroot',
      uuid: UUID,
      source: '/dev/mmcblk0p2',
      deviceKnown: true,
    }).crypttab;
    expect(serializeCrypttab(installed)).toBe(
      `# x\ncryptroot UUID=${UUID} none luks,initramfs,discard,keyscript=${ZKLUKS_KEYSCRIPT}\n`,
    );
    expect(serializeCrypttab(restoreEntry(installed, tab, 'cryptroot'))).toBe(before);
  });
});

describe('crypttab tries= and key file', () => {
  it('raises tries=1, since the passphrase prompt only comes on the second try, and reports it', () => {
    const out = zkluksOptions([{ key: 'luks' }, { key: 'tries', value: '1' }]);
    expect(out.options).toContainEqual({ key: 'tries', value: '2' });
    expect(out.changed).toEqual([{ from: { key: 'tries', value: '1' }, to: { key: 'tries', value: '2' } }]);
  });

  it('keeps tries=0 (no limit) and tries=3, and drops a tries= cryptsetup would reject', () => {
    expect(zkluksOptions([{ key: 'tries', value: '0' }]).options).toContainEqual({
      key: 'tries',
      value: '0',
    });
    expect(zkluksOptions([{ key: 'tries', value: '3' }]).changed).toEqual([]);
    expect(zkluksOptions([{ key: 'tries', value: 'x' }]).dropped).toEqual([{ key: 'tries', value: 'x' }]);
  });

  it('says so when the key file field changes', () => {
    const tab = parseCrypttab(`cryptroot UUID=${UUID} /etc/keys/root.key luks\n`);
    const change = setZkluksEntry(tab, { name: 'cryptroot', uuid: UUID });
    expect(change.keyFile).toEqual({ before: '/etc/keys/root.key', after: 'none' });
    const same = setZkluksEntry(parseCrypttab(`cryptroot UUID=${UUID} none luks\n`), {
      name: 'cryptroot',
      uuid: UUID,
    });
    expect(same.keyFile).toBeNull();
  });
});
