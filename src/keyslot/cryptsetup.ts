// The cryptsetup calls that change or test a LUKS2 header. Keys go only through stdin
// (`--key-file -`) or a 0600 file in a private tmpfs directory, never argv.
import { ZkluksError } from '../errors.ts';
import type { Runner } from '../exec.ts';

/** The outcome of `cryptsetup -v open --test-passphrase`: the slot that opened, or why none did. */
export type KeyTest = { opens: true; slot: number } | { opens: false; exitCode: number; stderr: string };

/**
 * Test a key against `volume` (only `slot` when given) without activating anything: the key's bytes
 * go on stdin, or cryptsetup reads a key file by path — never the key on argv.
 */
export async function testKey(
  runner: Runner,
  volume: string,
  key: { bytes: Buffer | string } | { file: string },
  slot?: number,
): Promise<KeyTest> {
  const r = await runner(
    'cryptsetup',
    [
      '-v',
      'open',
      '--test-passphrase',
      ...(slot === undefined ? [] : ['--key-slot', String(slot)]),
      '--key-file',
      'file' in key ? key.file : '-',
      volume,
    ],
    {
      ...('bytes' in key ? { input: key.bytes, secretInput: true } : {}),
      reject: false,
      // A volume with several argon2 slots on a slow board takes seconds a slot; a hung device must
      // still end.
      timeoutMs: 120_000,
    },
  );
  if (r.exitCode !== 0) return { opens: false, exitCode: r.exitCode, stderr: r.stderr };
  const m = /Key slot (\d+) unlocked/.exec(r.stdout + r.stderr);
  return { opens: true, slot: m ? Number(m[1]) : (slot ?? -1) };
}

/** True when `key` opens `slot` (exit 2 from cryptsetup means it does not). */
export async function keyOpensSlot(
  runner: Runner,
  volume: string,
  key: Buffer | string,
  slot?: number,
): Promise<boolean> {
  const r = await testKey(runner, volume, { bytes: key }, slot);
  if (r.opens) return true;
  if (r.exitCode === 2 || /No key available/i.test(r.stderr)) return false;
  throw new ZkluksError(
    `Failed to test a key against '${volume}': ${r.stderr.trim() || `cryptsetup exited ${r.exitCode}`}`,
    {
      hint: `cryptsetup luksDump '${volume}'`,
    },
  );
}

/** Add the key in `newKeyFile` (0600, tmpfs) to `slot`, authorized by `existing` on stdin. */
export async function addKey(
  runner: Runner,
  volume: string,
  slot: number,
  existing: Buffer | string,
  newKeyFile: string,
): Promise<void> {
  await runner(
    'cryptsetup',
    [
      'luksAddKey',
      '--batch-mode',
      '--pbkdf',
      'pbkdf2',
      '--pbkdf-force-iterations',
      '1000',
      '--key-slot',
      String(slot),
      '--key-file',
      '-',
      volume,
      newKeyFile,
    ],
    { input: existing, secretInput: true },
  );
}

export async function setPriority(
  runner: Runner,
  volume: string,
  slot: number,
  priority: 'prefer' | 'normal',
): Promise<void> {
  await runner('cryptsetup', ['config', '--priority', priority, '--key-slot', String(slot), volume], {
    input: '',
  });
}

export async function importToken(
  runner: Runner,
  volume: string,
  tokenId: number,
  json: string,
  replace = false,
): Promise<void> {
  await runner(
    'cryptsetup',
    [
      'token',
      'import',
      '--token-id',
      String(tokenId),
      ...(replace ? ['--token-replace'] : []),
      '--json-file',
      '-',
      volume,
    ],
    { input: json },
  );
}

export async function removeToken(runner: Runner, volume: string, tokenId: number): Promise<void> {
  await runner('cryptsetup', ['token', 'remove', '--token-id', String(tokenId), volume], { input: '' });
}

export async function killSlot(runner: Runner, volume: string, slot: number): Promise<void> {
  await runner('cryptsetup', ['luksKillSlot', '--batch-mode', volume, String(slot)], { input: '' });
}

export async function backupHeader(runner: Runner, volume: string, file: string): Promise<void> {
  await runner('cryptsetup', ['luksHeaderBackup', '--batch-mode', volume, '--header-backup-file', file], {
    input: '',
  });
}

export async function restoreHeader(runner: Runner, volume: string, file: string): Promise<void> {
  await runner('cryptsetup', ['luksHeaderRestore', '--batch-mode', volume, '--header-backup-file', file], {
    input: '',
  });
}
