// The simulator's stand-ins for Zymbit's standalone tools:
//   zkgrifs N          N random bytes on stdout
//   zklockifs FILE     the sealed bytes of FILE's content on stdout
//   zkunlockifs FILE   the plaintext on stdout
// Exit 0 on success. Like the real tools they need zkifc stopped. How a real tool reports a failure
// is not documented, so zkluks never reads a reason from a tool's stderr: by default the simulator
// prints one readable line `<tool>: <reason>: <explanation>` (for people) and exits 1, and
// ZKLUKS_SIM_OPAQUE makes it fail the way an unknown real tool might:
//   plain   exit 1, a line of plain text with no reason code
//   exit2   exit 2, a line of plain text
//   silent  exit 1, nothing on stderr
//   signal  killed by SIGKILL
//   hang    never answers (until killed)
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-write.ts';
import type { ZymkeyFailure } from '../errors.ts';
import { UsageError } from '../errors.ts';
import { failureOf } from './failures.ts';
import { checkRandomCount } from './port.ts';
import { simSeal, simSession, simUnseal } from './sim.ts';

export const SIM_TOOLS = ['zkgrifs', 'zklockifs', 'zkunlockifs'] as const;
export type SimToolName = (typeof SIM_TOOLS)[number];

export const SIM_OPAQUE_ENV = 'ZKLUKS_SIM_OPAQUE';
export const SIM_OPAQUE_MODES = ['plain', 'exit2', 'silent', 'signal', 'hang'] as const;
export type SimOpaqueMode = (typeof SIM_OPAQUE_MODES)[number];

export interface ToolResult {
  exitCode: number;
  stdout: Buffer;
  stderr: string;
  /** The tool dies of this signal instead of exiting. */
  signal?: 'SIGKILL';
  /** The tool never answers. */
  hang?: boolean;
}

/** The opaque mode from the environment; a value that is not a mode is a usage error. */
export function simOpaqueMode(env: NodeJS.ProcessEnv = process.env): SimOpaqueMode | null {
  const v = env[SIM_OPAQUE_ENV];
  if (v === undefined || v === '') return null;
  if (!(SIM_OPAQUE_MODES as readonly string[]).includes(v)) {
    throw new UsageError(
      `Failed to read ${SIM_OPAQUE_ENV}: '${v}' is not one of ${SIM_OPAQUE_MODES.join(', ')}`,
      {
        hint: `unset ${SIM_OPAQUE_ENV}, or set it to one of ${SIM_OPAQUE_MODES.join(', ')}`,
      },
    );
  }
  return v as SimOpaqueMode;
}

function fail(
  tool: string,
  reason: ZymkeyFailure,
  explanation: string,
  mode: SimOpaqueMode | null,
): ToolResult {
  const none = Buffer.alloc(0);
  switch (mode) {
    case 'plain':
      return { exitCode: 1, stdout: none, stderr: `${tool} failed\n` };
    case 'exit2':
      return { exitCode: 2, stdout: none, stderr: `Error: operation returned -5\n` };
    case 'silent':
      return { exitCode: 1, stdout: none, stderr: '' };
    case 'signal':
      return { exitCode: 137, stdout: none, stderr: '', signal: 'SIGKILL' };
    case 'hang':
      return { exitCode: 1, stdout: none, stderr: '', hang: true };
    default:
      return {
        exitCode: 1,
        stdout: none,
        stderr: `${tool}: ${reason}: ${explanation.replace(/\s+/g, ' ')}\n`,
      };
  }
}

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
