// The command line the admin typed, for the hints that repeat it (confirm with --yes, run it again):
// every option that matters is carried as it was given, so a hint followed literally never does less.
import { shellWord } from '../hint.ts';

/** The command line as the admin gave it, with `extra` words added: a hint that repeats it. */
export function givenCommandWith(...extra: string[]): string {
  return givenCommandWithout([], ...extra);
}

/**
 * The command line as the admin gave it without the options `drop` names (kebab-case, in any of
 * their forms: --yes, --no-yes, --yes=true; a name ending in '=' takes its value with it: 'device='),
 * then `extra`: every other option (VOLUME, --escrow, --root, --backend…) stays as it was typed.
 */
export function givenCommandWithout(drop: readonly string[], ...extra: string[]): string {
  const words: string[] = [];
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    const hit = drop.find((d) => {
      const name = d.replace(/=$/, '');
      return a === `--${name}` || a === `--no-${name}` || a.startsWith(`--${name}=`);
    });
    if (hit === undefined) words.push(a);
    else if (hit.endsWith('=') && !a.includes('=')) i++;
  }
  return ['zkluks', ...words.map(shellWord), ...extra].join(' ');
}

/**
 * The options named in `names` (kebab-case) exactly as the admin gave them, value included (`--backend
 * sim`, `--sim-state=/x`): for a hint that names another command on the same module or tree.
 */
export function givenOptions(names: readonly string[]): string[] {
  const words: string[] = [];
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    if (a === '--') break;
    const name = names.find((n) => a === `--${n}` || a.startsWith(`--${n}=`));
    if (name === undefined) continue;
    words.push(shellWord(a));
    if (!a.includes('=') && i + 1 < args.length) words.push(shellWord(args[++i] ?? ''));
  }
  return words;
}
