// argv -> yargs -> one command handler. Handlers throw; this is the one place that maps errors to
// exit codes.
import yargs from 'yargs';
import { ExitCode } from '../errors.ts';
import { commandsFor } from './commands.ts';
import { withGlobalOptions } from './global-options.ts';
import { exitOnSignals } from './interrupt.ts';
import { reportError } from './output.ts';
import { helpWidth, PREBUILT_HELP_WIDTHS } from './top-help.ts';
import { ParseFailure, usageError } from './usage-error.ts';
import { VERSION } from './version.ts';

/** The part of yargs' internal API (yargs 17) that caches a command's help text. */
interface YargsInternals {
  getInternalMethods?: () => { getUsageInstance: () => { cacheHelpMessage: () => void } };
}

/**
 * yargs renders the whole help of the command that runs the moment its handler starts, only so that
 * a showHelp() after it would have it. zkluks never shows help once a handler runs (parse failures
 * come before, and `--help` renders its own), so that rendering is start-up work no command needs.
 */
function withoutHelpCache<T extends object>(parser: T): T {
  const usage = (parser as YargsInternals).getInternalMethods?.().getUsageInstance();
  if (usage) usage.cacheHelpMessage = () => {};
  return parser;
}

/** The whole command line; packaging/docs.ts asks it for the help text of each command too. */
export async function createParser(args: string[], width: number = helpWidth()) {
  return withGlobalOptions(withoutHelpCache(yargs(args)))
    .scriptName('zkluks')
    .usage('$0 <command>\n\nUnlock a LUKS2 root filesystem at boot with a Zymbit Zymkey.')
    .command(await commandsFor(args))
    .demandCommand(1, 'Name a command; see zkluks --help.')
    .strict()
    .strictCommands()
    .recommendCommands()
    .help()
    .version(VERSION)
    .wrap(width)
    .exitProcess(false)
    .fail((message, error) => {
      // Throwing here stops yargs before any handler runs.
      throw error ?? new ParseFailure(message);
    });
}

/** What `zkluks --help` prints at `width` (scripts/bundle.mjs builds it into the bundle). */
export async function topHelp(width: number): Promise<string> {
  const parser = await createParser(['--help'], width);
  const output = await new Promise<string>((resolve, reject) => {
    void parser.parse(['--help'], {}, (error: Error | undefined, _argv: unknown, text: string) => {
      if (error) reject(error);
      else resolve(text);
    });
  });
  // yargs prints it with console.log, which ends it with a newline.
  return `${output}\n`;
}

/** `zkluks --help` at each width the bundle carries it for, keyed by width. */
export async function prebuiltHelpTexts(): Promise<Record<string, string>> {
  const texts: Record<string, string> = {};
  for (const width of PREBUILT_HELP_WIDTHS) texts[String(width)] = await topHelp(width);
  return texts;
}

export async function main(args: string[]): Promise<number> {
  exitOnSignals();
  const parser = await createParser(args);
  try {
    await parser.parseAsync();
  } catch (error) {
    const failure = error instanceof ParseFailure ? await usageError(args, error.message) : error;
    return reportError(failure, args.includes('--json'));
  }
  return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
}
