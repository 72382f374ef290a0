// One operation per volume at a time: a lock file named after the volume's canonical path (so
// /dev/disk/by-uuid/… and /dev/mmcblk0p2 are the same volume), holding the owner's pid. A lock left
// by a process that no longer runs is taken over.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RefusedError } from '../errors.ts';

export const DEFAULT_LOCK_DIR = '/run/zkluks/lock';

export function lockFileFor(volume: string, dir: string = DEFAULT_LOCK_DIR): string {
  let canonical = volume;
  try {
    canonical = realpathSync(volume);
  } catch {
    // A missing volume is reported by the header read; the lock still has a stable name.
  }
  return join(dir, `${createHash('sha256').update(canonical).digest('hex').slice(0, 32)}.lock`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function tryCreate(file: string, volume: string): boolean {
  try {
    writeFileSync(file, `${process.pid}\n${volume}\n`, { flag: 'wx', mode: 0o600 });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/** Run `fn` holding the volume's lock; a second holder is refused with exit 3. */
export async function withVolumeLock<T>(
  volume: string,
  fn: () => Promise<T>,
  dir: string = DEFAULT_LOCK_DIR,
): Promise<T> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = lockFileFor(volume, dir);
  for (let attempt = 0; !tryCreate(file, volume); attempt++) {
    let pid = NaN;
    try {
      pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    } catch {
      // Removed between our create and read: try again.
    }
    if (Number.isInteger(pid) && pid > 0 && alive(pid) && pid !== process.pid) {
      throw new RefusedError(
        `Refused to change '${volume}': another zkluks operation (pid ${pid}) is changing it; zkluks runs one operation per volume at a time`,
        { hint: `wait for pid ${pid} to finish (lock file ${file})` },
      );
    }
    if (attempt >= 3)
      throw new RefusedError(`Refused to change '${volume}': cannot take the lock ${file}`, {
        hint: `rm ${file}`,
      });
    rmSync(file, { force: true });
  }
  try {
    return await fn();
  } finally {
    rmSync(file, { force: true });
  }
}
