// Options every command accepts, and the typed object they become.
import type { Argv } from 'yargs';
import type { Backend } from '../device/port.ts';

export interface GlobalOptions {
  json: boolean;
  dryRun: boolean;
  yes: boolean;
  /** The system tree to operate on ("/" or a mounted/staged root). */
  root: string;
  backend: Backend;
  /** State directory of the simulator (sim backend). */
  simState: string;
}

export const DEFAULT_SIM_STATE = '/var/lib/zkluks/sim';

export function withGlobalOptions<T>(y: Argv<T>) {
  return y
    .option('json', { type: 'boolean', default: false, describe: 'Print data as JSON on stdout' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'Print the plan; change nothing' })
    .option('yes', { type: 'boolean', default: false, describe: 'Do not ask for confirmation' })
    .option('root', { type: 'string', default: '/', describe: 'Operate on the system tree at DIR' })
    .option('backend', {
      choices: ['zymbit', 'sim'] as const,
      default: (process.env.ZKLUKS_BACKEND as Backend | undefined) ?? 'zymbit',
      // Help says where the default comes from, so its text is the same in every environment.
      defaultDescription: '$ZKLUKS_BACKEND, else "zymbit"',
      describe: 'Zymkey backend (env ZKLUKS_BACKEND)',
    })
    .option('sim-state', {
      type: 'string',
      default: process.env.ZKLUKS_SIM_STATE ?? DEFAULT_SIM_STATE,
      defaultDescription: `$ZKLUKS_SIM_STATE, else "${DEFAULT_SIM_STATE}"`,
      describe: 'Simulator state directory (env ZKLUKS_SIM_STATE)',
    });
}

export function globalOptions(argv: Record<string, unknown>): GlobalOptions {
  return {
    json: argv.json === true,
    dryRun: argv['dry-run'] === true,
    yes: argv.yes === true,
    root: typeof argv.root === 'string' ? argv.root : '/',
    backend: argv.backend === 'sim' ? 'sim' : 'zymbit',
    simState: typeof argv['sim-state'] === 'string' ? argv['sim-state'] : DEFAULT_SIM_STATE,
  };
}
