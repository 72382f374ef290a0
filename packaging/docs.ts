// Man pages and bash completion for the Debian package, generated from the yargs command definitions
// that `zkluks --help` prints: the parser of src/cli/main.ts is asked for each command's help, so a
// command or option added there appears in both without a second list to keep in step.
import { createParser } from '../src/cli/main.ts';

export interface OptionDoc {
  /** `--dry-run`, with its alias first when there is one (`-h, --help`). */
  flags: string[];
  describe: string;
  /** What yargs prints in brackets: `boolean`, `string`, `required`, `default: false`, `choices: …`. */
  notes: string[];
  /** For `choices:` options, the values. */
  choices: string[];
  takesValue: boolean;
}

export interface PositionalDoc {
  name: string;
  describe: string;
  notes: string[];
}

export interface CommandDoc {
  /** Words after `zkluks`: [] for zkluks itself, ['initramfs', 'install'] for a subcommand. */
  path: string[];
  /** The first line of the help: `zkluks initramfs install [volume]`. */
  usage: string;
  /** The command's own description (the line under the usage). */
  describe: string;
  positionals: PositionalDoc[];
  options: OptionDoc[];
  subcommands: CommandDoc[];
}

/** The help yargs prints for `zkluks <path> --help`, unwrapped (one entry per line). */
export async function helpText(path: string[]): Promise<string> {
  const parser = (await createParser([...path, '--help'])).wrap(null);
  return await new Promise<string>((resolve, reject) => {
    void parser.parse([...path, '--help'], {}, (error: Error | undefined, _argv: unknown, output: string) => {
      if (error) reject(error);
      else resolve(output);
    });
  });
}

function sections(text: string): { head: string[]; body: Map<string, string[]> } {
  const head: string[] = [];
  const body = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of text.split('\n')) {
    const title = /^([A-Z][A-Za-z ]*):$/.exec(line);
    if (title) {
      current = [];
      body.set(title[1]!, current);
    } else if (current) {
      if (line.trim() !== '') current.push(line);
    } else {
      head.push(line);
    }
  }
  return { head, body };
}

/** `[boolean] [default: false]` at the end of an entry -> ['boolean', 'default: false']. */
function splitNotes(rest: string): { describe: string; notes: string[] } {
  const notes: string[] = [];
  let text = rest.trimEnd();
  for (;;) {
    const m = /\s*\[([^[\]]*)\]$/.exec(text);
    if (!m) break;
    notes.unshift(m[1]!);
    text = text.slice(0, m.index).trimEnd();
  }
  return { describe: text.trim(), notes };
}

function parseOption(line: string): OptionDoc | undefined {
  const m = /^\s+((?:-\w, )?--[\w-]+)(.*)$/.exec(line);
  if (!m) return undefined;
  const { describe, notes } = splitNotes(m[2]!);
  const choiceNote = notes.find((n) => n.startsWith('choices:'));
  const choices = choiceNote ? [...choiceNote.matchAll(/"([^"]*)"/g)].map((c) => c[1]!) : [];
  return {
    flags: m[1]!.split(', '),
    describe,
    notes,
    choices,
    takesValue: !notes.includes('boolean') && !notes.includes('count'),
  };
}

function parsePositional(line: string): PositionalDoc | undefined {
  const m = /^\s+([\w-]+)\s{2,}(.*)$/.exec(line);
  if (!m) return undefined;
  return { name: m[1]!, ...splitNotes(m[2]!) };
}

/** The help of one command and, recursively, of its subcommands. */
export async function commandDoc(path: string[] = []): Promise<CommandDoc> {
  const { head, body } = sections(await helpText(path));
  const text = head.filter((l) => l.trim() !== '');
  const usage = text[0]?.trim() ?? `zkluks ${path.join(' ')}`;
  const describe = text.slice(1).join(' ').trim();
  const children: string[] = [];
  for (const line of body.get('Commands') ?? []) {
    const words = line.trim().split(/\s+/);
    // `zkluks initramfs install [volume]  Install …`: the word after this command's path.
    const name = words[1 + path.length];
    if (name && /^[a-z][\w-]*$/.test(name) && !children.includes(name)) children.push(name);
  }
  const subcommands: CommandDoc[] = [];
  for (const name of children) subcommands.push(await commandDoc([...path, name]));
  return {
    path,
    usage,
    describe,
    positionals: (body.get('Positionals') ?? []).flatMap((l) => parsePositional(l) ?? []),
    options: (body.get('Options') ?? []).flatMap((l) => parseOption(l) ?? []),
    subcommands,
  };
}

// ---- man pages -------------------------------------------------------------------------------------

/** Text for roff: backslashes, hyphens that are minus signs, and a leading dot or quote. */
function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(/^([.'])/, '\\&$1')
    .replace(/…/g, '...')
    .replace(/→|->/g, '\\->');
}

function manName(path: string[]): string {
  return ['zkluks', ...path].join('-');
}

function optionsRoff(options: OptionDoc[]): string[] {
  return options.flatMap((o) => [
    '.TP',
    `.B ${o.flags.map(roff).join(', ')}${o.takesValue ? ` \\fIVALUE\\fR` : ''}`,
    `${roff(o.describe)}${o.notes.length ? ` [${roff(o.notes.join('] ['))}]` : ''}`,
  ]);
}

function commandRoff(doc: CommandDoc, globalFlags: Set<string>): string[] {
  const own = doc.options.filter((o) => !o.flags.some((f) => globalFlags.has(f)));
  const lines = ['.PP', `.B ${roff(doc.usage)}`, '.RS', roff(doc.describe)];
  if (doc.positionals.length > 0) {
    lines.push(
      ...doc.positionals.flatMap((p) => [
        '.TP',
        `.I ${roff(p.name)}`,
        `${roff(p.describe)}${p.notes.length ? ` [${roff(p.notes.join('] ['))}]` : ''}`,
      ]),
    );
  }
  lines.push(...optionsRoff(own), '.RE');
  for (const sub of doc.subcommands) lines.push(...commandRoff(sub, globalFlags));
  return lines;
}

const EXIT_STATUS = [
  '.SH EXIT STATUS',
  '.TP',
  '.B 0',
  'Success.',
  '.TP',
  '.B 1',
  'Failed (the message names the cause and, on a hint: line, the fix).',
  '.TP',
  '.B 2',
  'Usage error: an unknown command or option, or a missing argument.',
  '.TP',
  '.B 3',
  'Refused by a safety rule (for example, it would leave no other way into the volume).',
  '.TP',
  '.B 4',
  'The Zymkey is unavailable.',
];

/** One man page (section 1) per top-level command, plus zkluks(1) for the whole tool. */
export function manPages(root: CommandDoc, version: string, date: string): Map<string, string> {
  const pages = new Map<string, string>();
  const globalFlags = new Set(root.options.flatMap((o) => o.flags));
  const seeAlso = root.subcommands.map((c) => `.BR ${manName(c.path)} (1)`).join(',\n');
  const header = (name: string) =>
    `.TH ${name.toUpperCase()} 1 "${date}" "zkluks ${version}" "zkluks manual"`;
  pages.set(
    'zkluks.1',
    [
      '.\\" Generated from zkluks\'s command definitions (packaging/docs.ts); do not edit.',
      header('zkluks'),
      '.SH NAME',
      `zkluks \\- ${roff(root.describe.replace(/\.$/, ''))}`,
      '.SH SYNOPSIS',
      `.B zkluks`,
      '.I command',
      '[\\fIoptions\\fR]',
      '.SH DESCRIPTION',
      'zkluks seals a LUKS key with a Zymbit Zymkey, enrolls it in its own LUKS2 keyslot beside a',
      'recovery key, installs initramfs-tools boot files that unseal it at boot (falling back to the',
      'passphrase prompt), and explains failed unlocks with',
      '.BR "zkluks doctor" .',
      '.SH COMMANDS',
      ...root.subcommands.flatMap((c) => [
        '.TP',
        `.B ${roff(c.usage)}`,
        `${roff(c.describe)} See`,
        `.BR ${manName(c.path)} (1).`,
      ]),
      '.SH OPTIONS',
      'Every command accepts these options.',
      ...optionsRoff(root.options),
      ...EXIT_STATUS,
      '.SH ENVIRONMENT',
      '.TP',
      '.B ZKLUKS_BACKEND',
      'Default of \\-\\-backend.',
      '.TP',
      '.B ZKLUKS_SIM_STATE',
      'Default of \\-\\-sim\\-state.',
      '.SH FILES',
      '.TP',
      '.I /etc/crypttab',
      'The line that names the zkluks keyscript.',
      '.TP',
      '.I /lib/cryptsetup/scripts/zkluks',
      'The keyscript cryptroot runs at boot.',
      '.SH SEE ALSO',
      `${seeAlso},`,
      '.BR cryptsetup (8),',
      '.BR crypttab (5),',
      '.BR update\\-initramfs (8)',
      '',
    ].join('\n'),
  );
  for (const cmd of root.subcommands) {
    const name = manName(cmd.path);
    pages.set(
      `${name}.1`,
      [
        '.\\" Generated from zkluks\'s command definitions (packaging/docs.ts); do not edit.',
        header(name),
        '.SH NAME',
        `${roff(name)} \\- ${roff(cmd.describe.replace(/\.$/, ''))}`,
        '.SH SYNOPSIS',
        ...(cmd.subcommands.length > 0 ? cmd.subcommands : [cmd]).flatMap((c) => [
          `.B ${roff(c.usage)}`,
          '[\\fIoptions\\fR]',
          '.br',
        ]),
        '.SH DESCRIPTION',
        ...commandRoff(cmd, globalFlags),
        '.SH GLOBAL OPTIONS',
        'See',
        '.BR zkluks (1)',
        `for ${[...globalFlags].map((f) => `\\fB${roff(f)}\\fR`).join(', ')}.`,
        ...EXIT_STATUS,
        '.SH SEE ALSO',
        '.BR zkluks (1)',
        '',
      ].join('\n'),
    );
  }
  return pages;
}

// ---- bash completion -------------------------------------------------------------------------------

function allCommands(doc: CommandDoc): CommandDoc[] {
  return [doc, ...doc.subcommands.flatMap(allCommands)];
}

function shellWord(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** A bash completion script: commands, subcommands, options and option values, per command. */
export function bashCompletion(root: CommandDoc): string {
  const commands = allCommands(root);
  const cases = commands.map((c) => {
    const subs = c.subcommands.map((s) => s.path.at(-1)!).join(' ');
    const opts = c.options.flatMap((o) => o.flags).join(' ');
    return `    ${shellWord(c.path.join(' '))}) subs=${shellWord(subs)} opts=${shellWord(opts)} ;;`;
  });
  const valued = new Map<string, string[]>();
  for (const c of commands) {
    for (const o of c.options) {
      if (!o.takesValue) continue;
      for (const f of o.flags) valued.set(f, o.choices);
    }
  }
  const choiceCases = [...valued]
    .filter(([, choices]) => choices.length > 0)
    .map(
      ([flag, choices]) =>
        `    ${flag}) mapfile -t COMPREPLY < <(compgen -W ${shellWord(choices.join(' '))} -- "$cur"); return ;;`,
    );
  const fileFlags = [...valued].filter(([, choices]) => choices.length === 0).map(([flag]) => flag);
  const known = commands.filter((c) => c.path.length > 0).map((c) => shellWord(c.path.join(' ')));
  return [
    '# bash completion for zkluks. Generated from its command definitions (packaging/docs.ts).',
    '# shellcheck shell=bash',
    '_zkluks() {',
    '  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} path="" word i subs opts',
    '  case "$prev" in',
    ...choiceCases,
    ...(fileFlags.length > 0
      ? [`    ${fileFlags.join(' | ')}) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;`]
      : []),
    '  esac',
    '  # The command path so far: each word that extends a known command.',
    '  for ((i = 1; i < COMP_CWORD; i++)); do',
    '    word=${COMP_WORDS[i]}',
    '    case "$word" in -*) continue ;; esac',
    '    case "${path:+$path }$word" in',
    `      ${known.join(' | ')}) path=\${path:+$path }$word ;;`,
    '    esac',
    '  done',
    '  case "$path" in',
    ...cases,
    '    *) subs="" opts="" ;;',
    '  esac',
    '  if [[ $cur == -* ]]; then',
    '    mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")',
    '  elif [ -n "$subs" ]; then',
    '    mapfile -t COMPREPLY < <(compgen -W "$subs" -- "$cur")',
    '  else',
    '    mapfile -t COMPREPLY < <(compgen -f -- "$cur")',
    '  fi',
    '}',
    'complete -F _zkluks zkluks',
    '',
  ].join('\n');
}
