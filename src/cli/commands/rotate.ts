// zkluks rotate VOLUME: a new Zymkey-sealed key in a new keyslot, verified, then the old one wiped.
import type { CommandBody } from '../commands.ts';
import { withInterruptSignal } from '../interrupt.ts';
import { rotate } from '../../keyslot/operations.ts';
import { globalOptions } from '../global-options.ts';
import { createOutput } from '../output.ts';
import {
  describeRemovals,
  keyslotDeps,
  optionalUnlockKey,
  printResult,
  unlockKeyOption,
} from '../keyslot-command.ts';
import { volumeArg, volumeOf } from '../volume-arg.ts';
import { disableCoreDumps } from '../core-dumps.ts';
import { createRunner } from '../../exec.ts';

export const rotateCommand: CommandBody = {
  builder: (y) =>
    volumeArg(y).option('unlock-key-file', {
      ...unlockKeyOption,
      describe: `${unlockKeyOption.describe}; default: the current Zymkey key authorizes`,
    }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    await disableCoreDumps(createRunner());
    const volume = volumeOf(argv);
    const unlock = await optionalUnlockKey(argv);
    try {
      const result = await withInterruptSignal((signal) =>
        rotate(keyslotDeps(g, signal), volume, { unlock, dryRun: g.dryRun }),
      );
      printResult(
        createOutput(g.json),
        g,
        result,
        `rotated '${volume}': new Zymkey keyslot ${result.applied?.zymkeySlot}${describeRemovals(result) ? `; ${describeRemovals(result)}` : ''}`,
      );
    } finally {
      unlock?.fill(0);
    }
  },
};
