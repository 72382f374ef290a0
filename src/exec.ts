// The one process runner. Every external program zkluks starts goes through a Runner, so tests
// can record, script or fault-inject every call, and so secrets have exactly one way in: stdin.
// Built on node:child_process alone: every command that starts a program loads this file, and a
// process library would cost more start-up time than the programs it runs (see bench/).
import { spawn, type ChildProcess } from 'node:child_process';
import { CommandFailedError } from './errors.ts';

export interface RunOptions {
  /** Data written to the program's stdin. */
  input?: string | Buffer;
  /** True when `input` is secret: it is never recorded and never appears in errors. */
  secretInput?: boolean;
  /** Further secret values (e.g. a key the program prints) to redact from records and errors. */
  secrets?: ReadonlyArray<string | Buffer>;
  env?: Record<string, string | undefined>;
  cwd?: string;
  timeoutMs?: number;
  /** Throw CommandFailedError on a non-zero exit (default true). */
  reject?: boolean;
}

export interface RunResult {
  /** `file args…` as a person would type it, with secrets redacted. */
  command: string;
  exitCode: number;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
  timedOut: boolean;
  /** The signal that killed the program (e.g. SIGKILL), if one did. */
  signal?: string;
}

export type Runner = (file: string, args: readonly string[], options?: RunOptions) => Promise<RunResult>;

/** What a recording runner keeps of each call. */
export interface RunRecord {
  file: string;
  args: string[];
  input: string | undefined;
  exitCode: number;
}

export const REDACTED = '<redacted>';

function secretStrings(options: RunOptions): string[] {
  const values: string[] = [];
  const add = (value: string | Buffer) => {
    const text = Buffer.isBuffer(value) ? value.toString('utf8') : value;
    // Very short values would redact ordinary words; secrets are keys and passphrases.
    if (text.length >= 4) values.push(text);
    if (Buffer.isBuffer(value) && value.length >= 4) {
      values.push(value.toString('hex'), value.toString('base64'));
    }
  };
  if (options.secretInput && options.input !== undefined) add(options.input);
  for (const s of options.secrets ?? []) add(s);
  return values;
}

/** Replace every secret value in `text` with <redacted>. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join(REDACTED);
  return out;
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * Refuse a call that would put a secret on argv, where every user of `ps` can read it: an argument
 * that is the secret, ends in `=secret`, or (for secrets long enough not to match ordinary words)
 * contains it.
 */
function assertNoSecretOnArgv(file: string, args: readonly string[], secrets: readonly string[]): void {
  const leaks = (arg: string, s: string) =>
    arg === s || arg.endsWith(`=${s}`) || (s.length >= 12 && arg.includes(s));
  for (const arg of [file, ...args]) {
    if (secrets.some((s) => leaks(arg, s))) {
      throw new Error(`refusing to run '${file}': a secret value would appear on its command line`);
    }
  }
}

export interface RunnerOptions {
  /** Append a record of every call here (tests). */
  records?: RunRecord[];
  /** Environment added to every call (e.g. PATH with the simulator's tools first). */
  env?: Record<string, string | undefined>;
}

/** Children still running; they are ended with SIGTERM when zkluks exits before them. */
const running = new Set<ChildProcess>();
let cleanupInstalled = false;

function track(child: ChildProcess): void {
  if (!cleanupInstalled) {
    cleanupInstalled = true;
    process.on('exit', () => {
      for (const c of running) c.kill('SIGTERM');
    });
  }
  running.add(child);
  child.once('close', () => running.delete(child));
}

/** A program that ran to its end (or could not start). */
interface Finished {
  /** Null when a signal ended it or it never started. */
  code: number | null;
  /** The spawn error's code (ENOENT for a missing program). */
  errorCode: string | undefined;
  /** The signal that ended it, if one did. */
  signal: string | null;
  stdout: Buffer;
  stderr: Buffer;
}

/** Collect a child's output and wait until it has ended and its pipes are closed. */
function finished(child: ChildProcess): Promise<Finished> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
  // A program that exits without reading its input closes the pipe; that is its answer, not ours.
  child.stdin?.on('error', () => {});
  return new Promise((resolve) => {
    let errorCode: string | undefined;
    const done = (code: number | null, signal: string | null = null) =>
      resolve({ code, errorCode, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err) });
    // A program that never started (no pid) is answered by 'error'; one that ran, by 'close'.
    child.once('error', (error: NodeJS.ErrnoException) => {
      errorCode = error.code ?? 'ERROR';
      if (child.pid === undefined) done(null);
    });
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      if (child.pid !== undefined) done(code, signal);
    });
  });
}

/** After a timeout's SIGTERM, a program that ignores it gets SIGKILL this much later. */
const KILL_AFTER_MS = 5000;

export function createRunner(runnerOptions: RunnerOptions = {}): Runner {
  return async (file, args, options = {}) => {
    const secrets = secretStrings(options);
    assertNoSecretOnArgv(file, args, secrets);
    const command = redact([file, ...args].map(quote).join(' '), secrets);
    const child = spawn(file, [...args], {
      // No input means stdin is /dev/null, so a program that would prompt fails instead of hanging.
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...runnerOptions.env, ...options.env },
      cwd: options.cwd,
    });
    track(child);
    const result = finished(child);
    if (options.input !== undefined) child.stdin?.end(options.input);
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGTERM');
            killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
          }, options.timeoutMs);
    const r = await result;
    clearTimeout(timer);
    clearTimeout(killTimer);
    const stdoutBytes = r.stdout;
    const stderr = redact(r.stderr.toString('utf8'), secrets);
    const notFound = r.errorCode === 'ENOENT';
    const exitCode = r.code ?? (notFound ? 127 : 1);
    runnerOptions.records?.push({
      file,
      args: [...args],
      input:
        options.input === undefined
          ? undefined
          : options.secretInput
            ? REDACTED
            : redact(options.input.toString(), secrets),
      exitCode,
    });
    const out: RunResult = {
      command,
      exitCode,
      stdout: stdoutBytes.toString('utf8'),
      stdoutBytes,
      stderr: notFound ? `${file}: command not found` : stderr,
      timedOut,
      ...(r.signal ? { signal: r.signal } : {}),
    };
    if ((options.reject ?? true) && (exitCode !== 0 || out.timedOut)) {
      throw new CommandFailedError(
        command,
        exitCode,
        out.timedOut ? `timed out after ${options.timeoutMs} ms` : out.stderr,
      );
    }
    return out;
  };
}

/** Wrap a runner so that a chosen call fails, as if the program had failed (fault-injection tests). */
export function failingRunner(
  inner: Runner,
  shouldFail: (file: string, args: readonly string[]) => boolean,
  stderr = 'injected failure',
): Runner {
  return async (file, args, options = {}) => {
    if (!shouldFail(file, args)) return inner(file, args, options);
    const command = [file, ...args].map(quote).join(' ');
    if (options.reject ?? true) throw new CommandFailedError(command, 1, stderr);
    return { command, exitCode: 1, stdout: '', stdoutBytes: Buffer.alloc(0), stderr, timedOut: false };
  };
}

/** A helper process that holds something (a lock) for as long as it runs. */
export interface Holder {
  pid: number;
  /** End the helper and wait for it. */
  release(): Promise<void>;
}

/**
 * Start `file args…` as a holder: resolves once it prints `ready` on stdout, or with its exit code
 * and stderr when it ends first. Its stdin is a pipe from this process, so when this process dies —
 * however it dies — the helper reads end-of-file and ends too: a holder never outlives zkluks.
 */
export async function startHolder(
  file: string,
  args: readonly string[],
  ready: string,
): Promise<{ holder: Holder } | { holder: null; exitCode: number; stderr: string }> {
  const child = spawn(file, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  track(child);
  const result = finished(child);
  const outcome = await new Promise<'ready' | 'ended'>((resolve) => {
    let seen = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes(ready)) resolve('ready');
    });
    void result.then(() => resolve('ended'));
  });
  if (outcome === 'ended') {
    const r = await result;
    const notFound = r.errorCode === 'ENOENT';
    return {
      holder: null,
      exitCode: r.code ?? (notFound ? 127 : 1),
      stderr: notFound ? `${file}: command not found` : r.stderr.toString('utf8'),
    };
  }
  return {
    holder: {
      pid: child.pid ?? -1,
      async release() {
        child.stdin?.end();
        await result;
      },
    },
  };
}
