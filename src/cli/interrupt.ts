// Signals during a header change — Ctrl-C, SIGTERM, a dropped SSH connection (SIGHUP), SIGQUIT, and
// a closed pipe on stdout (EPIPE) — become an AbortSignal the executor checks between steps, so it
// stops, restores the header backup and only then exits. A kill or a power cut, which no handler
// sees, is settled by the next run from the record in the header.
import { constants } from 'node:os';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const;

let changing = false;
let owned = false;

/** A command that ends itself on SIGINT/SIGTERM (sim serve) takes the signals from the global handler. */
export function ownSignals(on: boolean): void {
  owned = on;
}

/**
 * Outside a change, the same signals end zkluks at once with a sentence saying nothing was under
 * way (exit 128 + the signal's number), instead of dying silently.
 */
export function exitOnSignals(): void {
  for (const s of SIGNALS) {
    process.on(s, (name: NodeJS.Signals) => {
      if (changing || owned) return;
      try {
        process.stderr.write(`zkluks: stopped by ${name}; no change to a volume was under way\n`);
      } catch {
        // The terminal is gone.
      }
      process.exit(128 + (constants.signals[name] ?? 0));
    });
  }
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (changing || error.code !== 'EPIPE') return;
    process.exit(1);
  });
}

export async function withInterruptSignal<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (!controller.signal.aborted) controller.abort(name);
  };
  const onStdoutError = (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE' && !controller.signal.aborted) controller.abort('EPIPE on stdout');
  };
  // A terminal that hung up fails writes to stderr; that must not end the rollback.
  const onStderrError = () => {};
  for (const s of SIGNALS) process.on(s, onSignal);
  process.stdout.on('error', onStdoutError);
  process.stderr.on('error', onStderrError);
  changing = true;
  try {
    return await fn(controller.signal);
  } finally {
    changing = false;
    for (const s of SIGNALS) process.off(s, onSignal);
    process.stdout.off('error', onStdoutError);
    process.stderr.off('error', onStderrError);
  }
}
