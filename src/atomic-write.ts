// Writing a file so that a crash or a concurrent reader never sees half of it: the content goes to a
// new temp file beside the target (same filesystem), is flushed, given its mode and owner and renamed
// into place. The temp name starts with a dot: a shell glob `dir/*` (mkinitramfs's hook runner) and
// run-parts (kernel postinst.d) both skip it, so a temp file left by a crash next to a hook is never run.
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fchownSync,
  fsyncSync,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, posix } from 'node:path';
import { processAlive } from './process-alive.ts';

/** The temp file writeFileAtomic uses for `path`: beside it, its name starting with a dot. */
export function atomicTempPath(path: string): string {
  return join(
    dirname(path),
    `.${basename(path)}.zkluks-${process.pid}-${randomBytes(4).toString('hex')}.tmp`,
  );
}

/** A temp file of writeFileAtomic: the target's name, the writing process's id. */
const TEMP = /^\..+\.zkluks-(\d+)-[0-9a-f]{8}\.tmp$/;

/**
 * Remove the temp files in `dir` that writeFileAtomic left when its process was killed between
 * write and rename (the process is gone); those of running processes stay.
 */
export function removeStaleTemps(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(TEMP.exec(name)?.[1] ?? 0);
    if (pid > 0 && pid !== process.pid && !processAlive(pid)) rmSync(join(dir, name), { force: true });
  }
}

/**
 * Replace `path` with `content`, mode `mode` whatever the umask; the parent directory must exist.
 * An existing file's owner is kept (where the process may set it).
 */
export function writeFileAtomic(path: string, content: string | Buffer, mode: number): void {
  const tmp = atomicTempPath(path);
  let owner: { uid: number; gid: number } | null = null;
  try {
    const st = statSync(path);
    owner = { uid: st.uid, gid: st.gid };
  } catch {
    owner = null;
  }
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeFileSync(fd, content);
      if (owner !== null && (owner.uid !== process.getuid?.() || owner.gid !== process.getgid?.())) {
        try {
          fchownSync(fd, owner.uid, owner.gid);
        } catch {
          // Not allowed to give the file away (not root): it keeps our owner.
        }
      }
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

/**
 * The file that `path` (absolute in the system at `root`) names once every symlink of its last
 * component is followed, absolute link targets read inside `root`; `path` itself when it is no
 * symlink or does not exist. Writing there keeps the links as they are.
 */
export function followLinks(root: string, path: string): string {
  let system = posix.normalize(path);
  for (let hops = 0; hops < 40; hops++) {
    const host = join(root, system);
    try {
      if (!lstatSync(host).isSymbolicLink()) return system;
    } catch {
      return system;
    }
    const target = readlinkSync(host);
    system = posix.resolve(posix.dirname(system), target);
  }
  throw new Error(`${path}: too many levels of symbolic links`);
}
