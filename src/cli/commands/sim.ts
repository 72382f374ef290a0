// zkluks sim …: make and handle the software Zymkey (the stand-in for the hardware in the demo and
// the tests), run its tools and serve it over a Unix socket.
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import type { CommandBody } from '../commands.ts';
import { ownSignals } from '../interrupt.ts';
import { UsageError, ZkluksError } from '../../errors.ts';
import type { PerimeterAction } from '../../device/port.ts';
import { SimZymkey } from '../../device/sim.ts';
import {
  simArm,
  simBattery,
  simBatteryAction,
  simBindLock,
  simBoot,
  simBreach,
  simBrownOut,
  simClear,
  simCloseLoop,
  simInit,
  simKernel,
  simPowerCycle,
  simSetReachable,
  simStatus,
  simSwapHost,
  simWakePin,
  simZkifc,
  type BreachOutcome,
  type SimStatus,
} from '../../device/sim-control.ts';
import { startSimServer } from '../../device/sim-server.ts';
import {
  manifestPath,
  SCM_DEFAULT_SLOT,
  simScmAddOrUpdate,
  simScmBootDir,
  simScmManifest,
  simScmPolicy,
  simScmRemove,
  type SupervisedBootOutcome,
} from '../../device/sim-scm.ts';
import { SIM_MODELS, SIM_SCM_POLICIES, type SimModel, type SimScmPolicy } from '../../device/sim-state.ts';
import { installSimTools, runSimTool, SIM_TOOLS } from '../../device/sim-tools.ts';
import { globalOptions } from '../global-options.ts';
import { createOutput } from '../output.ts';

type Args = Record<string, unknown>;

function renderStatus(s: SimStatus): string {
  const perimeter = s.perimeter
    .map(
      (c) =>
        `channel ${c.channel}: ${c.action}, ${c.open ? 'loop OPEN, ' : ''}${c.firstBreach ? `breached ${c.firstBreach}` : 'no breach'}`,
    )
    .join('; ');
  const binding =
    s.binding.mode === 'developer'
      ? 'developer (temporary: follows the module to any host)'
      : `production (permanent) ${s.binding.hostMatches ? 'on its bound host' : 'on ANOTHER host: crypto calls fail'}`;
  const keys =
    s.dead === null
      ? 'present'
      : s.dead.why === 'self-destruct'
        ? `DESTROYED by self-destruct on channel ${s.dead.channel} at ${s.dead.at}`
        : s.dead.why === 'battery'
          ? `DESTROYED: battery removed with tamper armed at ${s.dead.at}`
          : s.dead.why === 'supervised-boot'
            ? `DESTROYED by Supervised Boot at ${s.dead.at}: ${s.dead.files.join(', ')} no longer matched the manifest`
            : `LOST: production state deleted or damaged at ${s.dead.at}`;
  return [
    `host       ${s.stateDir}  kernel ${s.kernel}  zkifc ${s.zkifc}  wake pin ${s.wakePin ?? 'unset'}`,
    `module     ${s.model}  serial ${s.serial}  firmware ${s.firmware}  (store ${s.moduleStore})`,
    `binding    ${binding}`,
    `reachable  ${s.reachable ? 'yes' : 'no (unplugged: I2C off / no module)'}${s.brownout ? '; BROWN-OUT: security services off until a power cycle' : ''}`,
    `battery    ${s.battery.present ? 'present' : 'REMOVED'}, action ${s.battery.action}`,
    `keys       ${keys}`,
    `perimeter  ${perimeter}`,
    `led        ${s.led}`,
    ...(s.scm === null
      ? []
      : [
          `supervised boot  policy ${s.scm.policy}, ${Object.keys(s.scm.manifest).length} file(s) in the manifest${s.scm.held ? `; HOLDING THE PI IN RESET since ${s.scm.held}` : ''}`,
        ]),
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
  'Create a simulated module (developer mode, perimeter unarmed) in the module store and fit it to the host in the state directory',
  (dir, argv) =>
    simInit(dir, {
      model: argv.model as SimModel,
      force: argv.force === true,
      ...(typeof argv.boot === 'string' ? { boot: resolve(argv.boot) } : {}),
    }),
  (y) =>
    y
      .option('model', { choices: SIM_MODELS, default: 'ZYMKEY4i' as SimModel, describe: 'Model to report' })
      .option('force', { type: 'boolean', default: false, describe: 'Replace an existing simulated module' })
      .option('boot', {
        type: 'string',
        describe: "SCM: the boot partition it supervises; the shipped manifest's files in it are signed",
      }),
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
const close = stateCommand(
  'close',
  'Close a perimeter loop again (a breach stays open until closed)',
  (dir, argv) => simCloseLoop(dir, channelOf(argv)),
  channelOption,
);
const battery = stateCommand(
  'battery <state>',
  'Remove or insert the battery (with tamper armed in production mode, removal destroys the keys)',
  (dir, argv) => simBattery(dir, argv.state === 'insert'),
  (y) => y.positional('state', { choices: ['remove', 'insert'] as const, demandOption: true }),
);
const batteryAction = stateCommand(
  'battery-action <action>',
  'HSM6/HSM60/SCM: what battery removal does (before the binding is locked)',
  (dir, argv) => simBatteryAction(dir, argv.action as 'none' | 'sleep' | 'self-destruct'),
  (y) => y.positional('action', { choices: ['none', 'sleep', 'self-destruct'] as const, demandOption: true }),
);
const brownOut = stateCommand(
  'brown-out',
  'A momentary power drop: security services off until a power cycle',
  (dir) => simBrownOut(dir),
);
const powerCycle = stateCommand('power-cycle', 'Power the Pi off and on (ends a brown-out)', (dir) =>
  simPowerCycle(dir),
);

function renderBoot(o: SupervisedBootOutcome): string {
  const failed = o.failed.map((f) => `${f.file} (${f.why})`).join(', ');
  switch (o.result) {
    case 'not-scm':
      return 'booted (no Supervised Boot on this model)';
    case 'off':
      return 'booted (Supervised Boot off: the manifest is empty)';
    case 'verified':
      return `booted: Supervised Boot verified ${o.checked.length} file(s)`;
    case 'simulated':
      return `booted after Supervised Boot FAILED on ${failed}: developer mode flashed 4-2 three times and recovered`;
    case 'destroyed':
      return `Supervised Boot FAILED on ${failed}: production mode, the module destroyed its key material`;
    case 'held':
      return `Supervised Boot FAILED on ${failed}: production mode, the SCM holds the Pi in reset for good`;
    case 'dead':
      return o.boots ? 'booted; the module was already destroyed' : 'the SCM holds the Pi in reset';
  }
}

const boot: CommandModule = {
  command: 'boot',
  describe: 'Power-cycle and boot the Pi: an SCM verifies its Supervised Boot manifest first',
  handler: (argv) => {
    const g = globalOptions(argv);
    const { supervisedBoot, status } = simBoot(g.simState);
    createOutput(g.json).data(`${renderBoot(supervisedBoot)}\n${renderStatus(status)}`, {
      supervisedBoot,
      status,
    });
  },
};

const scmFile = (y: Argv) =>
  y.positional('file', { type: 'string', demandOption: true, describe: 'Path relative to /boot' });

const scm: CommandModule = {
  command: 'scm <command>',
  describe: "SCM Supervised Boot through Zymbit's API calls: manifest, policy, the boot partition",
  builder: (y) =>
    y
      .command([
        stateCommand('show', 'Show the policy and the manifest (the module view)', (dir) => simStatus(dir)),
        stateCommand(
          'add <file>',
          'add_or_update_supervised_boot_file: sign the file as it is now',
          (dir, argv) => {
            simScmAddOrUpdate(dir, String(argv.file), argv.slot as number);
            return simStatus(dir);
          },
          (y2) =>
            scmFile(y2).option('slot', {
              type: 'number',
              default: SCM_DEFAULT_SLOT,
              describe: 'Key slot that signs',
            }),
        ),
        stateCommand(
          'remove <file>',
          'remove_supervised_boot_file',
          (dir, argv) => {
            simScmRemove(dir, String(argv.file));
            return simStatus(dir);
          },
          scmFile,
        ),
        stateCommand(
          'policy <policy>',
          'set_supervised_boot_policy (none, destroy, hold-reset)',
          (dir, argv) => {
            simScmPolicy(dir, argv.policy as SimScmPolicy);
            return simStatus(dir);
          },
          (y2) => y2.positional('policy', { choices: SIM_SCM_POLICIES, demandOption: true }),
        ),
        stateCommand(
          'boot-dir <dir>',
          "Where the simulated host's boot partition is ('unset' removes it)",
          (dir, argv) => {
            const d = String(argv.dir);
            simScmBootDir(dir, d === 'unset' ? null : resolve(d));
            return simStatus(dir);
          },
          (y2) => y2.positional('dir', { type: 'string', demandOption: true }),
        ),
      ])
      .demandCommand(1, 'Name a sim scm command; see zkluks sim scm --help.'),
  handler: () => undefined,
};
const zkifc = stateCommand(
  'zkifc <state>',
  'Start or stop zkifc on the simulated host (the standalone tools need it stopped)',
  (dir, argv) => simZkifc(dir, argv.state === 'start' ? 'running' : 'stopped'),
  (y) => y.positional('state', { choices: ['start', 'stop'] as const, demandOption: true }),
);
const kernel = stateCommand(
  'kernel <version>',
  'Set the simulated host kernel (6.6 and later need ZK_GPIO_WAKE_PIN)',
  (dir, argv) => simKernel(dir, String(argv.version)),
  (y) => y.positional('version', { type: 'string', demandOption: true }),
);
const wakePin = stateCommand(
  'wake-pin <pin>',
  "Set ZK_GPIO_WAKE_PIN in the simulated zkenv.conf ('unset' removes it)",
  (dir, argv) => {
    const pin = String(argv.pin);
    if (pin === 'unset') return simWakePin(dir, null);
    if (!/^\d+$/.test(pin))
      throw new UsageError(`Failed to read the wake pin: '${pin}' is not a number or 'unset'`, {
        hint: 'e.g. zkluks sim wake-pin 516',
      });
    return simWakePin(dir, Number(pin));
  },
  (y) => y.positional('pin', { type: 'string', demandOption: true }),
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
        void server.close().then(() => {
          ownSignals(false);
          done();
        });
      };
      ownSignals(true);
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
    if (result.hang) await new Promise(() => setInterval(() => undefined, 1 << 30));
    if (result.signal) process.kill(process.pid, result.signal);
    if (result.stdout.length > 0) process.stdout.write(result.stdout);
    if (result.stderr) process.stderr.write(result.stderr);
    process.exitCode = result.exitCode;
  },
};

/** Zymbit's API calls as the simulator answers them; the fake Python `zymkey` module of the tests runs these. */
const api: CommandModule = {
  command: 'api <call>',
  describe: false as unknown as string,
  builder: (y) =>
    y
      .positional('call', {
        choices: [
          'open',
          'info',
          'binding',
          'perimeter',
          'manifest',
          'manifest-update',
          'manifest-remove',
        ] as const,
      })
      .option('file', { type: 'string' })
      .option('slot', { type: 'number', default: SCM_DEFAULT_SLOT }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const zk = new SimZymkey(g.simState);
    const call = String(argv.call);
    try {
      let out: unknown;
      if (call === 'open' || call === 'info') out = await zk.info();
      else if (call === 'manifest') out = simScmManifest(g.simState).join(' ');
      else if (call === 'manifest-update') {
        out = 0;
        simScmAddOrUpdate(g.simState, manifestPath(String(argv.file)), argv.slot as number);
      } else if (call === 'manifest-remove') {
        out = 0;
        simScmRemove(g.simState, manifestPath(String(argv.file)));
      } else if (call === 'binding') {
        const b = await zk.binding();
        // get_current_binding_info is only valid for the HSM family: EINVAL elsewhere.
        if (b.mode === 'unknown') {
          process.exitCode = 22;
          return;
        }
        out = b;
      } else {
        out = (await zk.perimeter()).map((c) =>
          c.firstBreach ? Math.floor(Date.parse(c.firstBreach) / 1000) : 0,
        );
      }
      process.stdout.write(`${JSON.stringify(out)}\n`);
    } catch {
      process.exitCode = 1;
    }
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

export const simCommand: CommandBody = {
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
        close,
        battery,
        batteryAction,
        brownOut,
        powerCycle,
        boot,
        scm,
        zkifc,
        kernel,
        wakePin,
        unplug,
        plug,
        serve,
        tool,
        api,
        installTools,
      ])
      .demandCommand(1, 'Name a sim command; see zkluks sim --help.'),
  handler: () => undefined,
};
