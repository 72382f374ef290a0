// A file as a read-only loop device of this host for the length of a call: an initramfs built here
// then finds the LUKS volume by its UUID (blkid), as a build on the machine that boots it does.
import { execa } from 'execa';

export async function withLoopDevice<T>(
  file: string,
  fn: () => Promise<T>,
  opts: { offset?: number; sizelimit?: number } = {},
): Promise<T> {
  const { stdout } = await execa('losetup', [
    '--find',
    '--show',
    '--read-only',
    ...(opts.offset === undefined ? [] : ['--offset', String(opts.offset)]),
    ...(opts.sizelimit === undefined ? [] : ['--sizelimit', String(opts.sizelimit)]),
    file,
  ]);
  try {
    return await fn();
  } finally {
    await execa('losetup', ['--detach', stdout.trim()], { reject: false });
  }
}
