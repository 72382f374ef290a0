// The simulator's stand-ins for Zymbit's standalone tools:
//   zkgrifs N          N random bytes on stdout
//   zklockifs FILE     the sealed bytes of FILE's content on stdout
//   zkunlockifs FILE   the plaintext on stdout
// Exit 0 on success. Like the real tools they need zkifc stopped. How a real tool reports a failure
// is not documented, so zkluks never reads a reason from a tool's stderr: by default the simulator
// prints one readable line `<tool>: <reason>: <explanation>` (for people) and exits 1, and
// ZKLUKS_SIM_OPAQUE makes it fail the way an unknown real tool might (src/device/sim-opaque.ts).
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-write.ts';
import { UsageError } from '../errors.ts';
import { failureOf } from './failures.ts';
import { checkRandomCount } from './port.ts';
import { simToolFailure as fail, simOpaqueMode, type ToolResult } from './sim-opaque.ts';
import { simSeal, simSession, simUnseal } from './sim.ts';

export {
  SIM_OPAQUE_ENV,
  SIM_OPAQUE_MODES,
  simOpaqueMode,
  type SimOpaqueMode,
  type ToolResult,
} from './sim-opaque.ts';

export const SIM_TOOLS = ['zkgrifs', 'zklockifs', 'zkunlockifs'] as const;
export type SimToolName = (typeof SIM_TOOLS)[number];

async function readInput(file: string | undefined): Promise<Buffer> {
  if (file === undefined) throw new UsageError('usage: TOOL FILE');
  try {
    return await readFile(file);
  } catch (error) {
    throw new UsageError(
      `cannot read '${file}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

/** Run one tool against the simulator host in `stateDir`. Never throws for a module failure. */
export async function runSimTool(
  tool: string,
  args: readonly string[],
  stateDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ToolResult> {
  const mode = simOpaqueMode(env);
  if (!(SIM_TOOLS as readonly string[]).includes(tool)) {
    return fail(tool, 'tool-missing', `unknown tool; the simulator provides ${SIM_TOOLS.join(', ')}`, mode);
  }
  try {
    if (tool === 'zkgrifs') {
      if (args.length !== 1 || !/^\d+$/.test(args[0] ?? '')) throw new UsageError('usage: zkgrifs N');
      const n = Number(args[0]);
      checkRandomCount(n);
      simSession(stateDir, 'read random bytes from the Zymkey', 'tool');
      return { exitCode: 0, stdout: randomBytes(n), stderr: '' };
    }
    const input = await readInput(args[0]);
    if (tool === 'zklockifs') {
      const s = simSession(stateDir, 'seal data with the Zymkey', 'tool');
      return { exitCode: 0, stdout: simSeal(s, input), stderr: '' };
    }
    const action = 'unseal data with the Zymkey';
    return {
      exitCode: 0,
      stdout: simUnseal(simSession(stateDir, action, 'tool'), input, action),
      stderr: '',
    };
  } catch (error) {
    const { reason, explanation } = failureOf(error);
    return fail(tool, reason, explanation, mode);
  }
}

/** The POSIX sh wrapper that makes `tool` a command running this bundle's simulator. */
export function simToolWrapper(tool: SimToolName, node: string, bundle: string): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return [
    '#!/bin/sh',
    `# zkluks simulator: ${tool}, a stand-in for Zymbit's zksaapps tool.`,
    '# The simulator state directory comes from ZKLUKS_SIM_STATE; ZKLUKS_SIM_OPAQUE makes failures opaque.',
    `exec ${q(node)} ${q(bundle)} sim tool ${tool} "$@"`,
    '',
  ].join('\n');
}

/** Write the three wrappers (mode 0755) into `dir`; returns their paths. */
export function installSimTools(dir: string, node: string, bundle: string): string[] {
  mkdirSync(dir, { recursive: true });
  return SIM_TOOLS.map((tool) => {
    const path = join(dir, tool);
    writeFileAtomic(path, simToolWrapper(tool, node, bundle), 0o755);
    return path;
  });
}

/** True when `path` is a wrapper written by installSimTools (tests and doctor use it). */
export function isSimToolWrapper(path: string): boolean {
  try {
    return readFileSync(path, 'utf8').includes('# zkluks simulator:');
  } catch {
    return false;
  }
}
