import { describe, expect, it } from 'vitest';
import {
  ZKLUKS_KEYSCRIPT,
  findEntry,
  findVolume,
  formatOptions,
  isZkluksEntry,
  parseCrypttab,
  parseOptions,
  restoreEntry,
  serializeCrypttab,
  setZkluksEntry,
  sourceUuid,
} from '../../src/initramfs/crypttab.ts';
import { RefusedError } from '../../src/errors.ts';

const UUID = '0b6d4a5e-3c1f-4a8e-9d2b-7f1e2c3d4e5f';
const OURS = `cryptroot UUID=${UUID} none luks,initramfs,keyscript=${ZKLUKS_KEYSCRIPT}`;

const SAMPLE = [
  '# <target name>\t<source device>\t\t<key file>\t<options>',
  '',
  'cryptroot   /dev/mmcblk0p2   none   luks,discard,keyslot=1,tries=5',
  '  data\tUUID=1111-2222  /etc/keys/data.key luks,nofail  ',
  '# swap',
  'cswap /dev/sda3 /dev/urandom swap,cipher=aes-xts-plain64,size=256',
  'odd-line-with-one-field',
  '',
].join('\n');

describe('crypttab parsing', () => {
  it('serializes an unchanged table byte for byte, comments, spacing and blank lines included', () => {
    for (const text of [
      SAMPLE,
      SAMPLE.trimEnd(),
      '',
      '\n',
      '# only a comment',
      'a b\r\nc d\r\n',
      '\n\n#x\n',
    ]) {
      expect(serializeCrypttab(parseCrypttab(text))).toBe(text);
    }
  });

  it('reads the four fields and the options of each entry', () => {
    const tab = parseCrypttab(SAMPLE);
    expect(findEntry(tab, { name: 'data' })).toEqual({
      name: 'data',
      source: 'UUID=1111-2222',
      keyFile: '/etc/keys/data.key',
      options: [{ key: 'luks' }, { key: 'nofail' }],
    });
    expect(findEntry(tab, { name: 'cryptroot' })?.options).toEqual([
      { key: 'luks' },
      { key: 'discard' },
      { key: 'keyslot', value: '1' },
      { key: 'tries', value: '5' },
    ]);
    expect(findEntry(tab, { name: 'odd-line-with-one-field' })).toBeUndefined();
  });

  it('parses and formats options, flags and empty values alike', () => {
    expect(parseOptions('luks,keyscript=/x,header=')).toEqual([
      { key: 'luks' },
      { key: 'keyscript', value: '/x' },
      { key: 'header', value: '' },
    ]);
    expect(parseOptions('-')).toEqual([]);
    expect(formatOptions(parseOptions('luks,keyscript=/x,header='))).toBe('luks,keyscript=/x,header=');
  });

  it('finds a volume by name, by UUID= in any case, or by source path', () => {
    const tab = parseCrypttab(SAMPLE);
    expect(findVolume(tab, 'data')?.name).toBe('data');
    expect(findVolume(tab, 'uuid=1111-2222')?.name).toBe('data');
    expect(findVolume(tab, '/dev/mmcblk0p2')?.name).toBe('cryptroot');
    expect(findVolume(tab, 'nothing')).toBeUndefined();
  });

  it('reads UUID= sources quoted or not, and nothing else as a UUID', () => {
    expect(sourceUuid(`UUID="${UUID.toUpperCase()}"`)).toBe(UUID);
    expect(sourceUuid(`uuid=${UUID}`)).toBe(UUID);
    expect(sourceUuid(`UUID="${UUID}`)).toBeUndefined();
    expect(sourceUuid('UUID=')).toBeUndefined();
    expect(sourceUuid(`PARTUUID=${UUID}`)).toBeUndefined();
    expect(sourceUuid('/dev/mmcblk0p2')).toBeUndefined();
  });
});

describe('setZkluksEntry', () => {
  it('appends the zkluks line to a table without the volume and keeps everything else', () => {
    const tab = parseCrypttab('# mine\nother /dev/sdb none luks');
    const change = setZkluksEntry(tab, { name: 'cryptroot', uuid: UUID.toUpperCase() });
    expect(change.action).toBe('add');
    expect(serializeCrypttab(change.crypttab)).toBe(`# mine\nother /dev/sdb none luks\n${OURS}\n`);
  });

  it('writes a first line into an empty table', () => {
    const change = setZkluksEntry(parseCrypttab(''), { name: 'cryptroot', uuid: UUID });
    expect(serializeCrypttab(change.crypttab)).toBe(`${OURS}\n`);
  });

  it('rewrites the existing line in place, drops keyslot= and keeps valid options', () => {
    const tab = parseCrypttab(SAMPLE);
    const change = setZkluksEntry(tab, { name: 'cryptroot', uuid: UUID });
    expect(change.action).toBe('update');
    expect(change.before).toBe('cryptroot   /dev/mmcblk0p2   none   luks,discard,keyslot=1,tries=5');
    expect(change.after).toBe(
      `cryptroot UUID=${UUID} none luks,initramfs,discard,tries=5,keyscript=${ZKLUKS_KEYSCRIPT}`,
    );
    expect(change.dropped).toEqual([{ key: 'keyslot', value: '1' }]);
    const out = serializeCrypttab(change.crypttab).split('\n');
    const before = SAMPLE.split('\n');
    expect(out).toHaveLength(before.length);
    expect(out.filter((_, i) => i !== 2)).toEqual(before.filter((_, i) => i !== 2));
  });

  it('drops unknown options, another keyscript and a key file, and never adds options of its own', () => {
    const tab = parseCrypttab(
      `root UUID=${UUID} /etc/keys/root.key luks,bogus-opt,keyscript=/lib/cryptsetup/scripts/zk_get_key,x-systemd.device-timeout=10s,key-slot=2\n`,
    );
    const change = setZkluksEntry(tab, { name: 'root', uuid: UUID });
    expect(change.after).toBe(
      `root UUID=${UUID} none luks,initramfs,x-systemd.device-timeout=10s,keyscript=${ZKLUKS_KEYSCRIPT}`,
    );
    expect(change.dropped.map((o) => o.key)).toEqual(['bogus-opt', 'keyscript', 'key-slot']);
  });

  it('drops options that say the device is not LUKS, but not its own luks and initramfs flags', () => {
    const tab = parseCrypttab(`root UUID=${UUID} none initramfs,plain,luks,tcrypt,swap,tmp,discard\n`);
    const change = setZkluksEntry(tab, { name: 'root', uuid: UUID });
    expect(change.after).toBe(`root UUID=${UUID} none luks,initramfs,discard,keyscript=${ZKLUKS_KEYSCRIPT}`);
    expect(change.dropped.map((o) => o.key)).toEqual(['plain', 'tcrypt', 'swap', 'tmp']);
  });

  it('finds the line by device even when it has another name, and keeps that name only if asked', () => {
    const tab = parseCrypttab(`sda2_crypt UUID=${UUID} none luks\n`);
    const change = setZkluksEntry(tab, { name: 'cryptroot', uuid: UUID });
    expect(serializeCrypttab(change.crypttab)).toBe(`${OURS}\n`);
  });

  it('reports an already installed line as unchanged and returns the same text', () => {
    const text = `# x\n${OURS}\n`;
    const change = setZkluksEntry(parseCrypttab(text), { name: 'cryptroot', uuid: UUID });
    expect(change.action).toBe('unchanged');
    expect(serializeCrypttab(change.crypttab)).toBe(text);
  });

  it('refuses to take a name that another device already uses', () => {
    const tab = parseCrypttab(`cryptroot UUID=ffffffff-0000-0000-0000-000000000000 none luks\n`);
    expect(() => setZkluksEntry(tab, { name: 'cryptroot', uuid: UUID })).toThrow(RefusedError);
    const two = parseCrypttab(`cryptroot /dev/sda2 none luks\nother UUID=${UUID} none luks\n`);
    expect(() => setZkluksEntry(two, { name: 'cryptroot', uuid: UUID })).toThrow(/another line already uses/);
  });

  it('refuses a name crypttab cannot hold', () => {
    expect(() => setZkluksEntry(parseCrypttab(''), { name: 'has space', uuid: UUID })).toThrow(RefusedError);
  });

  it('marks the line as a zkluks line', () => {
    const change = setZkluksEntry(parseCrypttab(''), { name: 'cryptroot', uuid: UUID });
    const entry = findEntry(change.crypttab, { name: 'cryptroot' });
    expect(entry && isZkluksEntry(entry)).toBe(true);
    expect(isZkluksEntry(findEntry(parseCrypttab(SAMPLE), { name: 'cryptroot' })!)).toBe(false);
  });
});

describe('restoreEntry', () => {
  it('puts the original line back and keeps edits made to other lines since', () => {
    const backup = parseCrypttab(SAMPLE);
    const installed = setZkluksEntry(backup, { name: 'cryptroot', uuid: UUID }).crypttab;
    const edited = parseCrypttab(serializeCrypttab(installed) + 'new /dev/sdc none luks\n');
    const restored = serializeCrypttab(restoreEntry(edited, backup, 'cryptroot'));
    expect(restored).toBe(SAMPLE + 'new /dev/sdc none luks\n');
  });

  it('removes the line when the backup had none', () => {
    const backup = parseCrypttab('# empty\n');
    const installed = setZkluksEntry(backup, { name: 'cryptroot', uuid: UUID }).crypttab;
    expect(serializeCrypttab(restoreEntry(installed, backup, 'cryptroot'))).toBe('# empty\n');
  });

  it('only drops the keyscript when the backup already held the zkluks line', () => {
    const backup = parseCrypttab(`${OURS}\n`);
    expect(serializeCrypttab(restoreEntry(backup, backup, 'cryptroot'))).toBe(
      `cryptroot UUID=${UUID} none luks,initramfs\n`,
    );
  });
});
