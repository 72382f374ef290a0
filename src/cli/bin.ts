// The zkluks command. `--version` is answered here; anything else loads main (yargs) and, from
// there, only the command that runs.
import { VERSION } from './version.ts';

const args = process.argv.slice(2);
if (args.length === 1 && args[0] === '--version') process.stdout.write(`${VERSION}\n`);
else process.exitCode = await (await import('./main.ts')).main(args);
