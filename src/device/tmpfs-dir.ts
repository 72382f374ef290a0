// A private directory on a tmpfs for key material that must pass through a file: made by the `tmp`
// package on the RAM-backed directory found, mode 0700, named `zkluks-<pid>-…` after its owner, files
// 0600, removed in `finally` (but for files asked to be kept), never on a disk that would keep the
// bytes after deletion. Directories a killed zkluks left behind (their pid no longer runs) are removed
// before a new one is made; a header backup kept on purpose stays.
import { readdirSync, rmSync, statfsSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import tmp from 'tmp';
import { ZkluksError } from '../errors.ts';
import { processAlive } from '../process-alive.ts';

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
  /** Remove the file `name` now (a key file whose tool is done with it). */
  remove(name: string): Promise<void>;
  /** Keep the file `name`, and so the directory, afterwards; every other file is still removed. */
  keep(name: string): void;
}

/** Files a private directory keeps on purpose (a header backup whose restore failed). */
const KEPT_ON_PURPOSE = 'header-backup.img';

/**
 * Remove what zkluks processes that no longer run left in `tmpfs` (killed before their `finally`):
 * every file but a kept header backup. Returns the directories cleaned.
 */
export function removeStaleDirs(tmpfs: string): string[] {
  const cleaned: string[] = [];
  let names: string[];
  try {
    names = readdirSync(tmpfs);
  } catch {
    return cleaned;
  }
  for (const name of names) {
    const m = /^zkluks-(\d+)-/.exec(name);
    if (!m || processAlive(Number(m[1]))) continue;
    const dir = join(tmpfs, name);
    try {
      const files = readdirSync(dir);
      if (files.includes(KEPT_ON_PURPOSE)) {
        for (const f of files)
          if (f !== KEPT_ON_PURPOSE) rmSync(join(dir, f), { recursive: true, force: true });
      } else rmSync(dir, { recursive: true, force: true });
      cleaned.push(dir);
    } catch {
      // Not ours to read (another user's): leave it.
    }
  }
  return cleaned;
}

/** removeStaleDirs on the tmpfs among `candidates`, if there is one (a start-up chore; never fails). */
export function sweepStaleDirs(candidates: readonly string[] = TMPFS_CANDIDATES): void {
  try {
    removeStaleDirs(findTmpfs(candidates));
  } catch {
    // No tmpfs: nothing of ours can be there.
  }
}

/** Run `fn` with a fresh 0700 directory on a tmpfs; afterwards, always, it is removed (or emptied of
 * all but the files `fn` kept). */
export async function withPrivateTmpfsDir<T>(
  fn: (dir: PrivateDir) => Promise<T>,
  candidates: readonly string[] = TMPFS_CANDIDATES,
): Promise<T> {
  const tmpfs = findTmpfs(candidates);
  removeStaleDirs(tmpfs);
  const path = tmp.dirSync({ tmpdir: tmpfs, prefix: 'zkluks', mode: 0o700 }).name;
  const kept = new Set<string>();
  try {
    return await fn({
      path,
      async write(name, data) {
        const file = join(path, name);
        await writeFile(file, data, { mode: 0o600, flag: 'wx' });
        return file;
      },
      async remove(name) {
        await rm(join(path, name), { force: true });
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
