// zkluks remove VOLUME: wipe the Zymkey keyslot and its token. Refused when no passphrase or
// recovery keyslot would remain, unless told twice.
import type { CommandModule } from 'yargs';
import { withInterruptSignal } from '../../keyslot/interrupt.ts';
import { remove } from '../../keyslot/operations.ts';
import { globalOptions } from '../global-options.ts';
import { createOutput } from '../output.ts';
import { keyslotDeps, printResult, volumeArg, volumeOf } from './enroll.ts';

export const lockOutOption = {
  type: 'boolean',
  default: false,
  describe: 'Allow leaving no passphrase or recovery keyslot (also needs --yes)',
} as const;

export const removeCommand: CommandModule = {
  command: 'remove <volume>',
  describe: 'Wipe the Zymkey keyslot and its token (refused if no other way in would remain)',
  builder: (y) => volumeArg(y).option('i-understand-this-locks-me-out', lockOutOption),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const volume = volumeOf(argv);
    const consent = { lockMeOut: argv['i-understand-this-locks-me-out'] === true, yes: g.yes };
    const result = await withInterruptSignal((signal) =>
      remove(keyslotDeps(g, signal), volume, { ...consent, dryRun: g.dryRun }),
    );
    printResult(createOutput(g.json), g, result, `removed the Zymkey keyslot and token from '${volume}'`);
  },
};
