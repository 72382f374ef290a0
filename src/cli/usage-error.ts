// What yargs could not parse, said the zkluks way: a flag the command does not have is answered with
// the nearest real one, and every parse failure with the --help of the command that was meant.
import { UsageError } from '../errors.ts';
import { nearestOption, selectCommand, unknownOptions } from './command-spec.ts';

/** A message yargs gave up parsing with, before it is explained (see usageError). */
export class ParseFailure extends UsageError {}

export async function usageError(args: readonly string[], message: string): Promise<UsageError> {
  const { spec, rest } = await selectCommand(args);
  const command = ['zkluks', ...spec.path].join(' ');
  const hint = `${command} --help`;
  // A mistyped flag also makes yargs miscount the positionals; the flag is what to report.
  const { unknown } = await unknownOptions(args);
  if (unknown.length > 0) {
    const named: string[] = [];
    for (const name of unknown) {
      const near = await nearestOption(spec, name);
      named.push(`--${name}${near ? ` (did you mean --${near}?)` : ''}`);
    }
    return new UsageError(`Failed to parse the arguments: '${command}' has no option ${named.join(', ')}`, {
      hint,
    });
  }
  const suggestion = /^Did you mean (\S+)\?/.exec(message)?.[1];
  const word = rest.find((a) => !a.startsWith('-'));
  if (suggestion && word) {
    return new UsageError(
      `Failed to parse the arguments: '${command}' has no command '${word}' (did you mean ${suggestion}?)`,
      { hint },
    );
  }
  return new UsageError(`Failed to parse the arguments: ${message}`, { hint });
}
