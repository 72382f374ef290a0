// `zkluks --help` is the one help that names no command, so the bundle carries it: scripts/bundle.mjs
// asks yargs for it at build time, at the widths a terminal most often gives (and the width used when
// stdout is no terminal), and the entry prints it without loading yargs. Any other width, and the help
// of every command, comes from yargs at run time. test/cli/top-help.test.ts holds the two to one text.
declare const ZKLUKS_TOP_HELP: Record<string, string> | undefined;

/** The widths the bundle carries `zkluks --help` for. */
export const PREBUILT_HELP_WIDTHS = [80, 100, 110] as const;

/** The width help is wrapped to: the terminal's, at most 110; 100 when stdout is no terminal. */
export function helpWidth(columns: number | undefined = process.stdout.columns): number {
  return Math.min(110, columns ?? 100);
}

/** The help text the bundle carries for `args`, when `args` is just `--help` and `width` is one it has. */
export function prebuiltTopHelp(args: readonly string[], width: number = helpWidth()): string | undefined {
  if (typeof ZKLUKS_TOP_HELP === 'undefined' || args.length !== 1 || args[0] !== '--help') return undefined;
  return ZKLUKS_TOP_HELP[String(width)];
}
