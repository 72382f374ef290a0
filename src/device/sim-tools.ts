// The simulator's stand-ins for Zymbit's standalone tools, with the same contract:
//   zkgrifs N          N random bytes on stdout
//   zklockifs FILE     the sealed bytes of FILE's content on stdout
//   zkunlockifs FILE   the plaintext on stdout
// Exit 0 on success; on failure exit 1, nothing on stdout, one stderr line
// `<tool>: <reason>: <explanation>` with a ZymkeyFailure reason.
import { mkdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-write.ts';
import type { ZymkeyFailure } from '../errors.ts';
import { failureOf } from './failures.ts';
import { SimZymkey } from './sim.ts';

export const SIM_TOOLS = ['zkgrifs', 'zklockifs', 'zkunlockifs'] as const;
export type SimToolName = (typeof SIM_TOOLS)[number];

export interface ToolResult {
  exitCode: 0 | 1;
  stdout: Buffer;
  stderr: string;
}

function fail(tool: string, reason: ZymkeyFailure, explanation: string): ToolResult {
  return {
    exitCode: 1,
    stdout: Buffer.alloc(0),
    stderr: `${tool}: ${reason}: ${explanation.replace(/\s+/g, ' ')}\n`,
  };
}

async function readInput(tool: string, file: string | undefined): Promise<Buffer | ToolResult> {
  if (file === undefined) return fail(tool, 'unknown', `usage: ${tool} FILE`);
  try {
    return await readFile(file);
  } catch (error) {
    return fail(
      tool,
      'unknown',
      `cannot read '${file}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

/** Run one tool against the simulator in `stateDir`. Never throws for a module failure. */
export async function runSimTool(
  tool: string,
  args: readonly string[],
  stateDir: string,
): Promise<ToolResult> {
  if (!(SIM_TOOLS as readonly string[]).includes(tool)) {
    return fail(tool, 'tool-missing', `unknown tool; the simulator provides ${SIM_TOOLS.join(', ')}`);
  }
  const zk = new SimZymkey(stateDir);
  try {
    if (tool === 'zkgrifs') {
      const n = Number(args[0]);
      if (args.length !== 1 || !/^\d+$/.test(args[0] ?? '')) return fail(tool, 'unknown', 'usage: zkgrifs N');
      return { exitCode: 0, stdout: await zk.randomBytes(n), stderr: '' };
    }
    const input = await readInput(tool, args[0]);
    if (!Buffer.isBuffer(input)) return input;
    const stdout = tool === 'zklockifs' ? await zk.seal(input) : await zk.unseal(input);
    return { exitCode: 0, stdout, stderr: '' };
  } catch (error) {
    const { reason, explanation } = failureOf(error);
    return fail(tool, reason, explanation);
  }
}

/** The POSIX sh wrapper that makes `tool` a command running this bundle's simulator. */
export function simToolWrapper(tool: SimToolName, node: string, bundle: string): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return [
    '#!/bin/sh',
    `# zkluks simulator: ${tool} with the contract of Zymbit's zksaapps tool.`,
    '# The simulator state directory comes from ZKLUKS_SIM_STATE.',
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
