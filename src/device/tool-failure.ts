// Why one of Zymbit's standalone tools (zkgrifs, zklockifs, zkunlockifs) failed, told from what zkluks
// can establish itself. Zymbit documents no exit codes or messages for these tools, so their exit
// code, signal and stderr are evidence, shown as they were (escaped), and never read for a reason. The
// reason comes from probes: the tool's presence, the host's Zymbit state directory, the I2C bus,
// whether zkifc could be stopped, whether the module answers its API, and the serial the token
// recorded when the key was sealed. Where those cannot tell, the error says what is known and names
// the one signal left, the LED.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ZymkeyFailure, ZymkeyUnavailableError } from '../errors.ts';
import { safeText } from '../safe-text.ts';
import { zymkeyFailure } from './failures.ts';
import type { ProbeResult } from './i2c.ts';
import { needsWakePin, readWakePin, ZKENV_FILE } from './wake-pin.ts';

/** How a tool run ended, as the process runner saw it. */
export interface ToolRun {
  tool: string;
  exitCode: number;
  /** The signal that killed it, if one did. */
  signal?: string | null;
  timedOut: boolean;
  stderr: string;
}

/** The host's Zymbit state directory: absent, present without any module's salt file, or present. */
export type StateDirFact = 'missing' | 'no-salt' | 'present';

/** What zkluks can check itself when a tool fails. Every probe reports; none throws. */
export interface ModuleProbes {
  /** Where the state directory is (`/var/lib/zymbit` on a Pi), for the message. */
  stateDir: string;
  stateDirFact(): StateDirFact;
  /** The I2C probe, or null where there is no bus to probe (the simulator). */
  bus(): Promise<ProbeResult | null>;
  /** Why zkifc may still have been running while the tool ran (`systemctl stop zkifc` failed), or null. */
  zkifcNotStopped: string | null;
  /** Whether the module answers its API (through zkifc) now, and its serial when it does. */
  api(): Promise<{ answers: boolean; serial: string | null }>;
  /** The running kernel (`uname -r`) of the host the module sits on, null when unknown. */
  kernel: string | null;
}

export interface ExplainOptions {
  timeoutMs: number;
  /** The serial of the module that sealed the data (from the token), for an unseal. */
  sealedBy?: string;
  unsealing?: boolean;
}

/** The bound on one tool run unless the caller sets one. */
export const DEFAULT_TOOL_TIMEOUT_MS = 30_000;

/** The salt file Zymbit keeps per module serial in its state directory. */
export const ZYMBIT_SALT_FILE = 's1_fp_salt.bin';

/** Is `dir` there, and does it hold a module's salt (`<serial>/s1_fp_salt.bin`)? Unreadable counts as present. */
export function stateDirFact(dir: string): StateDirFact {
  let entries: string[];
  try {
    if (!statSync(dir).isDirectory()) return 'missing';
    entries = readdirSync(dir);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'present';
  }
  for (const entry of entries) {
    try {
      if (statSync(join(dir, entry, ZYMBIT_SALT_FILE)).isFile()) return 'present';
    } catch {
      // Not a module folder.
    }
  }
  return 'no-salt';
}

const WORDS_MAX = 400;

/** How the tool ended and what it said, its words escaped so a terminal shows them as they are. */
export function toolWords(run: ToolRun, timeoutMs: number): string {
  const how = run.timedOut
    ? `gave no answer within ${timeoutMs >= 1000 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`} and was stopped`
    : run.signal
      ? `was killed by ${run.signal}`
      : `exited ${run.exitCode}`;
  const said = run.stderr.trim();
  if (said === '') return `'${run.tool}' ${how} without a message`;
  const cut = said.length > WORDS_MAX ? `${said.slice(0, WORDS_MAX)}…` : said;
  return `'${run.tool}' ${how}, its words: '${safeText(cut)}'`;
}

const LED_HINT =
  "read the module's LED and run 'zkluks doctor --led PATTERN' (the patterns: zkluks doctor --help)";

/** The failure of a tool run, with the reason zkluks established from its own probes. */
export async function explainToolFailure(
  run: ToolRun,
  action: string,
  probes: ModuleProbes,
  opts: ExplainOptions,
): Promise<ZymkeyUnavailableError> {
  const words = toolWords(run, opts.timeoutMs);
  const fail = (reason: ZymkeyFailure, cause: string, hint?: string) =>
    zymkeyFailure(reason, action, `${words}; ${cause}`, hint);

  if (run.exitCode === 127 && !run.signal && !run.timedOut) {
    return zymkeyFailure('tool-missing', action, `'${run.tool}' is not installed or not on PATH`);
  }
  const state = probes.stateDirFact();
  if (state === 'missing') return fail('state-missing', `${probes.stateDir} does not exist`);
  if (state === 'no-salt') {
    return fail('state-missing', `${probes.stateDir} holds no module's ${ZYMBIT_SALT_FILE}`);
  }
  const bus = await probes.bus();
  if (bus && (bus.status === 'bus-missing' || bus.status === 'bus-timeout' || bus.status === 'conflict')) {
    return fail('unreachable', `the I2C probe says ${bus.status}: ${bus.detail}`);
  }
  if (probes.zkifcNotStopped !== null && !run.timedOut) {
    return fail(
      'unknown',
      `zkifc may have been running, and the standalone tools need it stopped: ${probes.zkifcNotStopped}`,
      'systemctl stop zkifc, then try again (zkluks starts it again afterwards)',
    );
  }
  // A hung tool was stopped at its deadline: the API and the host still tell what they can.
  const api = await probes.api();
  if (!api.answers) {
    if (probes.kernel !== null && needsWakePin(probes.kernel) && readWakePin(probes.stateDir) === null) {
      return fail(
        'not-bound',
        `the module answers no API call either, and kernel ${safeText(probes.kernel)} numbers GPIOs globally while ${probes.stateDir}/${ZKENV_FILE} sets no ZK_GPIO_WAKE_PIN, so the module never binds`,
        `set the wake pin: grep GPIO4 /sys/kernel/debug/gpio, then echo ZK_GPIO_WAKE_PIN=N > ${probes.stateDir}/${ZKENV_FILE}; systemctl restart zkifc`,
      );
    }
    const silent =
      'the module answers no API call either (zkOpen fails) although the state directory and the I2C bus are there: it is unplugged, not bound to this host (wake pin, brown-out, zkifc), bound in production mode to another host, or self-destructed, and only its LED tells which';
    if (run.timedOut) {
      return fail(
        'timeout',
        silent,
        `zkluks device probe (does the module answer on I2C?); then ${LED_HINT}`,
      );
    }
    return fail('unknown', silent, LED_HINT);
  }
  if (opts.unsealing && opts.sealedBy !== undefined && api.serial !== null && api.serial !== opts.sealedBy) {
    return fail(
      'wrong-module',
      `this module is serial ${safeText(api.serial)}, and the token records that serial ${safeText(opts.sealedBy)} sealed the key`,
    );
  }
  if (run.timedOut) {
    return fail(
      'timeout',
      'the module answers its API, so it is there and bound, yet the tool gave no answer',
    );
  }
  if (!opts.unsealing) {
    return fail('unknown', 'the module answers its API, so it is there and bound, yet the tool failed');
  }
  if (opts.sealedBy !== undefined && api.serial !== null) {
    return fail(
      'corrupt-blob',
      `the module that sealed the key (serial ${safeText(api.serial)}) answers its API, yet refuses the sealed key`,
    );
  }
  return fail(
    'unknown',
    'the module answers its API, so it refuses this sealed key itself: sealed by another module, or damaged',
    'zkluks doctor VOLUME (it compares the serial the token recorded with this module)',
  );
}
