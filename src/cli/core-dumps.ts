// Before zkluks holds a key (a passphrase read, a key unsealed or made), core dumps are turned off
// for the process, so a crash cannot write keys to disk: the core size limit set to 0 (prlimit; Node
// has no setrlimit) and /proc/self/coredump_filter cleared, which also keeps the key pages out of a
// dump a debugger or systemd-coredump would take.
import { writeFile } from 'node:fs/promises';
import { ZkluksError } from '../errors.ts';
import type { Runner } from '../exec.ts';

export async function disableCoreDumps(runner: Runner): Promise<void> {
  try {
    await writeFile('/proc/self/coredump_filter', '0');
  } catch {
    // Not Linux, or no /proc: the limit below still applies.
  }
  const r = await runner('prlimit', ['--core=0', '--pid', String(process.pid)], { reject: false });
  if (r.exitCode !== 0) {
    throw new ZkluksError(
      `Failed to turn core dumps off before handling keys: prlimit exited ${r.exitCode}: ${r.stderr.trim()}`,
      { hint: 'apt-get install util-linux (prlimit)' },
    );
  }
}
