// Supervised Boot on a real SCM (or Secure Edge Node), through Zymbit's Python `zymkey` module:
// get_supervised_boot_file_manifest(), add_or_update_supervised_boot_file(filepath, slot=15) and
// remove_supervised_boot_file(filepath).
// An SCM is a USB device that shows up as /dev/zscm* (how Zymbit's own Bootware installer tells an
// SCM from a Zymkey); where there is none, no Python runs at all.
import { readdirSync } from 'node:fs';
import type { Runner } from '../exec.ts';
import type { SupervisedBootInfo } from './port.ts';

/** The slot Zymbit's API signs with by default. */
export const SCM_SLOT = 15;

const MANIFEST_SCRIPT = String.raw`
import json, sys
out = {"manifest": None, "error": None}
try:
    import zymkey
    client = zymkey.client
    if client is None:
        raise RuntimeError("zymkey.client is None: zkOpen failed (zkifc not running or the module unreachable)")
    m = client.get_supervised_boot_file_manifest()
    out["manifest"] = [str(f) for f in (m if isinstance(m, (list, tuple)) else str(m).split())]
except Exception as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
sys.stdout.write(json.dumps(out) + "\n")
`;

const UPDATE_SCRIPT = String.raw`
import sys
import zymkey
if zymkey.client is None:
    sys.exit("zymkey.client is None: zkOpen failed (zkifc not running or the module unreachable)")
zymkey.client.add_or_update_supervised_boot_file(sys.argv[1], int(sys.argv[2]))
`;

const REMOVE_SCRIPT = String.raw`
import sys
import zymkey
if zymkey.client is None:
    sys.exit("zymkey.client is None: zkOpen failed (zkifc not running or the module unreachable)")
zymkey.client.remove_supervised_boot_file(sys.argv[1])
`;

/** The SCM device nodes in `devDir` (/dev/zscm0, /dev/zscm_7, …). */
export function scmDevices(devDir: string): string[] {
  try {
    return readdirSync(devDir)
      .filter((n) => n.startsWith('zscm'))
      .map((n) => `${devDir}/${n}`);
  } catch {
    return [];
  }
}

export async function readScmManifest(
  runner: Runner,
  devDir: string,
  timeoutMs: number,
): Promise<SupervisedBootInfo> {
  if (scmDevices(devDir).length === 0) return { scm: false, manifest: null, error: null };
  const r = await runner('python3', ['-'], { input: MANIFEST_SCRIPT, reject: false, timeoutMs });
  if (r.exitCode !== 0 || r.timedOut) {
    const last = r.stderr.trim().split('\n').pop() ?? '';
    return {
      scm: true,
      manifest: null,
      error:
        r.exitCode === 127
          ? 'python3 is not installed'
          : `the manifest script failed (exit ${r.exitCode}): ${last}`,
    };
  }
  try {
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as {
      manifest: unknown;
      error: unknown;
    };
    if (Array.isArray(out.manifest) && out.manifest.every((f) => typeof f === 'string'))
      return { scm: true, manifest: out.manifest as string[], error: null };
    return {
      scm: true,
      manifest: null,
      error: typeof out.error === 'string' ? out.error : 'the manifest script gave no manifest',
    };
  } catch {
    return { scm: true, manifest: null, error: 'the manifest script printed no JSON report' };
  }
}

async function runScmCall(
  runner: Runner,
  script: string,
  call: string,
  args: string[],
  timeoutMs: number,
): Promise<void> {
  const r = await runner('python3', ['-', ...args], { input: script, reject: false, timeoutMs });
  if (r.exitCode !== 0 || r.timedOut) {
    const last = r.stderr.trim().split('\n').pop() ?? '';
    throw new Error(
      r.timedOut
        ? `${call} gave no answer within ${timeoutMs} ms`
        : `${call} failed (exit ${r.exitCode})${last ? `: ${last}` : ''}`,
    );
  }
}

export function updateScmFile(runner: Runner, file: string, timeoutMs: number): Promise<void> {
  return runScmCall(
    runner,
    UPDATE_SCRIPT,
    `add_or_update_supervised_boot_file('${file}')`,
    [file, String(SCM_SLOT)],
    timeoutMs,
  );
}

export function removeScmFile(runner: Runner, file: string, timeoutMs: number): Promise<void> {
  return runScmCall(runner, REMOVE_SCRIPT, `remove_supervised_boot_file('${file}')`, [file], timeoutMs);
}
