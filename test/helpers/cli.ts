// Runs the built bundle (dist/zkluks.mjs) as a user would, and returns what they would see.
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const bundle = `${repoRoot}dist/zkluks.mjs`;
/** The node that runs the bundle: ZKLUKS_TEST_NODE (e.g. Debian 12's nodejs from scripts/debian-node),
 * else the node running the tests. */
export const nodeBin = process.env.ZKLUKS_TEST_NODE || process.execPath;

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function zkluks(
  args: string[],
  options: { env?: Record<string, string>; input?: string | Buffer; cwd?: string } = {},
): Promise<CliResult> {
  const r = await execa(nodeBin, [bundle, ...args], {
    env: { NO_COLOR: '1', ...options.env },
    input: options.input,
    cwd: options.cwd,
    reject: false,
  });
  return { exitCode: r.exitCode ?? 1, stdout: r.stdout, stderr: r.stderr };
}
