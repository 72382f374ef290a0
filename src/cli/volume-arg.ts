// The VOLUME argument of the commands that work on one LUKS2 volume. Its own file, so that a
// read-only command (list) loads no more than it reads the header with.
import { existsSync } from 'node:fs';
import type { Argv } from 'yargs';
import { UsageError } from '../errors.ts';
import { under } from '../root-path.ts';

export function volumeArg<T>(y: Argv<T>) {
  return y.positional('volume', {
    type: 'string',
    demandOption: true,
    describe: 'The LUKS2 volume: a partition such as /dev/mmcblk0p2, or an image file',
  });
}

export function volumeOf(argv: Record<string, unknown>): string {
  const v = argv.volume;
  if (typeof v !== 'string' || v === '')
    throw new UsageError('Failed to read VOLUME: none given', { hint: 'zkluks --help' });
  // Under --root a device the tree's crypttab names (/dev/…) is the tree's own when the tree has it,
  // as the doctor resolves it, so a hint the doctor gives for a staged tree works as written.
  const root = argv.root;
  if (typeof root === 'string' && root !== '/' && v.startsWith('/dev/') && existsSync(under(root, v))) {
    return under(root, v);
  }
  return v;
}
