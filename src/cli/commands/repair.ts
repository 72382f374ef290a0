// zkluks repair VOLUME: settle a change that a crash, a kill or a power cut interrupted, from the
// record it left in the header — roll it back (new keys not yet delivered) or finish it (they were).
// Every zkluks change does this first; repair does it on its own, and --dry-run only says how.
import type { CommandBody } from '../commands.ts';
import { repair } from '../../keyslot/operations.ts';
import { describeSettle } from '../../keyslot/settle.ts';
import { globalOptions } from '../global-options.ts';
import { createOutput } from '../output.ts';
import { withInterruptSignal } from '../interrupt.ts';
import { keyslotDeps } from '../keyslot-command.ts';
import { volumeArg, volumeOf } from '../volume-arg.ts';

export const repairCommand: CommandBody = {
  builder: (y) => volumeArg(y),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const volume = volumeOf(argv);
    const result = await withInterruptSignal((signal) => repair(keyslotDeps(g, signal), volume, g.dryRun));
    const human =
      result.plans.length === 0
        ? `unchanged: '${volume}' records no interrupted change`
        : result.plans
            .map(
              (p) =>
                `${g.dryRun ? 'Plan: ' : p.action === 'roll-back' ? 'rolled back: ' : 'finished: '}${describeSettle(p)}`,
            )
            .join('\n');
    createOutput(g.json).data(human, {
      volume,
      dryRun: g.dryRun,
      changed: result.applied,
      interrupted: result.plans.map((p) => ({
        token: p.tokenId,
        operation: p.operation,
        action: p.action,
        description: p.description,
        steps: p.steps,
        notes: p.notes,
      })),
    });
  },
};
