// A private directory on a tmpfs for key material that must pass through a file: mode 0700, files
// 0600, removed in `finally` (but for files asked to be kept), never on a disk that would keep the
// bytes after deletion.
import { statfsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ZkluksError } from '../errors.ts';

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;

/** Where key files may live, in order of preference. */
export const TMPFS_CANDIDATES = ['/dev/shm', '/run'];

function isRamBacked(dir: string): boolean {
  try {
    const type = statfsSync(dir).type;
    return type === TMPFS_MAGIC || type === RAMFS_MAGIC;
  } catch {
    return false;
  }
}

/** The first candidate that is a tmpfs; throws when there is none. */
export function findTmpfs(candidates: readonly string[] = TMPFS_CANDIDATES): string {
  const dir = candidates.find(isRamBacked);
  if (dir === undefined) {
    throw new ZkluksError(
      `Failed to find a tmpfs for key material: none of ${candidates.map((c) => `'${c}'`).join(', ')} is a tmpfs`,
      { hint: 'mount -t tmpfs -o mode=1777 tmpfs /dev/shm' },
    );
  }
  return dir;
}

export interface PrivateDir {
  path: string;
  /** Write a 0600 file in the directory and return its path. */
  write(name: string, data: Buffer): Promise<string>;
  /** Keep the file `name`, and so the directory, afterwards; every other file is still removed. */
  keep(name: string): void;
}

/** Run `fn` with a fresh 0700 directory on a tmpfs; afterwards, always, it is removed (or emptied of
 * all but the files `fn` kept). */
export async function withPrivateTmpfsDir<T>(
  fn: (dir: PrivateDir) => Promise<T>,
  candidates: readonly string[] = TMPFS_CANDIDATES,
): Promise<T> {
  const path = await mkdtemp(join(findTmpfs(candidates), 'zkluks-'));
  const kept = new Set<string>();
  try {
    return await fn({
      path,
      async write(name, data) {
        const file = join(path, name);
        await writeFile(file, data, { mode: 0o600, flag: 'wx' });
        return file;
      },
      keep(name) {
        kept.add(name);
      },
    });
  } finally {
    if (kept.size === 0) await rm(path, { recursive: true, force: true });
    else {
      for (const name of await readdir(path)) {
        if (!kept.has(name)) await rm(join(path, name), { recursive: true, force: true });
      }
    }
  }
}
