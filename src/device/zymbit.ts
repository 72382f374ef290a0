// The zymbit backend: the real module through Zymbit's standalone tools from `zksaapps`
// (zkgrifs / zklockifs / zkunlockifs), the same ones the initramfs uses. As Zymbit's own scripts do,
// zkifc is stopped while a tool talks to the module and started again afterwards, on error too.
// Info, binding and perimeter come from Zymbit's Python `zymkey` module through one fixed script.
// A failing tool is never read for a reason: src/device/tool-failure.ts tells why from zkluks's own
// probes (state directory, I2C probe, zkifc, the API, the token's record).
import { release } from 'node:os';
import type { RunResult, Runner } from '../exec.ts';
import { zymkeyFailure } from './failures.ts';
import { probeZymkeyBus, type ProbeResult } from './i2c.ts';
import {
  checkRandomCount,
  type BindingInfo,
  type PerimeterChannel,
  type SupervisedBootInfo,
  type UnsealContext,
  type ZymkeyInfo,
  type ZymkeyPort,
} from './port.ts';
import { TMPFS_CANDIDATES, withPrivateTmpfsDir } from './tmpfs-dir.ts';
import { readScmManifest, removeScmFile, updateScmFile } from './zymbit-scm.ts';
import {
  DEFAULT_TOOL_TIMEOUT_MS,
  explainToolFailure,
  stateDirFact,
  type ModuleProbes,
} from './tool-failure.ts';
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
  /**
   * Bound on the Python API script (info, binding, perimeter, and the probe after a failed tool);
   * default DEFAULT_TOOL_TIMEOUT_MS, apart from the tools' bound.
   */
  apiTimeoutMs?: number;
  /** Where an SCM's device node (zscm*) appears; default /dev. */
  devDir?: string;
  /** Told when zkifc could not be started again (the operation itself still succeeded or failed). */
  onWarning?: (line: string) => void;
  /** Zymbit's state directory on this host; default /var/lib/zymbit. */
  zymbitDir?: string;
  /** The I2C probe run when a tool fails; default the real probe of this host's bus. */
  probeBus?: () => Promise<ProbeResult>;
  /** The running kernel, for the wake-pin check when a tool fails; default `uname -r` of this host. */
  kernel?: string;
}

export const ZYMBIT_DIR = '/var/lib/zymbit';

export class ZymbitZymkey implements ZymkeyPort {
  readonly backend = 'zymbit' as const;
  private readonly runner: Runner;
  private readonly timeoutMs: number;
  private readonly tmpfs: readonly string[];
  private queue: Promise<unknown> = Promise.resolve();
  private report: Promise<ZymkeyInfoReport> | undefined;

  constructor(private readonly opts: ZymbitOptions) {
    this.runner = opts.runner;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
    this.tmpfs = opts.tmpfsCandidates ?? TMPFS_CANDIDATES;
  }

  /**
   * One tool at a time: zkifc stopped before, started again after, whatever happens. `fn` learns
   * why zkifc may not be stopped (null when it is, or when there is no systemctl and so no zkifc).
   */
  private withZkifcStopped<T>(fn: (notStopped: string | null) => Promise<T>): Promise<T> {
    const run = async () => {
      const stop = await this.runner('systemctl', ['stop', 'zkifc'], { reject: false });
      const notStopped =
        stop.exitCode === 0 || stop.exitCode === 127
          ? null
          : `'systemctl stop zkifc' exited ${stop.exitCode}`;
      try {
        return await fn(notStopped);
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

  /** What zkluks can check itself once a tool failed; the API is asked afresh, with zkifc started again. */
  private probes(zkifcNotStopped: string | null): ModuleProbes {
    const dir = this.opts.zymbitDir ?? ZYMBIT_DIR;
    return {
      stateDir: dir,
      stateDirFact: () => stateDirFact(dir),
      bus: () => (this.opts.probeBus ?? (() => probeZymkeyBus()))(),
      zkifcNotStopped,
      api: async () => {
        const r = await this.runReport();
        return { answers: r.client, serial: r.info.serial === 'unknown' ? null : r.info.serial };
      },
      kernel: this.opts.kernel ?? release(),
    };
  }

  /** Run `tool arg` with zkifc stopped; a failure is explained from zkluks's own probes. */
  private async tool(
    tool: ZymbitTool,
    arg: string,
    action: string,
    context: UnsealContext & { unsealing?: boolean } = {},
  ): Promise<Buffer> {
    const { result, notStopped } = await this.withZkifcStopped(async (notStopped) => ({
      result: await this.runner(tool, [arg], { reject: false, timeoutMs: this.timeoutMs }),
      notStopped,
    }));
    if (result.exitCode === 0 && !result.timedOut) return result.stdoutBytes;
    throw await explainToolFailure({ tool, ...runEnd(result) }, action, this.probes(notStopped), {
      timeoutMs: this.timeoutMs,
      ...context,
    });
  }

  async randomBytes(n: number): Promise<Buffer> {
    checkRandomCount(n);
    const action = 'read random bytes from the Zymkey';
    const bytes = await this.tool('zkgrifs', String(n), action);
    if (bytes.length !== n) {
      throw zymkeyFailure('unknown', action, `'zkgrifs ${n}' printed ${bytes.length} bytes`);
    }
    return bytes;
  }

  async seal(plain: Buffer): Promise<Buffer> {
    const action = 'seal data with the Zymkey';
    const sealed = await withPrivateTmpfsDir(async (dir) => {
      const file = await dir.write('plain', plain);
      return this.tool('zklockifs', file, action);
    }, this.tmpfs);
    if (sealed.length === 0) throw zymkeyFailure('unknown', action, "'zklockifs' printed nothing");
    return sealed;
  }

  async unseal(sealed: Buffer, context: UnsealContext = {}): Promise<Buffer> {
    const action = 'unseal data with the Zymkey';
    return withPrivateTmpfsDir(async (dir) => {
      const file = await dir.write('sealed', sealed);
      return this.tool('zkunlockifs', file, action, { ...context, unsealing: true });
    }, this.tmpfs);
  }

  /** Run the info script once per instance; any failure degrades to "unknown". */
  readReport(): Promise<ZymkeyInfoReport> {
    this.report ??= this.runReport();
    return this.report;
  }

  /** Run the info script now; any failure degrades to "unknown". */
  private async runReport(): Promise<ZymkeyInfoReport> {
    const r = await this.runner('python3', ['-'], {
      input: ZYMKEY_INFO_SCRIPT,
      reject: false,
      timeoutMs: this.opts.apiTimeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS,
    });
    if (r.exitCode === 127) return unknownReport('python3 is not installed');
    if (r.exitCode !== 0 || r.timedOut) {
      const last = r.stderr.trim().split('\n').pop() ?? '';
      return unknownReport(`the info script failed (exit ${r.exitCode}): ${last}`);
    }
    return parseZymkeyInfoReport(r.stdout);
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

  removeSupervisedBootFile(file: string): Promise<void> {
    return removeScmFile(this.runner, file, this.timeoutMs);
  }
}

/** The part of a run result that says how the tool ended. */
function runEnd(r: RunResult): {
  exitCode: number;
  signal: string | null;
  timedOut: boolean;
  stderr: string;
} {
  return { exitCode: r.exitCode, signal: r.signal ?? null, timedOut: r.timedOut, stderr: r.stderr };
}
