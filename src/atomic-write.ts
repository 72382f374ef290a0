// Writing a file so that a crash or a concurrent reader never sees half of it: the content goes to a
// new temp file beside the target (same filesystem), is flushed, given its mode and renamed into place.
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';

/** Replace `path` with `content`, mode `mode` whatever the umask; the parent directory must exist. */
export function writeFileAtomic(path: string, content: string | Buffer, mode: number): void {
  const tmp = `${path}.zkluks-${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      writeFileSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, mode);
    renameSync(tmp, path);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
}
