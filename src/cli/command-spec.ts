// The command tree as data, read from the same yargs command definitions the CLI parses: each
// command's words, positionals and options. Used to answer a mistyped flag with the nearest real one
// and the subcommand's --help, and by the hint tests to prove that every `zkluks …` a hint names
// is a command line the CLI accepts.
import type { CommandModule } from 'yargs';
import { commands, loadCommand } from './commands.ts';
import { withGlobalOptions } from './global-options.ts';

export interface CommandSpec {
  /** The words that select it: ['recovery', 'verify']. */
  path: string[];
  /** Positional names in order, with whether each is required. */
  positionals: { name: string; required: boolean }[];
  /** Option names (kebab-case, without --) and whether each is a boolean. */
  options: Map<string, { boolean: boolean; required: boolean }>;
  subcommands: CommandSpec[];
}

type OptionSpec = { type?: string; demandOption?: unknown; default?: unknown };

/** Records what a builder declares. Any other Argv method is accepted and ignored. */
function recorder(spec: CommandSpec): unknown {
  const self: unknown = new Proxy(
    {},
    {
      get(_target, method) {
        return (...args: unknown[]) => {
          if (method === 'option' || method === 'positional') {
            const [name, o] = args as [string, OptionSpec | undefined];
            if (method === 'option') {
              spec.options.set(name, { boolean: o?.type === 'boolean', required: Boolean(o?.demandOption) });
            }
          } else if (method === 'options') {
            for (const [name, o] of Object.entries(args[0] as Record<string, OptionSpec>)) {
              spec.options.set(name, { boolean: o.type === 'boolean', required: Boolean(o.demandOption) });
            }
          } else if (method === 'command') {
            const list = Array.isArray(args[0]) ? args[0] : [args[0]];
            for (const c of list as CommandModule[]) spec.subcommands.push(specOf(c, spec.path));
          }
          return self;
        };
      },
    },
  );
  return self;
}

function specOf(module: CommandModule, parent: string[]): CommandSpec {
  const words = String(Array.isArray(module.command) ? module.command[0] : module.command).split(/\s+/);
  const spec: CommandSpec = {
    path: [...parent, words[0] ?? ''],
    positionals: words.slice(1).flatMap((w) => {
      const m = /^([<[])([^>\]]+)[>\]]$/.exec(w);
      return m ? [{ name: m[2] ?? '', required: m[1] === '<' }] : [];
    }),
    options: new Map(),
    subcommands: [],
  };
  if (typeof module.builder === 'function') {
    (module.builder as (y: unknown) => unknown)(recorder(spec));
  } else if (module.builder) {
    (recorder(spec) as { options(o: unknown): void }).options(module.builder);
  }
  // A command with subcommands takes its words from them, not from its own <action> positional.
  if (spec.subcommands.length > 0) spec.positionals = [];
  return spec;
}

let tree: Promise<CommandSpec> | undefined;

/** The whole CLI: the top level holds the global options, its subcommands every command. */
export function commandTree(): Promise<CommandSpec> {
  tree ??= (async () => {
    const top: CommandSpec = { path: [], positionals: [], options: new Map(), subcommands: [] };
    withGlobalOptions(recorder(top) as never);
    top.options.set('help', { boolean: true, required: false });
    top.options.set('version', { boolean: true, required: false });
    for (const entry of commands) top.subcommands.push(specOf(await loadCommand(entry), []));
    return top;
  })();
  return tree;
}

/** The deepest command the leading words of `args` select, and the words after it. */
export async function selectCommand(args: readonly string[]): Promise<{ spec: CommandSpec; rest: string[] }> {
  const top = await commandTree();
  let spec = top;
  const rest: string[] = [];
  let selecting = true;
  for (const a of args) {
    const next =
      selecting && !a.startsWith('-') ? spec.subcommands.find((s) => s.path.at(-1) === a) : undefined;
    if (next) spec = next;
    else {
      if (!a.startsWith('-') || a === '-') selecting = false;
      rest.push(a);
    }
  }
  return { spec, rest };
}

/** Every option a command accepts: its own and the global ones. */
function optionsOf(
  spec: CommandSpec,
  top: CommandSpec,
): Map<string, { boolean: boolean; required: boolean }> {
  return new Map([...top.options, ...spec.options]);
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const here = row[j] ?? 0;
      row[j] = Math.min(here + 1, (row[j - 1] ?? 0) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = here;
    }
  }
  return row[b.length] ?? 0;
}

/** The real option nearest to `name`, when one is near enough to be what was meant. */
export async function nearestOption(spec: CommandSpec, name: string): Promise<string | null> {
  const options = optionsOf(spec, await commandTree());
  // --no-X of a boolean is answered in its own form: --no-updat -> --no-update.
  if (name.startsWith('no-')) {
    const near = await nearestOption(spec, name.slice(3));
    if (near !== null && options.get(near)?.boolean === true) return `no-${near}`;
  }
  let best: { name: string; d: number } | null = null;
  for (const option of options.keys()) {
    // A shared word ('key-file' in unlock-key-file and recovery-key-file) counts as near.
    const shared = option.split('-').filter((w) => w.length > 2 && name.split('-').includes(w)).length;
    const d = distance(name, option) - shared * 3;
    if (!best || d < best.d) best = { name: option, d };
  }
  return best && best.d <= Math.max(2, Math.floor(name.length / 2)) ? best.name : null;
}

/** The --flags in `args` the selected command does not know (kebab-case, without --). */
export async function unknownOptions(
  args: readonly string[],
): Promise<{ spec: CommandSpec; unknown: string[] }> {
  const { spec, rest } = await selectCommand(args);
  const known = optionsOf(spec, await commandTree());
  const unknown: string[] = [];
  for (const a of rest) {
    if (a === '--') break;
    if (!a.startsWith('--')) continue;
    const name = a.slice(2).split('=')[0] ?? '';
    const plain = name.startsWith('no-') && known.get(name.slice(3)) ? name.slice(3) : name;
    if (!known.has(plain) && !unknown.includes(name)) unknown.push(name);
  }
  return { spec, unknown };
}

/**
 * Why the words of a `zkluks …` command line would not parse (a word that is no command, a flag the
 * command does not have, a missing VOLUME), or null when the CLI accepts it.
 */
export async function commandLineProblem(args: readonly string[]): Promise<string | null> {
  const { spec, rest } = await selectCommand(args);
  if (spec.subcommands.length > 0 && !rest.includes('--help'))
    return `'zkluks ${spec.path.join(' ')}' needs a subcommand`;
  const { unknown } = await unknownOptions(args);
  if (unknown.length > 0) return `'zkluks ${spec.path.join(' ')}' has no --${unknown.join(', --')}`;
  if (rest.includes('--help')) return null;
  const known = optionsOf(spec, await commandTree());
  const words: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] ?? '';
    if (a.startsWith('--') && a.length > 2) {
      const name = a.slice(2).split('=')[0] ?? '';
      // A value-taking option followed by another flag has no value of its own, as yargs reads it
      // (`--unlock-zymbit-key --root DIR`: the default key file).
      if (!a.includes('=') && known.get(name)?.boolean === false && !(rest[i + 1] ?? '').startsWith('--'))
        i++;
    } else words.push(a);
  }
  const required = spec.positionals.filter((p) => p.required).length;
  if (words.length < required)
    return `'zkluks ${spec.path.join(' ')}' needs ${spec.positionals.map((p) => p.name.toUpperCase()).join(' ')}`;
  if (words.length > spec.positionals.length)
    return `'zkluks ${spec.path.join(' ')}' takes no '${words.at(-1)}'`;
  for (const [name, o] of spec.options) {
    if (o.required && !rest.some((a) => a === `--${name}` || a.startsWith(`--${name}=`)))
      return `'zkluks ${spec.path.join(' ')}' needs --${name}`;
  }
  return null;
}
