// One operation per volume at a time: flock(2) on a lock file named after the volume's identity —
// the device number (st_rdev) of a block device, the device and inode (st_dev, st_ino) of an image
// file — so /dev/disk/by-uuid/…, a symlink and a hard link of one volume share one lock. The lock is
// held by a `flock` helper whose stdin is a pipe from zkluks: the kernel drops the lock when the
// helper ends, and the helper ends when zkluks does, however it ends. No lock outlives its holder.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RefusedError, ZkluksError } from '../errors.ts';
import { startHolder } from '../exec.ts';

export const DEFAULT_LOCK_DIR = '/run/zkluks/lock';

/** Exit code the `flock` helper uses when another process holds the lock. */
const BUSY = 75;

export function lockFileFor(volume: string, dir: string = DEFAULT_LOCK_DIR): string {
  try {
    const st = statSync(volume, { bigint: true });
    if (st.isBlockDevice()) return join(dir, `dev-${st.rdev}.lock`);
    return join(dir, `file-${st.dev}-${st.ino}.lock`);
  } catch {
    // A missing volume is reported by the header read; the lock still has a stable name.
    return join(dir, `name-${createHash('sha256').update(volume).digest('hex').slice(0, 32)}.lock`);
  }
}

/** Lock files this process holds: an operation made of others (adopt) takes each lock once. */
const held = new Set<string>();

/** Run `fn` holding the volume's lock; a second holder is refused with exit 3. */
export async function withVolumeLock<T>(
  volume: string,
  fn: () => Promise<T>,
  dir: string = DEFAULT_LOCK_DIR,
): Promise<T> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = lockFileFor(volume, dir);
  if (held.has(file)) return fn();
  const started = await startHolder(
    'flock',
    [
      '--nonblock',
      '--exclusive',
      '--conflict-exit-code',
      String(BUSY),
      file,
      'sh',
      '-c',
      'echo locked; exec cat >/dev/null',
    ],
    'locked',
  );
  if (!started.holder) {
    if (started.exitCode === BUSY) {
      let pid = 'unknown';
      try {
        pid = readFileSync(file, 'utf8').split('\n')[0] || pid;
      } catch {
        // Unreadable: the holder is still named by its lock file.
      }
      throw new RefusedError(
        `Refused to change '${volume}': another zkluks operation (pid ${pid}) is changing it; zkluks runs one operation per volume at a time`,
        { hint: `wait for pid ${pid} to finish (lock file ${file})` },
      );
    }
    throw new ZkluksError(
      `Failed to lock '${volume}': flock exited ${started.exitCode}: ${started.stderr.trim()}`,
      { hint: 'apt-get install util-linux (flock)' },
    );
  }
  held.add(file);
  try {
    // Who holds it, for the message a second run prints; the lock itself is the flock.
    writeFileSync(file, `${process.pid}\n${volume}\n`, { mode: 0o600 });
    return await fn();
  } finally {
    held.delete(file);
    await started.holder.release();
  }
}
