// zkluks sim …: make and handle the software Zymkey (the stand-in for the hardware in the demo and
// the tests), run its tools and serve it over a Unix socket.
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { UsageError, ZkluksError } from '../../errors.ts';
import type { PerimeterAction } from '../../device/port.ts';
import { SimZymkey } from '../../device/sim.ts';
import {
  simArm,
  simBindLock,
  simBreach,
  simClear,
  simInit,
  simSetReachable,
  simStatus,
  simSwapHost,
  type BreachOutcome,
  type SimStatus,
} from '../../device/sim-control.ts';
import { startSimServer } from '../../device/sim-server.ts';
import { SIM_MODELS, type SimModel } from '../../device/sim-state.ts';
import { installSimTools, runSimTool, SIM_TOOLS } from '../../device/sim-tools.ts';
import { globalOptions } from '../global-options.ts';
import { createOutput } from '../output.ts';

type Args = Record<string, unknown>;

function renderStatus(s: SimStatus): string {
  const perimeter = s.perimeter
    .map(
      (c) =>
        `channel ${c.channel}: ${c.action}, ${c.firstBreach ? `breached ${c.firstBreach}` : 'no breach'}`,
    )
    .join('; ');
  const binding =
    s.binding.mode === 'developer'
      ? 'developer (temporary: follows the module to any host)'
      : `production (permanent) ${s.binding.hostMatches ? 'on its bound host' : 'on ANOTHER host: crypto calls fail'}`;
  return [
    `state      ${s.stateDir}`,
    `module     ${s.model}  serial ${s.serial}  firmware ${s.firmware}`,
    `binding    ${binding}`,
    `reachable  ${s.reachable ? 'yes' : 'no (unplugged: I2C off / wake pin unset)'}`,
    `keys       ${s.keyMaterial === 'present' ? 'present' : `DESTROYED by self-destruct on channel ${s.selfDestruct?.channel} at ${s.selfDestruct?.at}`}`,
    `perimeter  ${perimeter}`,
  ].join('\n');
}

function renderBreach(o: BreachOutcome): string {
  const what = o.destroyed
    ? 'self-destruct: the module destroyed its key material'
    : o.simulatedOnly
      ? 'self-destruct armed, but developer mode only reports it: keys kept'
      : `action ${o.action}: latched, keys kept`;
  return `channel ${o.channel} breached; first breach ${o.firstBreach}${o.latched ? '' : ' (an earlier breach is still latched)'}; ${what}`;
}

/** A sim subcommand that changes or shows the state and prints the resulting status. */
function stateCommand(
  command: string,
  describe: string,
  run: (stateDir: string, argv: Args) => SimStatus,
  builder: (y: Argv) => Argv = (y) => y,
  note?: (s: SimStatus) => string | undefined,
): CommandModule {
  return {
    command,
    describe,
    builder,
    handler: (argv) => {
      const g = globalOptions(argv);
      const out = createOutput(g.json);
      const status = run(g.simState, argv);
      const line = note?.(status);
      if (line) out.info(line);
      out.data(renderStatus(status), status);
    },
  };
}

function channelOf(argv: Args): 0 | 1 {
  const c = argv.channel;
  if (c !== 0 && c !== 1)
    throw new UsageError(`Failed to read --channel: '${String(c)}' is not 0 or 1`, {
      hint: 'zkluks sim --help',
    });
  return c;
}

const channelOption = (y: Argv) =>
  y.option('channel', { type: 'number', choices: [0, 1], demandOption: true, describe: 'Perimeter channel' });

const init = stateCommand(
  'init',
  'Create a simulated module (developer mode, perimeter unarmed) in the state directory',
  (dir, argv) => simInit(dir, { model: argv.model as SimModel, force: argv.force === true }),
  (y) =>
    y
      .option('model', { choices: SIM_MODELS, default: 'ZYMKEY4i' as SimModel, describe: 'Model to report' })
      .option('force', { type: 'boolean', default: false, describe: 'Replace an existing simulated module' }),
  (s) => `initialised simulated ${s.model} ${s.serial} in ${s.stateDir}`,
);

const status = stateCommand('status', 'Show the simulated module', (dir) => simStatus(dir));

const bindLock = stateCommand(
  'bind-lock',
  'Production mode: lock the binding to the current host (the ZYMKEY4 cut tab, lock_binding on HSMs)',
  (dir) => simBindLock(dir),
  undefined,
  () => 'production mode: the binding is now permanent to this host',
);

const swapHost = stateCommand(
  'swap-host',
  'Move the simulated module to another Pi',
  (dir, argv) => simSwapHost(dir, typeof argv.host === 'string' ? argv.host : undefined),
  (y) =>
    y.option('host', { type: 'string', describe: 'Fingerprint of the Pi to move to (default: a new Pi)' }),
);

const arm = stateCommand(
  'arm',
  'Set the action of a perimeter channel',
  (dir, argv) => simArm(dir, channelOf(argv), argv.action as PerimeterAction),
  (y) =>
    channelOption(y).option('action', {
      choices: ['none', 'notify', 'self-destruct'] as const,
      demandOption: true,
      describe: 'What a breach does',
    }),
);

const breach: CommandModule = {
  command: 'breach',
  describe: 'Open a perimeter loop (a tamper event)',
  builder: channelOption,
  handler: (argv) => {
    const g = globalOptions(argv);
    const outcome = simBreach(g.simState, channelOf(argv));
    createOutput(g.json).data(renderBreach(outcome), outcome);
  },
};

const clear = stateCommand(
  'clear',
  'Clear latched perimeter breaches (destroyed keys stay destroyed)',
  (dir) => simClear(dir),
);
const unplug = stateCommand('unplug', 'Make the module unreachable (I2C off, wake pin unset)', (dir) =>
  simSetReachable(dir, false),
);
const plug = stateCommand('plug', 'Make the module reachable again', (dir) => simSetReachable(dir, true));

const serve: CommandModule = {
  command: 'serve',
  describe: 'Serve UNSEAL / LOCK / RAND requests on a Unix socket until SIGTERM or SIGINT',
  builder: (y) => y.option('socket', { type: 'string', demandOption: true, describe: 'Socket path' }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const socketPath = resolve(String(argv.socket));
    const server = await startSimServer({
      socketPath,
      port: new SimZymkey(g.simState),
      log: (line) => process.stderr.write(`[sim] ${line}\n`),
    }).catch((error: Error) => {
      throw new ZkluksError(`Failed to listen on '${socketPath}': ${error.message}`, {
        hint: 'choose a socket path in a writable directory where no other file has that name',
      });
    });
    process.stderr.write(`listening ${socketPath}\n`);
    await new Promise<void>((done) => {
      const stop = () => {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        void server.close().then(done);
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
  },
};

const tool: CommandModule = {
  command: 'tool <name> [args..]',
  describe: `Run a simulator tool (${SIM_TOOLS.join(', ')}) with the contract of Zymbit's own`,
  builder: (y) =>
    y
      .positional('name', { type: 'string', describe: 'Tool name' })
      .positional('args', { type: 'string', array: true, describe: 'Tool arguments' }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const args = ((argv.args as unknown[] | undefined) ?? []).map(String);
    const result = await runSimTool(String(argv.name), args, g.simState);
    if (result.stdout.length > 0) process.stdout.write(result.stdout);
    if (result.stderr) process.stderr.write(result.stderr);
    process.exitCode = result.exitCode;
  },
};

const installTools: CommandModule = {
  command: 'install-tools <dir>',
  describe: 'Write zkgrifs / zklockifs / zkunlockifs wrappers running this simulator into DIR',
  builder: (y) => y.positional('dir', { type: 'string', describe: 'Directory for the wrappers' }),
  handler: (argv) => {
    const g = globalOptions(argv);
    const bundle = realpathSync(process.argv[1] ?? '');
    const paths = installSimTools(resolve(String(argv.dir)), process.execPath, bundle);
    createOutput(g.json).data(paths.join('\n'), { tools: paths, node: process.execPath, bundle });
  },
};

export const simCommand: CommandModule = {
  command: 'sim <command>',
  describe: 'The software Zymkey: create, inspect, tamper with, serve',
  builder: (y) =>
    y
      .command([
        init,
        status,
        bindLock,
        swapHost,
        arm,
        breach,
        clear,
        unplug,
        plug,
        serve,
        tool,
        installTools,
      ])
      .demandCommand(1, 'Name a sim command; see zkluks sim --help.'),
  handler: () => undefined,
};
