// argv -> yargs -> one command handler. Handlers throw; this is the one place that maps errors to
// exit codes.
import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { ExitCode } from '../errors.ts';
import { commands } from './commands.ts';
import { usageError } from './usage-error.ts';
import { withGlobalOptions } from './global-options.ts';
import { reportError } from './output.ts';

// package.json's version: set by scripts/bundle.mjs; read from package.json when run from source.
declare const ZKLUKS_VERSION: string | undefined;
function version(): string {
  if (typeof ZKLUKS_VERSION === 'string') return ZKLUKS_VERSION;
  const pkg = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(pkg) as { version: string }).version;
}

export async function main(args: string[]): Promise<number> {
  const parser = withGlobalOptions(yargs(args))
    .scriptName('zkluks')
    .usage('$0 <command>\n\nUnlock a LUKS2 root filesystem at boot with a Zymbit Zymkey.')
    .command(commands)
    .demandCommand(1, 'Name a command; see zkluks --help.')
    .strict()
    .strictCommands()
    .recommendCommands()
    .help()
    .version(version())
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .exitProcess(false)
    .fail((message, error) => {
      // Throwing here stops yargs before any handler runs.
      throw error ?? usageError(args, message);
    });
  try {
    await parser.parseAsync();
  } catch (error) {
    return reportError(error, args.includes('--json'));
  }
  return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
}
