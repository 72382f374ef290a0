// The simulator's opaque mode. How Zymbit's tools report a failure is not documented, so with
// ZKLUKS_SIM_OPAQUE set the simulated tools (and the sim backend's crypto calls, which stand for them)
// fail the way an unknown real tool might:
//   plain   exit 1, a line of plain text with no reason code
//   exit2   exit 2, a line of plain text
//   silent  exit 1, nothing on stderr
//   signal  killed by SIGKILL
//   hang    never answers (until killed)
import type { ZymkeyFailure } from '../errors.ts';
import { UsageError } from '../errors.ts';

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

/** A failed tool run as the tool would end it: readable by default, opaque in an opaque mode. */
export function simToolFailure(
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
