// `zkluks --help` comes from the text the bundle carries (src/cli/top-help.ts) when the terminal's
// width is one it has; it must be what yargs itself prints at that width, byte for byte.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { helpWidth, PREBUILT_HELP_WIDTHS, prebuiltTopHelp } from '../../src/cli/top-help.ts';
import { bundle, nodeBin } from '../helpers/cli.ts';

const dist = dirname(bundle);
const mainChunk = join(dist, readdirSync(dist).find((f) => /^main-.*\.mjs$/.test(f)) as string);
/** The bundle's yargs path, whatever the entry would answer itself. */
const viaYargs = `import(${JSON.stringify(mainChunk)}).then(async (m) => { process.exitCode = await m.main(['--help']); })`;

/** Run `node args…` with stdout on a terminal `columns` wide (none: a pipe); its stdout. */
async function stdoutAt(columns: number | null, args: string[]): Promise<string> {
  if (columns === null) return (await execa(nodeBin, args, { stripFinalNewline: false })).stdout;
  const line = [nodeBin, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = await execa('script', ['-qec', `stty cols ${columns} rows 50; exec ${line}`, '/dev/null'], {
    stripFinalNewline: false,
  });
  return r.stdout.replace(/\r\n/g, '\n');
}

describe('zkluks --help', () => {
  it('is answered from the bundle only for exactly `--help` at a width it carries', () => {
    expect(helpWidth(undefined)).toBe(100);
    expect(helpWidth(200)).toBe(110);
    expect(helpWidth(80)).toBe(80);
    // Run from the sources (no bundle), nothing is carried: yargs answers.
    expect(prebuiltTopHelp(['--help'], 100)).toBeUndefined();
  });

  it.each([
    ['a pipe', null],
    ...PREBUILT_HELP_WIDTHS.filter((w) => w !== 100).map((w) => [`a terminal ${w} columns wide`, w] as const),
  ] as const)('prints what yargs prints, with stdout on %s', async (_where, columns) => {
    const fast = await stdoutAt(columns, [bundle, '--help']);
    const yargs = await stdoutAt(columns, ['--input-type=module', '-e', viaYargs]);
    expect(fast).toContain('Unlock a LUKS2 root filesystem');
    expect(fast).toBe(yargs);
  });

  it('does not depend on the environment the bundle was built or run in', async () => {
    const env = { ZKLUKS_BACKEND: 'sim', ZKLUKS_SIM_STATE: '/elsewhere' };
    const r = await execa(nodeBin, [bundle, '--help'], { env, stripFinalNewline: false });
    const y = await execa(nodeBin, ['--input-type=module', '-e', viaYargs], {
      env,
      stripFinalNewline: false,
    });
    expect(r.stdout).toBe(y.stdout);
    expect(r.stdout).toContain('[default: $ZKLUKS_BACKEND, else "zymbit"]');
  });
});
