// A `cryptsetup` first in PATH that runs the real one, but first marks a file and sleeps on one
// chosen step — so a test can interrupt or race zkluks while that step is under way.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';

export interface SlowCryptsetup {
  /** Prepend to PATH. */
  dir: string;
  /** Appears when the slow step starts. */
  mark: string;
  env: Record<string, string>;
  started(): boolean;
}

/** `step` is the leading arguments to slow down, e.g. ['token', 'import'] or ['luksAddKey']. */
export async function slowCryptsetup(step: string[], seconds: number): Promise<SlowCryptsetup> {
  const dir = await mkdtemp(join(tmpdir(), 'zkluks-slow-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const real = ['/usr/sbin/cryptsetup', '/sbin/cryptsetup', '/usr/bin/cryptsetup'].find(existsSync) as string;
  const mark = join(dir, 'started');
  const test = step.map((a, i) => `[ "\${${i + 1}:-}" = '${a}' ]`).join(' && ');
  await writeFile(
    join(dir, 'cryptsetup'),
    `#!/bin/sh\nif ${test}; then : >'${mark}'; sleep ${seconds}; fi\nexec '${real}' "$@"\n`,
  );
  await chmod(join(dir, 'cryptsetup'), 0o755);
  return {
    dir,
    mark,
    env: { PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}` },
    started: () => existsSync(mark),
  };
}

export async function waitFor(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}
