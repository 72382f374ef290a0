// The zkluks command. `--version` and `--help` are answered here (the bundle carries the help text);
// anything else loads main (yargs) and, from there, only the command that runs.
import { prebuiltTopHelp } from './top-help.ts';
import { VERSION } from './version.ts';

const args = process.argv.slice(2);
const help = prebuiltTopHelp(args);
if (args.length === 1 && args[0] === '--version') process.stdout.write(`${VERSION}\n`);
else if (help !== undefined) process.stdout.write(help);
else process.exitCode = await (await import('./main.ts')).main(args);
