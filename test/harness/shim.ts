// A `cryptsetup` first in PATH for the crash harness: it counts every call in a file and, at the
// chosen call, kills zkluks (its parent) with SIGKILL before or after the real cryptsetup runs,
// sends it SIGHUP after, or kills the real cryptsetup itself while it runs. No hook in zkluks.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What happens at call `at` (1-based); `count` only counts. */
export type ShimMode = 'count' | 'kill-before' | 'kill-after' | 'hup-after' | 'kill-cryptsetup';

export interface Shim {
  dir: string;
  env(mode: ShimMode, at: number): Record<string, string>;
  /** Calls made since the last reset, and the verb of each. */
  calls(): Promise<string[]>;
  reset(): Promise<void>;
  cleanup(): Promise<void>;
}

export const REAL_CRYPTSETUP = ['/usr/sbin/cryptsetup', '/sbin/cryptsetup', '/usr/bin/cryptsetup'].find(
  existsSync,
) as string;

/** Verbs that write the header (where killing cryptsetup itself and SIGHUP are tried). */
export const WRITING = new Set(['luksAddKey', 'token', 'config', 'luksKillSlot']);

export async function makeShim(): Promise<Shim> {
  const dir = await mkdtemp(join(tmpdir(), 'zkluks-crash-shim-'));
  const log = join(dir, 'calls');
  await writeFile(
    join(dir, 'cryptsetup'),
    `#!/bin/sh
verb=
for a in "$@"; do case "$a" in -*) ;; *) verb=$a; break ;; esac; done
echo "$verb" >>'${log}'
n=$(wc -l <'${log}')
at=\${ZKLUKS_SHIM_AT:-0}
mode=\${ZKLUKS_SHIM_MODE:-count}
if [ "$n" -eq "$at" ]; then
  case "$mode" in
    kill-before) kill -KILL "$PPID"; exit 137 ;;
    kill-cryptsetup)
      '${REAL_CRYPTSETUP}' "$@" <&0 &
      child=$!
      kill -KILL "$child" 2>/dev/null
      wait "$child"
      exit 137 ;;
  esac
fi
'${REAL_CRYPTSETUP}' "$@"
rc=$?
if [ "$n" -eq "$at" ]; then
  case "$mode" in
    kill-after) kill -KILL "$PPID" ;;
    hup-after) kill -HUP "$PPID" ;;
  esac
fi
exit $rc
`,
  );
  await chmod(join(dir, 'cryptsetup'), 0o755);
  return {
    dir,
    env: (mode, at) => ({
      PATH: `${dir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
      ZKLUKS_SHIM_MODE: mode,
      ZKLUKS_SHIM_AT: String(at),
    }),
    calls: async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => l !== ''),
    reset: () => rm(log, { force: true }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
