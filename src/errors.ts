// Error classes shared by every subsystem. Library code throws these; only src/cli prints them
// and turns them into exit codes.

export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  refused: 3,
  zymkeyUnavailable: 4,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export interface ErrorOptions {
  /** The command or action that fixes the problem, printed as `hint: …`. */
  hint?: string;
  exitCode?: ExitCodeValue;
  cause?: unknown;
}

export class ZkluksError extends Error {
  readonly hint: string | undefined;
  readonly exitCode: ExitCodeValue;

  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? ExitCode.failed;
  }
}

/** Bad arguments: exit 2. */
export class UsageError extends ZkluksError {
  constructor(message: string, options: Omit<ErrorOptions, 'exitCode'> = {}) {
    super(message, { ...options, exitCode: ExitCode.usage });
  }
}

/** A safety rule refused the operation: exit 3. The message states the rule. */
export class RefusedError extends ZkluksError {
  constructor(message: string, options: Omit<ErrorOptions, 'exitCode'> = {}) {
    super(message, { ...options, exitCode: ExitCode.refused });
  }
}

/**
 * Why the Zymkey could not do what was asked. Stable strings: they appear in --json output,
 * in boot records and in doctor findings.
 */
export type ZymkeyFailure =
  | 'unreachable' // no answer on I2C: bus off, wake pin unset, module unplugged
  | 'self-destructed' // key material destroyed after a perimeter breach
  | 'not-bound' // module has not bound to this host yet
  | 'host-mismatch' // production binding: this is not the host the module is bound to
  | 'wrong-module' // blob was sealed by a different module
  | 'corrupt-blob' // sealed data failed authentication
  | 'state-missing' // /var/lib/zymbit (or the simulator's state dir) is missing
  | 'state-corrupt' // the state exists but cannot be read
  | 'tool-missing' // zkgrifs / zklockifs / zkunlockifs not installed
  | 'timeout'
  | 'unknown';

/** The Zymkey cannot help: exit 4. */
export class ZymkeyUnavailableError extends ZkluksError {
  readonly reason: ZymkeyFailure;

  constructor(reason: ZymkeyFailure, message: string, options: Omit<ErrorOptions, 'exitCode'> = {}) {
    super(message, { ...options, exitCode: ExitCode.zymkeyUnavailable });
    this.reason = reason;
  }
}

/** An external program failed. The message never contains secrets (see src/exec.ts). */
export class CommandFailedError extends ZkluksError {
  readonly command: string;
  readonly commandExitCode: number;
  readonly stderr: string;

  constructor(command: string, commandExitCode: number, stderr: string, options: ErrorOptions = {}) {
    const tail = stderr.trim().split('\n').slice(-3).join('\n');
    super(`Failed to run '${command}' (exit ${commandExitCode})${tail ? `: ${tail}` : ''}`, options);
    this.command = command;
    this.commandExitCode = commandExitCode;
    this.stderr = stderr;
  }
}
