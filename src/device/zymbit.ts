// The zymbit backend: the real module through Zymbit's standalone tools from `zksaapps`
// (zkgrifs / zklockifs / zkunlockifs), the same ones the initramfs uses. As Zymbit's own scripts do,
// zkifc is stopped while a tool talks to the module and started again afterwards, on error too.
// Info, binding and perimeter come from Zymbit's Python `zymkey` module through one fixed script.
import { ZymkeyUnavailableError } from '../errors.ts';
import type { RunResult, Runner } from '../exec.ts';
import { failureHint, isZymkeyFailure, zymkeyFailure } from './failures.ts';
import {
  checkRandomCount,
  type BindingInfo,
  type PerimeterChannel,
  type SupervisedBootInfo,
  type ZymkeyInfo,
  type ZymkeyPort,
} from './port.ts';
import { TMPFS_CANDIDATES, withPrivateTmpfsDir } from './tmpfs-dir.ts';
import { readScmManifest, updateScmFile } from './zymbit-scm.ts';
import {
  parseZymkeyInfoReport,
  unknownReport,
  ZYMKEY_INFO_SCRIPT,
  type ZymkeyInfoReport,
} from './zymkey-info-script.ts';

export type ZymbitTool = 'zkgrifs' | 'zklockifs' | 'zkunlockifs';

export interface ZymbitOptions {
  runner: Runner;
  /** Where private key files may be written (tmpfs only); default /dev/shm, then /run. */
  tmpfsCandidates?: readonly string[];
  /** Bound on each tool run. */
  timeoutMs?: number;
  /** Where an SCM's device node (zscm*) appears; default /dev. */
  devDir?: string;
  /** Told when zkifc could not be started again (the operation itself still succeeded or failed). */
  onWarning?: (line: string) => void;
}

/**
 * Turn a failed tool run into a ZymkeyUnavailableError. A `<tool>: <reason>: <explanation>` line
 * (the simulator's tools, and any tool that follows the contract) gives the reason; anything else
 * is 'unknown' with the tool's last stderr line.
 */
export function toolFailure(
  tool: ZymbitTool,
  action: string,
  result: RunResult,
  timeoutMs: number,
): ZymkeyUnavailableError {
  if (result.exitCode === 127) {
    return zymkeyFailure('tool-missing', action, `'${tool}' is not installed or not on PATH`);
  }
  if (result.timedOut)
    return zymkeyFailure('timeout', action, `'${tool}' gave no answer within ${timeoutMs} ms`);
  const lines = result.stderr.trim().split('\n').filter(Boolean);
  for (const line of lines) {
    const m = /^(?:\S*\/)?(zkgrifs|zklockifs|zkunlockifs): ([a-z-]+): (.*)$/.exec(line.trim());
    // The explanation already carries the meaning, so it is not appended again.
    if (m?.[2] !== undefined && isZymkeyFailure(m[2])) {
      return new ZymkeyUnavailableError(m[2], `Failed to ${action}: ${m[2]}: ${m[3]}`, {
        hint: failureHint(m[2]),
      });
    }
  }
  const last = lines.pop();
  return zymkeyFailure(
    'unknown',
    action,
    `'${tool}' exited ${result.exitCode}${last ? ` saying '${last}'` : ' without a message'}`,
  );
}

export class ZymbitZymkey implements ZymkeyPort {
  readonly backend = 'zymbit' as const;
  private readonly runner: Runner;
  private readonly timeoutMs: number;
  private readonly tmpfs: readonly string[];
  private queue: Promise<unknown> = Promise.resolve();
  private report: Promise<ZymkeyInfoReport> | undefined;

  constructor(private readonly opts: ZymbitOptions) {
    this.runner = opts.runner;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.tmpfs = opts.tmpfsCandidates ?? TMPFS_CANDIDATES;
  }

  /** One tool at a time: zkifc stopped before, started again after, whatever happens. */
  private withZkifcStopped<T>(fn: () => Promise<T>): Promise<T> {
    const run = async () => {
      const stop = await this.runner('systemctl', ['stop', 'zkifc'], { reject: false });
      try {
        return await fn();
      } finally {
        // No systemctl at all (127): there is no zkifc service to give back.
        if (stop.exitCode !== 127) {
          const start = await this.runner('systemctl', ['start', 'zkifc'], { reject: false });
          if (start.exitCode !== 0) {
            this.opts.onWarning?.(
              `could not start zkifc again (exit ${start.exitCode}): ${start.stderr.trim()}`,
            );
          }
        }
      }
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async tool(tool: ZymbitTool, arg: string, action: string): Promise<Buffer> {
    const result = await this.runner(tool, [arg], { reject: false, timeoutMs: this.timeoutMs });
    if (result.exitCode !== 0 || result.timedOut) throw toolFailure(tool, action, result, this.timeoutMs);
    return result.stdoutBytes;
  }

  async randomBytes(n: number): Promise<Buffer> {
    checkRandomCount(n);
    const action = 'read random bytes from the Zymkey';
    const bytes = await this.withZkifcStopped(() => this.tool('zkgrifs', String(n), action));
    if (bytes.length !== n) {
      throw zymkeyFailure('unknown', action, `'zkgrifs ${n}' printed ${bytes.length} bytes`);
    }
    return bytes;
  }

  async seal(plain: Buffer): Promise<Buffer> {
    const action = 'seal data with the Zymkey';
    const sealed = await withPrivateTmpfsDir(async (dir) => {
      const file = await dir.write('plain', plain);
      return this.withZkifcStopped(() => this.tool('zklockifs', file, action));
    }, this.tmpfs);
    if (sealed.length === 0) throw zymkeyFailure('unknown', action, "'zklockifs' printed nothing");
    return sealed;
  }

  async unseal(sealed: Buffer): Promise<Buffer> {
    const action = 'unseal data with the Zymkey';
    return withPrivateTmpfsDir(async (dir) => {
      const file = await dir.write('sealed', sealed);
      return this.withZkifcStopped(() => this.tool('zkunlockifs', file, action));
    }, this.tmpfs);
  }

  /** Run the info script once per instance; any failure degrades to "unknown". */
  readReport(): Promise<ZymkeyInfoReport> {
    this.report ??= (async () => {
      const r = await this.runner('python3', ['-'], {
        input: ZYMKEY_INFO_SCRIPT,
        reject: false,
        timeoutMs: this.timeoutMs,
      });
      if (r.exitCode === 127) return unknownReport('python3 is not installed');
      if (r.exitCode !== 0 || r.timedOut) {
        const last = r.stderr.trim().split('\n').pop() ?? '';
        return unknownReport(`the info script failed (exit ${r.exitCode}): ${last}`);
      }
      return parseZymkeyInfoReport(r.stdout);
    })();
    return this.report;
  }

  async info(): Promise<ZymkeyInfo> {
    return (await this.readReport()).info;
  }

  async binding(): Promise<BindingInfo> {
    return (await this.readReport()).binding;
  }

  async perimeter(): Promise<PerimeterChannel[]> {
    return (await this.readReport()).perimeter;
  }

  supervisedBoot(): Promise<SupervisedBootInfo> {
    return readScmManifest(this.runner, this.opts.devDir ?? '/dev', this.timeoutMs);
  }

  updateSupervisedBootFile(file: string): Promise<void> {
    return updateScmFile(this.runner, file, this.timeoutMs);
  }
}
