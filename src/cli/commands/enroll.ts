// zkluks enroll VOLUME: seal a new key with the Zymkey into its own keyslot, beside a recovery key.
import type { CommandBody } from '../commands.ts';
import { withInterruptSignal } from '../interrupt.ts';
import { enroll } from '../../keyslot/operations.ts';
import { globalOptions } from '../global-options.ts';
import { createOutput } from '../output.ts';
import {
  escrowOf,
  keyslotDeps,
  printResult,
  describeRemovals,
  recoveryKeyDelivery,
  recoveryOptions,
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
    const out = createOutput(g.json);
    const volume = volumeOf(argv);
    const escrow = escrowOf(argv);
    const unlock = (await zymbitUnlockKey(argv, g, volume)) ?? (await unlockKey(argv, volume));
    const keyFile = recoveryKeyDelivery(g, argv);
    try {
      const result = await withInterruptSignal((signal) =>
        enroll(
          keyslotDeps(g, signal),
          volume,
          {
            unlock,
            force: argv.force === true,
            recoveryKey: argv['recovery-key'] !== false,
            escrow,
            dryRun: g.dryRun,
          },
          keyFile.hooks,
        ),
      );
      const a = result.applied;
      printResult(
        out,
        g,
        result,
        a
          ? `enrolled '${volume}': Zymkey keyslot ${a.zymkeySlot} (priority prefer)${a.recoverySlot !== null ? `, recovery keyslot ${a.recoverySlot}${a.escrowRecipient ? ` (escrowed to ${a.escrowRecipient})` : ''}` : ''}${describeRemovals(result) ? `; ${describeRemovals(result)}` : ''}`
          : '',
        { recoveryKeyFile: a?.recoveryKey ? keyFile.file : null },
      );
    } catch (error) {
      await keyFile.undo();
      throw error;
    } finally {
      unlock.fill(0);
    }
  },
};
