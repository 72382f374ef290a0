// /etc/crypttab as data. Parsing keeps every line (comments, blank lines, odd spacing) with its own
// line end (LF, CRLF, or none on the last line) byte for byte, so serializing an unchanged table gives
// back the same text; only the one line zkluks manages is ever rewritten. Lines split at LF and fields
// at spaces and tabs, as cryptsetup's `while IFS=" <tab>" read -r` loop does; that loop drops a last
// line without LF and keeps a CR in the last field, so the zkluks line always ends with a bare LF.
import { RefusedError } from '../errors.ts';

/** Where the keyscript lives on the system and, at the same path, in the initramfs. */
export const ZKLUKS_KEYSCRIPT = '/lib/cryptsetup/scripts/zkluks';

export interface CrypttabOption {
  key: string;
  /** undefined for a flag such as `luks`; '' for `key=`. */
  value?: string;
}

export interface CrypttabEntry {
  /** Field 1: the mapping name (/dev/mapper/<name>); the keyscript sees it as CRYPTTAB_NAME. */
  name: string;
  /** Field 2: a path, UUID=…, PARTUUID=…, LABEL=…; the keyscript sees it resolved as CRYPTTAB_SOURCE. */
  source: string;
  /** Field 3: the key file, or `none`/`-` for "ask" (passed to a keyscript as $1). */
  keyFile: string;
  options: CrypttabOption[];
}

/** How a line ends: '' only for a last line without a newline. */
export type LineEnd = '\n' | '\r\n' | '';

export type CrypttabLine = (
  { kind: 'entry'; text: string; entry: CrypttabEntry } | { kind: 'other'; text: string }
) & { eol: LineEnd };

export interface Crypttab {
  /** Every line, its text without the line end. */
  lines: CrypttabLine[];
}

/** Options that say the device is not LUKS, or is formatted afresh at every boot. */
const NOT_LUKS_OPTIONS = [
  'plain',
  'tcrypt',
  'veracrypt',
  'tcrypthidden',
  'tcrypt-hidden',
  'tcrypt-veracrypt',
  'bitlk',
  'fvault2',
  'swap',
  'tmp',
];

/** Options crypttab(5) documents: Debian's cryptsetup (initramfs and cryptdisks) and systemd-cryptsetup. */
const VALID_OPTIONS = new Set([
  // Debian cryptsetup
  'cipher',
  'hash',
  'size',
  'sector-size',
  'offset',
  'skip',
  'verify',
  'readonly',
  'read-only',
  'discard',
  'luks',
  ...NOT_LUKS_OPTIONS,
  'check',
  'checkargs',
  'tries',
  'initramfs',
  'noearly',
  'noauto',
  'loud',
  'quiet',
  'keyscript',
  'keyslot',
  'key-slot',
  'header',
  'keyfile-offset',
  'keyfile-size',
  'same-cpu-crypt',
  'submit-from-crypt-cpus',
  'no-read-workqueue',
  'no-write-workqueue',
  // systemd-cryptsetup (read by the booted system for the same file)
  'nofail',
  '_netdev',
  'timeout',
  'headless',
  'keyfile-timeout',
  'token-timeout',
  'password-echo',
  'try-empty-password',
  'link-volume-key',
  'fido2-device',
  'fido2-cid',
  'fido2-rp',
  'pkcs11-uri',
  'tpm2-device',
  'tpm2-pcrs',
  'tpm2-pin',
  'tpm2-signature',
  'tpm2-pcrlock',
  'tpm2-measure-pcr',
  'tpm2-measure-bank',
  'bypass-workqueues',
  'integrity',
]);

/** Options every zkluks line gets anew: an old line's copies are replaced, not reported as dropped. */
const SET_ANEW = new Set(['luks', 'initramfs']);

/**
 * Options that cannot stay on a zkluks line: `keyscript=` (ours is set anew), `keyslot=` (it would
 * stop the passphrase fallback from trying the other slots), and every option that says the device
 * is not LUKS or gets formatted at boot.
 */
const CONFLICTING_OPTIONS = new Set(['keyscript', 'keyslot', 'key-slot', ...NOT_LUKS_OPTIONS]);

export function isValidOption(key: string): boolean {
  return VALID_OPTIONS.has(key) || key.startsWith('x-systemd.') || key.startsWith('x-initrd.');
}

export function parseOptions(text: string): CrypttabOption[] {
  if (text === '' || text === '-') return [];
  return text
    .split(',')
    .filter((part) => part !== '')
    .map((part) => {
      const eq = part.indexOf('=');
      return eq < 0 ? { key: part } : { key: part.slice(0, eq), value: part.slice(eq + 1) };
    });
}

export function formatOptions(options: readonly CrypttabOption[]): string {
  return options.map((o) => (o.value === undefined ? o.key : `${o.key}=${o.value}`)).join(',');
}

export function optionValue(entry: CrypttabEntry, key: string): string | undefined {
  const found = entry.options.find((o) => o.key === key);
  return found === undefined ? undefined : (found.value ?? '');
}

function parseLine(text: string, eol: LineEnd): CrypttabLine {
  const trimmed = text.replace(/^[ \t]+|[ \t]+$/g, '');
  if (trimmed === '' || trimmed.startsWith('#')) return { kind: 'other', text, eol };
  const [name, source, keyFile, options] = trimmed.split(/[ \t]+/);
  if (name === undefined || source === undefined) return { kind: 'other', text, eol };
  return {
    kind: 'entry',
    text,
    eol,
    entry: { name, source, keyFile: keyFile ?? 'none', options: parseOptions(options ?? '') },
  };
}

export function parseCrypttab(text: string): Crypttab {
  const pieces = text.split('\n');
  // The piece after a final LF is not a line.
  const last = pieces.pop() ?? '';
  const lines = pieces.map((p) =>
    p.endsWith('\r') ? parseLine(p.slice(0, -1), '\r\n') : parseLine(p, '\n'),
  );
  if (last !== '') lines.push(parseLine(last, ''));
  return { lines };
}

export function serializeCrypttab(tab: Crypttab): string {
  return tab.lines.map((l) => l.text + l.eol).join('');
}

/** The line end most lines use (LF when none has one), for a line that needs one. */
function usualEol(lines: readonly CrypttabLine[]): '\n' | '\r\n' {
  const crlf = lines.filter((l) => l.eol === '\r\n').length;
  return crlf > lines.filter((l) => l.eol === '\n').length ? '\r\n' : '\n';
}

/** `lines` with every line but the last ended, so that a line can follow it. */
function ended(lines: readonly CrypttabLine[]): CrypttabLine[] {
  const eol = usualEol(lines);
  return lines.map((l) => (l.eol === '' ? { ...l, eol } : l));
}

export function entries(tab: Crypttab): CrypttabEntry[] {
  return tab.lines.flatMap((l) => (l.kind === 'entry' ? [l.entry] : []));
}

export function formatEntry(entry: CrypttabEntry): string {
  const fields = [entry.name, entry.source, entry.keyFile];
  if (entry.options.length > 0) fields.push(formatOptions(entry.options));
  return fields.join(' ');
}

export interface EntryQuery {
  /** The mapping name. */
  name?: string;
  /** The LUKS UUID; matches `UUID=<uuid>` (any case) in the source field. */
  uuid?: string;
  /** The source field as written, e.g. `/dev/mmcblk0p2`. */
  source?: string;
}

/** The UUID a `UUID=…` source field (quoted or not) names, lower case; undefined for other sources. */
export function sourceUuid(source: string): string | undefined {
  const m = /^UUID=("?)([^"]+)\1$/i.exec(source);
  return m?.[2]?.toLowerCase();
}

/**
 * The index in `tab.lines` of the entry the query names: by device first (UUID, then source),
 * then by name. -1 when none matches.
 */
export function findEntryIndex(tab: Crypttab, query: EntryQuery): number {
  const uuid = query.uuid?.toLowerCase();
  const matchers: Array<(e: CrypttabEntry) => boolean> = [];
  if (uuid !== undefined) matchers.push((e) => sourceUuid(e.source) === uuid);
  if (query.source !== undefined) matchers.push((e) => e.source === query.source);
  if (query.name !== undefined) matchers.push((e) => e.name === query.name);
  for (const matches of matchers) {
    const i = tab.lines.findIndex((l) => l.kind === 'entry' && matches(l.entry));
    if (i >= 0) return i;
  }
  return -1;
}

export function findEntry(tab: Crypttab, query: EntryQuery): CrypttabEntry | undefined {
  const line = tab.lines[findEntryIndex(tab, query)];
  return line?.kind === 'entry' ? line.entry : undefined;
}

/** Look a volume up the way a user names it: a mapping name, `UUID=…`, or a source path. */
export function findVolume(tab: Crypttab, volume: string): CrypttabEntry | undefined {
  const uuid = sourceUuid(volume);
  return findEntry(tab, uuid !== undefined ? { uuid } : { name: volume, source: volume });
}

export function isZkluksEntry(entry: CrypttabEntry): boolean {
  return optionValue(entry, 'keyscript') === ZKLUKS_KEYSCRIPT;
}

export interface OptionChange {
  from: CrypttabOption;
  to: CrypttabOption;
}

/**
 * The tries= a zkluks line needs: the keyscript unseals on the first try and asks for the passphrase
 * on the next one, so one try would end the boot at a rejected Zymkey key with no prompt. tries=1
 * becomes 2 (the one passphrase try it allowed); 0 (no limit) and higher counts stay.
 */
function triesOption(o: CrypttabOption): CrypttabOption | 'invalid' {
  // cryptsetup's initramfs scripts accept only digits here and skip the whole line otherwise.
  if (o.value === undefined || !/^[0-9]+$/.test(o.value)) return 'invalid';
  return Number(o.value) === 1 ? { key: 'tries', value: '2' } : o;
}

/** The options of a zkluks line, keeping the valid, non-conflicting options of an existing line. */
export function zkluksOptions(existing: readonly CrypttabOption[] = []): {
  options: CrypttabOption[];
  dropped: CrypttabOption[];
  /** Options kept with another value, and why is in triesOption. */
  changed: OptionChange[];
} {
  const kept: CrypttabOption[] = [];
  const dropped: CrypttabOption[] = [];
  const changed: OptionChange[] = [];
  for (const o of existing) {
    const ours = o.key === 'keyscript' && o.value === ZKLUKS_KEYSCRIPT;
    if (SET_ANEW.has(o.key) || ours) continue;
    if (CONFLICTING_OPTIONS.has(o.key) || !isValidOption(o.key)) dropped.push(o);
    else if (kept.some((k) => k.key === o.key)) continue;
    else if (o.key === 'tries') {
      const tries = triesOption(o);
      if (tries === 'invalid') dropped.push(o);
      else {
        if (tries !== o) changed.push({ from: o, to: tries });
        kept.push(tries);
      }
    } else kept.push(o);
  }
  return {
    options: [{ key: 'luks' }, { key: 'initramfs' }, ...kept, { key: 'keyscript', value: ZKLUKS_KEYSCRIPT }],
    dropped,
    changed,
  };
}

export interface ZkluksEntryChange {
  crypttab: Crypttab;
  action: 'add' | 'update' | 'unchanged';
  /** The line as it was (update/unchanged). */
  before?: string;
  /** The line as it is now. */
  after: string;
  /** Options of the old line that the new one does not keep. */
  dropped: CrypttabOption[];
  /** Options of the old line kept with another value (tries=1). */
  changed: OptionChange[];
  /** The key file field, when the old line had another one than the zkluks line's `none`. */
  keyFile: { before: string; after: string } | null;
}

/**
 * Add or update the crypttab line that makes cryptroot call the zkluks keyscript:
 * `<name> UUID=<uuid> none luks,initramfs,keyscript=/lib/cryptsetup/scripts/zkluks`.
 * An existing line for the device (or, failing that, the name) is rewritten in place; a new line
 * is appended. The line ends with LF whatever the file uses (see the top of this file); a last line
 * without one gets the file's usual line end so that the new line can follow it. Refuses when the
 * name already belongs to another device.
 */
export function setZkluksEntry(
  tab: Crypttab,
  volume: {
    name: string;
    uuid: string;
    /** A source field known to name this same device (e.g. '/dev/mmcblk0p2'). */
    source?: string;
    /** The device is known, so a same-named line with any other source is another device. */
    deviceKnown?: boolean;
  },
): ZkluksEntryChange {
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(volume.name)) {
    throw new RefusedError(
      `Refusing to use '${volume.name}' as a crypttab name: use letters, digits, . _ + -`,
    );
  }
  const uuid = volume.uuid.toLowerCase();
  let byDevice = findEntryIndex(tab, { uuid });
  if (byDevice < 0 && volume.source !== undefined) byDevice = findEntryIndex(tab, { source: volume.source });
  const byName = findEntryIndex(tab, { name: volume.name });
  if (byName >= 0 && byDevice >= 0 && byName !== byDevice) {
    throw new RefusedError(
      `Refusing to name the volume '${volume.name}' in crypttab: another line already uses that name for a different device`,
      { hint: 'zkluks initramfs install --name <another name>' },
    );
  }
  const index = byDevice >= 0 ? byDevice : byName;
  const old = index >= 0 ? tab.lines[index] : undefined;
  if (
    old?.kind === 'entry' &&
    byDevice < 0 &&
    (volume.deviceKnown || sourceUuid(old.entry.source) !== undefined)
  ) {
    throw new RefusedError(
      `Refusing to take over the crypttab line '${volume.name}': it names another device (${old.entry.source})`,
      { hint: 'zkluks initramfs install --name <another name>' },
    );
  }
  const { options, dropped, changed } = zkluksOptions(old?.kind === 'entry' ? old.entry.options : []);
  const entry: CrypttabEntry = { name: volume.name, source: `UUID=${uuid}`, keyFile: 'none', options };
  const oldKeyFile = old?.kind === 'entry' ? old.entry.keyFile : entry.keyFile;
  const keyFile = oldKeyFile === entry.keyFile ? null : { before: oldKeyFile, after: entry.keyFile };
  if (old?.kind === 'entry' && old.eol === '\n' && formatEntry(old.entry) === formatEntry(entry)) {
    return {
      crypttab: tab,
      action: 'unchanged',
      before: old.text,
      after: old.text,
      dropped: [],
      changed: [],
      keyFile: null,
    };
  }
  const text = formatEntry(entry);
  const line: CrypttabLine = { kind: 'entry', text, entry, eol: '\n' };
  const result = { after: text, dropped, changed, keyFile };
  if (old !== undefined) {
    const lines = tab.lines.map((l, i) => (i === index ? line : l));
    return { crypttab: { lines }, action: 'update', before: old.text, ...result };
  }
  return { crypttab: { lines: [...ended(tab.lines), line] }, action: 'add', ...result };
}

/**
 * The line of `backup` that `ours` (a zkluks line of `current`) took the place of: the one for the
 * same UUID, else the same name, else the only entry of the backup that is no longer in `current`
 * (a line install found by its device path and renamed). -1 when there was none.
 */
function replacedIndex(current: Crypttab, backup: Crypttab, ours: CrypttabEntry): number {
  const uuid = sourceUuid(ours.source);
  const found = findEntryIndex(backup, { ...(uuid === undefined ? {} : { uuid }), name: ours.name });
  if (found >= 0) return found;
  const now = new Set(current.lines.map((l) => l.text));
  const gone = backup.lines.flatMap((l, i) => (l.kind === 'entry' && !now.has(l.text) ? [i] : []));
  return gone.length === 1 ? (gone[0] ?? -1) : -1;
}

/**
 * Undo setZkluksEntry for the mapping `name`: put back the line `backup` had for that device or name
 * (with its own line end), or remove the line when the backup had none. Every other line stays as it
 * is now, except that the last line loses the line end setZkluksEntry gave it when the backup's last
 * line had none.
 */
export function restoreEntry(current: Crypttab, backup: Crypttab, name: string): Crypttab {
  const index = findEntryIndex(current, { name });
  if (index < 0) return current;
  const ours = current.lines[index];
  if (ours?.kind !== 'entry') return current;
  const found = backup.lines[replacedIndex(current, backup, ours.entry)];
  // A backup taken after zkluks was already installed cannot say what was there before: then the
  // line only loses the keyscript, so cryptroot asks for the passphrase again.
  const prev: CrypttabLine | undefined =
    found?.kind === 'entry' && isZkluksEntry(found.entry) ? withoutKeyscript(ours) : found;
  let lines =
    prev === undefined
      ? current.lines.filter((_, i) => i !== index)
      : current.lines.map((l, i) => (i === index ? prev : l));
  // A line put back from the end of the backup may now have lines after it.
  lines = [...ended(lines.slice(0, -1)), ...lines.slice(-1)];
  const backupLast = backup.lines.at(-1);
  const last = lines.at(-1);
  if (backupLast?.eol === '' && last !== undefined && last.text === backupLast.text) {
    lines = [...lines.slice(0, -1), { ...last, eol: '' }];
  }
  return { lines };
}

function withoutKeyscript(line: CrypttabLine & { kind: 'entry' }): CrypttabLine {
  const stripped = { ...line.entry, options: line.entry.options.filter((o) => o.key !== 'keyscript') };
  return { kind: 'entry', text: formatEntry(stripped), entry: stripped, eol: line.eol };
}

/**
 * The marker `initramfs install` leaves when it created /etc/crypttab, so that `initramfs remove`
 * takes the file away again instead of leaving an empty one behind.
 */
export const CRYPTTAB_ABSENT = '/etc/zkluks/crypttab.absent';

export const CRYPTTAB_ABSENT_TEXT =
  '# /etc/crypttab did not exist before `zkluks initramfs install`; `zkluks initramfs remove` deletes it again.\n';
