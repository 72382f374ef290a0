// zkluks enroll VOLUME: seal a new key with the Zymkey into its own keyslot, beside a recovery key.
import type { CommandBody } from '../commands.ts';
import { enroll } from '../../keyslot/operations.ts';
import { globalOptions } from '../global-options.ts';
import {
  escrowOf,
  describeRemovals,
  recoveryOptions,
  runDeliveringRecoveryKey,
  unlockKey,
  unlockKeyOption,
  unlockZymbitKeyOption,
  zymbitUnlockKey,
} from '../keyslot-command.ts';
import { volumeArg, volumeOf } from '../volume-arg.ts';
import { disableCoreDumps } from '../core-dumps.ts';
import { createRunner } from '../../exec.ts';

export const enrollCommand: CommandBody = {
  builder: (y) =>
    volumeArg(y)
      .option('unlock-key-file', unlockKeyOption)
      .option('unlock-zymbit-key', unlockZymbitKeyOption)
      .option('force', { type: 'boolean', default: false, describe: 'Replace an existing enrollment' })
      .option('recovery-key', {
        type: 'boolean',
        default: true,
        describe:
          'Make a recovery key when the volume has none (--no-recovery-key: keep only the passphrase)',
      })
      .options(recoveryOptions),
  handler: async (argv) => {
    const g = globalOptions(argv);
    await disableCoreDumps(createRunner());
    const volume = volumeOf(argv);
    const escrow = escrowOf(argv);
    const unlock = (await zymbitUnlockKey(argv, g, volume)) ?? (await unlockKey(argv, volume));
    try {
      await runDeliveringRecoveryKey(
        g,
        argv,
        (deps, hooks) =>
          enroll(
            deps,
            volume,
            {
              unlock,
              force: argv.force === true,
              recoveryKey: argv['recovery-key'] !== false,
              escrow,
              dryRun: g.dryRun,
            },
            hooks,
          ),
        (result) => {
          const a = result.applied;
          return a
            ? `enrolled '${volume}': Zymkey keyslot ${a.zymkeySlot} (priority prefer)${a.recoverySlot !== null ? `, recovery keyslot ${a.recoverySlot}${a.escrowRecipient ? ` (escrowed to ${a.escrowRecipient})` : ''}` : ''}${describeRemovals(result) ? `; ${describeRemovals(result)}` : ''}`
            : '';
        },
      );
    } finally {
      unlock.fill(0);
    }
  },
};
