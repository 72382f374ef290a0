// Does this key open the volume? `cryptsetup open --test-passphrase` answers without activating
// anything. Keys go in on stdin (secret) or as a file path; never as bytes on argv.
import type { Runner } from '../exec.ts';

function unlockedSlot(output: string, asked: number | null): number {
  const m = /Key slot (\d+) unlocked/.exec(output);
  return m ? Number(m[1]) : (asked ?? -1);
}

/** The slot `key` opens (only `slot` when given), or null. */
export async function keyOpens(
  runner: Runner,
  volume: string,
  key: Buffer,
  slot: number | null,
): Promise<number | null> {
  const r = await runner(
    'cryptsetup',
    [
      '-v',
      'open',
      '--test-passphrase',
      '--key-file',
      '-',
      ...(slot === null ? [] : ['--key-slot', String(slot)]),
      volume,
    ],
    { input: key, secretInput: true, reject: false, timeoutMs: 30_000 },
  );
  return r.exitCode === 0 ? unlockedSlot(r.stdout + r.stderr, slot) : null;
}

/** The slot the key file at `file` opens, or null. */
export async function keyFileOpens(runner: Runner, volume: string, file: string): Promise<number | null> {
  const r = await runner('cryptsetup', ['-v', 'open', '--test-passphrase', '--key-file', file, volume], {
    reject: false,
    timeoutMs: 30_000,
  });
  return r.exitCode === 0 ? unlockedSlot(r.stdout + r.stderr, null) : null;
}
