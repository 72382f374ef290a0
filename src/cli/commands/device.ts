// zkluks device …: ask the Zymkey (through the port, any backend) and probe its I2C bus.
import type { CommandModule } from 'yargs';
import type { CommandBody } from '../commands.ts';
import { ExitCode, UsageError } from '../../errors.ts';
import { createRunner } from '../../exec.ts';
import { probeZymkeyBus, type ProbeResult } from '../../device/i2c.ts';
import { openZymkey } from '../../device/open.ts';
import type { ZymkeyPort } from '../../device/port.ts';
import { readStream } from '../../read-stream.ts';
import { globalOptions, type GlobalOptions } from '../global-options.ts';
import { createOutput } from '../output.ts';

function port(g: GlobalOptions): ZymkeyPort {
  const out = createOutput(g.json);
  return openZymkey({
    backend: g.backend,
    simState: g.simState,
    runner: createRunner(),
    root: g.root,
    onWarning: (line) => out.warn(line),
  });
}

const info: CommandModule = {
  command: 'info',
  describe: 'Model, serial, firmware, binding and perimeter of the Zymkey',
  handler: async (argv) => {
    const g = globalOptions(argv);
    const zk = port(g);
    const [i, binding, perimeter] = [await zk.info(), await zk.binding(), await zk.perimeter()];
    const data = { backend: zk.backend, ...i, binding, perimeter };
    const human = [
      `backend    ${zk.backend}`,
      `model      ${i.model}`,
      `serial     ${i.serial}`,
      `firmware   ${i.firmware}`,
      `binding    ${binding.mode}${binding.bound === null ? '' : binding.bound ? ', bound to this host' : ', NOT bound to this host'}`,
      ...perimeter.map(
        (c) =>
          `perimeter  channel ${c.channel}: action ${c.action}, ${c.firstBreach ? `first breach ${c.firstBreach}` : 'no breach latched'}`,
      ),
    ].join('\n');
    createOutput(g.json).data(human, data);
  },
};

const probeExit: Record<ProbeResult['status'], number> = {
  ok: ExitCode.ok,
  conflict: ExitCode.failed,
  'bus-missing': ExitCode.zymkeyUnavailable,
  'bus-timeout': ExitCode.zymkeyUnavailable,
  unavailable: ExitCode.zymkeyUnavailable,
};

const probe: CommandModule = {
  command: 'probe',
  describe: "Probe the Zymkey's I2C bus with a real transfer at 0x30 (exit 0 ok, 1 conflict, 4 otherwise)",
  builder: (y) =>
    y.option('bus', {
      type: 'number',
      describe: 'I2C bus number (default: found by /sys/class/i2c-dev/*/name)',
    }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const bus = argv.bus as number | undefined;
    if (bus !== undefined && (!Number.isInteger(bus) || bus < 0)) {
      throw new UsageError(`Failed to read --bus: '${String(bus)}' is not a bus number`, {
        hint: 'ls /sys/class/i2c-dev',
      });
    }
    const result = await probeZymkeyBus({ root: g.root, bus });
    const out = createOutput(g.json);
    if (g.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else
      out.data(
        `${result.status}: bus ${result.bus ?? '-'}${result.busName ? ` (${result.busName})` : ''} at ${result.address}: ${result.detail}`,
        result,
      );
    process.exitCode = probeExit[result.status];
  },
};

const random: CommandModule = {
  command: 'random <n>',
  describe: 'N random bytes from the Zymkey, as hex (or raw with --raw)',
  builder: (y) =>
    y
      .positional('n', { type: 'number', describe: 'Byte count' })
      .option('raw', { type: 'boolean', default: false, describe: 'Write the bytes themselves' }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const bytes = await port(g).randomBytes(Number(argv.n));
    if (argv.raw === true && !g.json) process.stdout.write(bytes);
    else
      createOutput(g.json).data(bytes.toString('hex'), { bytes: bytes.length, hex: bytes.toString('hex') });
  },
};

const seal: CommandModule = {
  command: 'seal',
  describe: 'Seal stdin with the Zymkey; the sealed bytes go to stdout (base64 with --base64 or --json)',
  builder: (y) =>
    y.option('base64', { type: 'boolean', default: false, describe: 'Write the sealed data as base64' }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const sealed = await port(g).seal(await readStream(process.stdin));
    if (g.json) createOutput(true).data('', { sealed: sealed.toString('base64') });
    else if (argv.base64 === true) process.stdout.write(`${sealed.toString('base64')}\n`);
    else process.stdout.write(sealed);
  },
};

const unseal: CommandModule = {
  command: 'unseal',
  describe: 'Unseal stdin with the Zymkey; the plaintext goes to stdout',
  builder: (y) =>
    y.option('base64', { type: 'boolean', default: false, describe: 'Read the sealed data as base64' }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const input = await readStream(process.stdin);
    const sealed = argv.base64 === true ? Buffer.from(input.toString('utf8').trim(), 'base64') : input;
    const plain = await port(g).unseal(sealed);
    if (g.json) createOutput(true).data('', { plain: plain.toString('base64') });
    else process.stdout.write(plain);
  },
};

export const deviceCommand: CommandBody = {
  builder: (y) =>
    y
      .command([info, probe, random, seal, unseal])
      .demandCommand(1, 'Name a device command; see zkluks device --help.'),
  handler: () => undefined,
};
