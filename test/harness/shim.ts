// A `cryptsetup` (and any other tool asked for) first in PATH for the crash and race harnesses: it
// counts every call in a file and, at the chosen call, kills zkluks (its parent) with SIGKILL before or
// after the real tool runs, sends it SIGHUP before or after, or kills the real tool itself while it
// runs. The same file counts zkluks's own file writes when it runs with fs-boundaries.mjs. For races it holds a
// zkluks at its Nth header write (counted per zkluks process) until released, and a `flock` beside
// it makes every zkluks wait at the lock until all of a race's runs have arrived there, so they ask
// for it at the same instant. No hook in zkluks.
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * What happens at call `at` (1-based); `count` only counts. `hold-write`: at the process's
 * `at`-th header write, before it runs, mark the process held and wait for `release()` (60 s at most).
 */
export type ShimMode =
  'count' | 'kill-before' | 'kill-after' | 'hup-before' | 'hup-after' | 'kill-cryptsetup' | 'hold-write';

export interface Shim {
  dir: string;
  /** `barrier`: the number of zkluks runs that wait for one another at the lock (race harness). */
  env(mode: ShimMode, at: number, barrier?: number): Record<string, string>;
  /** Calls made since the last reset, and the verb of each. */
  calls(): Promise<string[]>;
  /** Pids of the zkluks processes held at a header write (`hold-write`). */
  held(): Promise<number[]>;
  /** Pids of the zkluks processes that came to the lock through the barrier. */
  arrived(): Promise<number[]>;
  /** Lets every held process go on. */
  release(): Promise<void>;
  reset(): Promise<void>;
  cleanup(): Promise<void>;
}

export const REAL_FLOCK = ['/usr/bin/flock', '/bin/flock'].find(existsSync) as string;

export const REAL_CRYPTSETUP = ['/usr/sbin/cryptsetup', '/sbin/cryptsetup', '/usr/bin/cryptsetup'].find(
  existsSync,
) as string;

/** Verbs that write the header (where killing cryptsetup itself and SIGHUP are tried). */
export const WRITING = new Set(['luksAddKey', 'token', 'config', 'luksKillSlot']);

/**
 * `tools` maps further commands to the program each wrapper runs (a stand-in or the real one); their
 * calls are counted as the command's name. `kill-cryptsetup` kills whichever tool runs at that call.
 */
export async function makeShim(tools: Record<string, string> = {}): Promise<Shim> {
  const dir = await mkdtemp(join(tmpdir(), 'zkluks-crash-shim-'));
  const log = join(dir, 'calls');
  const wrappers = { cryptsetup: REAL_CRYPTSETUP, ...tools };
  for (const [name, real] of Object.entries(wrappers)) {
    const label =
      name === 'cryptsetup'
        ? `verb=
for a in "$@"; do case "$a" in -*) ;; *) verb=$a; break ;; esac; done`
        : `verb=${name}`;
    await writeFile(
      join(dir, name),
      `#!/bin/sh
${label}
echo "$verb" >>'${log}'
n=$(wc -l <'${log}')
at=\${ZKLUKS_SHIM_AT:-0}
mode=\${ZKLUKS_SHIM_MODE:-count}
if [ "$mode" = hold-write ]; then
  case "$verb" in
    luksAddKey | token | config | luksKillSlot)
      echo "$verb" >>'${dir}/writes.'"$PPID"
      if [ "$(wc -l <'${dir}/writes.'"$PPID")" -eq "$at" ]; then
        : >'${dir}/held.'"$PPID"
        i=0
        while [ ! -e '${dir}/release' ] && [ "$i" -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
      fi ;;
  esac
elif [ "$n" -eq "$at" ]; then
  case "$mode" in
    kill-before) kill -KILL "$PPID"; exit 137 ;;
    hup-before) kill -HUP "$PPID" ;;
    kill-cryptsetup)
      '${real}' "$@" <&0 &
      child=$!
      kill -KILL "$child" 2>/dev/null
      wait "$child"
      exit 137 ;;
  esac
fi
'${real}' "$@"
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
    await chmod(join(dir, name), 0o755);
  }
  await writeFile(
    join(dir, 'flock'),
    `#!/bin/sh
if [ -n "\${ZKLUKS_SHIM_BARRIER:-}" ]; then
  : >'${dir}/at-lock.'"$PPID"
  arrived() { set -- '${dir}'/at-lock.*; [ -e "$1" ] && echo $# || echo 0; }
  i=0
  while [ "$(arrived)" -lt "$ZKLUKS_SHIM_BARRIER" ] && [ "$i" -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
fi
exec '${REAL_FLOCK}' "$@"
`,
  );
  await chmod(join(dir, 'flock'), 0o755);
  const marks = async (prefix: string) =>
    (await readdir(dir)).filter((f) => f.startsWith(prefix)).map((f) => Number(f.slice(prefix.length)));
  return {
    dir,
    env: (mode, at, barrier) => ({
      PATH: `${dir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
      ZKLUKS_SHIM_MODE: mode,
      ZKLUKS_SHIM_AT: String(at),
      ZKLUKS_SHIM_LOG: log,
      ...(barrier ? { ZKLUKS_SHIM_BARRIER: String(barrier) } : {}),
    }),
    calls: async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => l !== ''),
    held: () => marks('held.'),
    arrived: () => marks('at-lock.'),
    release: () => writeFile(join(dir, 'release'), ''),
    reset: async () => {
      for (const f of await readdir(dir))
        if (!(f in wrappers) && f !== 'flock') await rm(join(dir, f), { force: true });
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
