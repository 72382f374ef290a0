// zkluks doctor [VOLUME]: gather the facts once, run the checks, print the verdict and the findings.
import type { CommandBody } from '../commands.ts';
import { ExitCode } from '../../errors.ts';
import { createRunner } from '../../exec.ts';
import { diagnose } from '../../doctor/diagnose.ts';
import { gatherFacts } from '../../doctor/gather.ts';
import { decodeLed, ledHelp } from '../../doctor/led.ts';
import { renderReport } from '../../doctor/report.ts';
import { globalOptions } from '../global-options.ts';
import { createOutput } from '../output.ts';

export const doctorCommand: CommandBody = {
  builder: (y) =>
    y
      .positional('volume', {
        type: 'string',
        describe: "The LUKS volume (default: crypttab's root entry)",
      })
      .option('led', {
        type: 'string',
        describe: `What the Zymkey's LED shows, by name or description: ${ledHelp()}`,
      }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const led = typeof argv.led === 'string' ? argv.led : null;
    if (led !== null) decodeLed(led);
    const facts = await gatherFacts({
      root: g.root,
      volume: typeof argv.volume === 'string' ? argv.volume : undefined,
      backend: g.backend,
      simState: g.simState,
      led,
      runner: createRunner(),
    });
    const diagnosis = diagnose(facts);
    const colour = process.stdout.isTTY === true && !process.env.NO_COLOR;
    createOutput(g.json).data(renderReport(diagnosis, { colour }), diagnosis);
    if (diagnosis.verdict.status === 'error') process.exitCode = ExitCode.failed;
  },
};
