// zkluks verify VOLUME: would the Zymkey unlock this volume at boot? Unseal the key in the
// zkluks-zymkey token and test it against its keyslot, activating nothing.
import type { CommandBody } from '../commands.ts';
import { ExitCode } from '../../errors.ts';
import { verifyZymkey } from '../../keyslot/operations.ts';
import { givenOptions } from '../given-command.ts';
import { globalOptions } from '../global-options.ts';
import { createOutput } from '../output.ts';
import { keyslotDeps } from '../keyslot-command.ts';
import { volumeArg, volumeOf } from '../volume-arg.ts';

const HINTS: Record<string, string> = {
  'no-token': 'zkluks enroll VOLUME',
  'corrupt-token': 'zkluks enroll --force VOLUME',
  'slot-gone': 'zkluks enroll --force VOLUME',
  'key-rejected':
    'zkluks enroll --force VOLUME (the token does not belong to this volume or its slot was replaced)',
};

export const verifyCommand: CommandBody = {
  builder: (y) => volumeArg(y),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const out = createOutput(g.json);
    const volume = volumeOf(argv);
    const report = await verifyZymkey(keyslotDeps(g), volume);
    const human = report.ok
      ? `ok: keyslot ${report.slot} of '${volume}' opens with the key the Zymkey unseals from token ${report.tokenId}`
      : `${report.reason}${report.zymkeyReason ? ` (${report.zymkeyReason})` : ''}: ${report.detail}`;
    out.data(human, report);
    for (const i of report.interrupted) {
      out.warn(`${i}; the next zkluks change settles it (to settle it now: zkluks repair '${volume}')`);
    }
    if (report.ok) return;
    if (!g.json) {
      out.info(`Failed to verify the Zymkey keyslot of '${volume}': ${report.reason}`);
      out.info(
        `hint: ${report.hint ?? (HINTS[report.reason] ?? 'zkluks doctor VOLUME').replace('VOLUME', [`'${volume}'`, ...givenOptions(['backend', 'sim-state'])].join(' '))}`,
      );
    }
    process.exitCode = report.reason === 'zymkey-unavailable' ? ExitCode.zymkeyUnavailable : ExitCode.failed;
  },
};
