import { describe, expect, it } from 'vitest';
import { CommandFailedError } from '../src/errors.ts';
import { createRunner, failingRunner, REDACTED, type RunRecord } from '../src/exec.ts';

const key = 'k3y-0f-th3-v0lum3-a1b2c3d4';

describe('runner', () => {
  it('passes input on stdin and returns stdout as text and bytes', async () => {
    const run = createRunner();
    const r = await run('cat', [], { input: 'hello' });
    expect(r.stdout).toBe('hello');
    expect(r.stdoutBytes.equals(Buffer.from('hello'))).toBe(true);
  });

  it('never records a secret input in argv or in the record', async () => {
    const records: RunRecord[] = [];
    const run = createRunner({ records });
    await run('cat', [], { input: key, secretInput: true });
    expect(JSON.stringify(records)).not.toContain(key);
    expect(records[0]?.input).toBe(REDACTED);
  });

  it('keeps a secret the program echoes out of the error message', async () => {
    const run = createRunner();
    const error = await run('sh', ['-c', 'cat >&2; exit 3'], { input: key, secretInput: true }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CommandFailedError);
    const failure = error as CommandFailedError;
    expect(failure.message).not.toContain(key);
    expect(failure.stderr).not.toContain(key);
    expect(failure.message).toContain(REDACTED);
    expect(failure.commandExitCode).toBe(3);
  });

  it('redacts binary secrets in hex and base64 form too', async () => {
    const secret = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    const run = createRunner();
    const r = await run('sh', ['-c', 'echo "$HEX $B64" >&2'], {
      env: { HEX: secret.toString('hex'), B64: secret.toString('base64') },
      secrets: [secret],
      reject: false,
    });
    expect(r.stderr).toBe(`${REDACTED} ${REDACTED}\n`);
  });

  it('refuses to put a secret on the command line', async () => {
    const run = createRunner();
    await expect(run('echo', [key], { secrets: [key] })).rejects.toThrow(/secret value would appear/);
  });

  it('refuses a short secret given as a whole argument or an option value', async () => {
    const run = createRunner();
    await expect(run('echo', ['pass'], { secrets: ['pass'] })).rejects.toThrow(/secret value/);
    await expect(run('echo', ['--key=pass'], { secrets: ['pass'] })).rejects.toThrow(/secret value/);
  });

  it('does not mistake an option that merely contains a short secret for a leak', async () => {
    const run = createRunner();
    const r = await run('echo', ['--test-passphrase'], { input: 'pass', secretInput: true });
    expect(r.exitCode).toBe(0);
  });

  it('gives a program without input an empty stdin, so a prompt fails instead of hanging', async () => {
    const run = createRunner();
    const r = await run('sh', ['-c', 'read -r line || echo eof'], { timeoutMs: 5000 });
    expect(r.stdout).toBe('eof\n');
  });

  it('reports a missing program as exit 127 with a readable message', async () => {
    const run = createRunner();
    const r = await run('zkluks-no-such-program', [], { reject: false });
    expect(r.exitCode).toBe(127);
    expect(r.stderr).toContain('command not found');
  });

  it('fails a call that runs past its timeout', async () => {
    const run = createRunner();
    await expect(run('sleep', ['5'], { timeoutMs: 100 })).rejects.toThrow(/timed out after 100 ms/);
  });

  it('fault injection fails only the chosen call', async () => {
    const run = failingRunner(createRunner(), (file, args) => file === 'sh' && args[1] === 'exit 0');
    await expect(run('sh', ['-c', 'exit 0'])).rejects.toBeInstanceOf(CommandFailedError);
    await expect(run('true', [])).resolves.toMatchObject({ exitCode: 0 });
  });
});
