// /etc/crypttab as data. Parsing keeps every line (comments, blank lines, odd spacing, a missing
// final newline) byte for byte, so serializing an unchanged table gives back the same text; only
// the one line zkluks manages is ever rewritten.
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

export type CrypttabLine =
  { kind: 'entry'; text: string; entry: CrypttabEntry } | { kind: 'other'; text: string };

export interface Crypttab {
  /** Lines without their terminator. */
  lines: CrypttabLine[];
  /** `\n` or `\r\n`, as the file used. */
  eol: string;
  /** Whether the text ended with a line terminator. */
  finalEol: boolean;
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

function parseLine(text: string): CrypttabLine {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed.startsWith('#')) return { kind: 'other', text };
  const fields = trimmed.split(/\s+/);
  const [name, source, keyFile, options] = fields;
  if (name === undefined || source === undefined) return { kind: 'other', text };
  return {
    kind: 'entry',
    text,
    entry: { name, source, keyFile: keyFile ?? 'none', options: parseOptions(options ?? '') },
  };
}

export function parseCrypttab(text: string): Crypttab {
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const finalEol = text.endsWith('\n');
  const body = finalEol ? text.slice(0, text.endsWith(eol) ? -eol.length : -1) : text;
  const rawLines = text === '' ? [] : body.split(eol);
  return { lines: rawLines.map(parseLine), eol, finalEol };
}

export function serializeCrypttab(tab: Crypttab): string {
  if (tab.lines.length === 0) return '';
  return tab.lines.map((l) => l.text).join(tab.eol) + (tab.finalEol ? tab.eol : '');
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

/** The options of a zkluks line, keeping the valid, non-conflicting options of an existing line. */
export function zkluksOptions(existing: readonly CrypttabOption[] = []): {
  options: CrypttabOption[];
  dropped: CrypttabOption[];
} {
  const kept: CrypttabOption[] = [];
  const dropped: CrypttabOption[] = [];
  for (const o of existing) {
    const ours = o.key === 'keyscript' && o.value === ZKLUKS_KEYSCRIPT;
    if (SET_ANEW.has(o.key) || ours) continue;
    if (CONFLICTING_OPTIONS.has(o.key) || !isValidOption(o.key)) dropped.push(o);
    else if (!kept.some((k) => k.key === o.key)) kept.push(o);
  }
  return {
    options: [{ key: 'luks' }, { key: 'initramfs' }, ...kept, { key: 'keyscript', value: ZKLUKS_KEYSCRIPT }],
    dropped,
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
}

/**
 * Add or update the crypttab line that makes cryptroot call the zkluks keyscript:
 * `<name> UUID=<uuid> none luks,initramfs,keyscript=/lib/cryptsetup/scripts/zkluks`.
 * An existing line for the device (or, failing that, the name) is rewritten in place; a new line
 * is appended. Refuses when the name already belongs to another device.
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
    /** The way forward when the name belongs to a line for another device (built by the caller). */
    takeOverHint?: string;
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
      { hint: 'zkluks initramfs install --name NAME VOLUME (a name no other line has)' },
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
      {
        hint: volume.takeOverHint ?? 'zkluks initramfs install --name NAME VOLUME (a name no other line has)',
      },
    );
  }
  const { options, dropped } = zkluksOptions(old?.kind === 'entry' ? old.entry.options : []);
  const entry: CrypttabEntry = { name: volume.name, source: `UUID=${uuid}`, keyFile: 'none', options };
  if (old?.kind === 'entry' && formatEntry(old.entry) === formatEntry(entry)) {
    return { crypttab: tab, action: 'unchanged', before: old.text, after: old.text, dropped: [] };
  }
  const text = formatEntry(entry);
  const line: CrypttabLine = { kind: 'entry', text, entry };
  if (old !== undefined) {
    const lines = tab.lines.map((l, i) => (i === index ? line : l));
    return { crypttab: { ...tab, lines }, action: 'update', before: old.text, after: text, dropped };
  }
  const lines = [...tab.lines, line];
  return { crypttab: { ...tab, lines, finalEol: true }, action: 'add', after: text, dropped };
}

/**
 * Undo setZkluksEntry for the mapping `name`: put back the line `backup` had for that device or name,
 * or remove the line when the backup had none. Every other line stays as it is now.
 */
export function restoreEntry(current: Crypttab, backup: Crypttab, name: string): Crypttab {
  const index = findEntryIndex(current, { name });
  if (index < 0) return current;
  const ours = current.lines[index];
  if (ours?.kind !== 'entry') return current;
  const uuid = sourceUuid(ours.entry.source);
  const prevIndex = findEntryIndex(backup, { ...(uuid === undefined ? {} : { uuid }), name });
  const found = backup.lines[prevIndex];
  // A backup taken after zkluks was already installed cannot say what was there before: then the
  // line only loses the keyscript, so cryptroot asks for the passphrase again.
  const prev: CrypttabLine | undefined =
    found?.kind === 'entry' && isZkluksEntry(found.entry) ? withoutKeyscript(ours.entry) : found;
  const lines =
    prev === undefined
      ? current.lines.filter((_, i) => i !== index)
      : current.lines.map((l, i) => (i === index ? prev : l));
  return { ...current, lines };
}

function withoutKeyscript(entry: CrypttabEntry): CrypttabLine {
  const stripped = { ...entry, options: entry.options.filter((o) => o.key !== 'keyscript') };
  return { kind: 'entry', text: formatEntry(stripped), entry: stripped };
}
