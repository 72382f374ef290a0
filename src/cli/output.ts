// The only place zkluks writes to the terminal. stdout carries data; everything else goes to stderr.
import { ExitCode, ZkluksError, type ExitCodeValue } from '../errors.ts';

export interface Output {
  /** Data: a human rendering, or with --json the JSON value. */
  data(human: string, json: unknown): void;
  /** A progress or status line, to stderr. */
  info(line: string): void;
  warn(line: string): void;
}

export interface Streams {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
}

export function createOutput(json: boolean, streams: Streams = process): Output {
  return {
    data(human, value) {
      if (json) streams.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
      else if (human) streams.stdout.write(human.endsWith('\n') ? human : `${human}\n`);
    },
    info(line) {
      streams.stderr.write(`${line}\n`);
    },
    warn(line) {
      streams.stderr.write(`warning: ${line}\n`);
    },
  };
}

/** Print an error the zkluks way and return the exit code it maps to. */
export function reportError(error: unknown, json: boolean, streams: Streams = process): ExitCodeValue {
  if (error instanceof ZkluksError) {
    streams.stderr.write(`${error.message}\n`);
    if (error.hint) streams.stderr.write(`hint: ${error.hint}\n`);
    if (json) {
      const reason = (error as { reason?: string }).reason;
      streams.stdout.write(
        `${JSON.stringify({ error: { message: error.message, hint: error.hint ?? null, exitCode: error.exitCode, ...(reason ? { reason } : {}) } }, null, 2)}\n`,
      );
    }
    return error.exitCode;
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  streams.stderr.write(`zkluks: internal error: ${message}\n`);
  streams.stderr.write('hint: this is a bug in zkluks; please report it with the output above\n');
  return ExitCode.failed;
}
