// Every `zkluks …` command line written in the source (hints, messages, comments) is one the CLI's
// own command definitions accept: a flag that does not exist, or a command without its VOLUME,
// cannot be named. Interpolations stand in for what they print (a path).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandLineProblem, commandTree } from '../../src/cli/command-spec.ts';
import { repoRoot } from '../helpers/cli.ts';
import { commandsOf } from './follow.ts';

/**
 * `${…}` (with nested braces and strings) replaced by what it prints: `zkluksCommand(root, 'w', …)`
 * with literal words by the command line it builds (the words, then --root), anything else by a path.
 */
function interpolated(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    if (text.startsWith('${', i)) {
      const from = i + 2;
      let depth = 0;
      for (; i < text.length; i++) {
        if (text[i] === '{') depth++;
        else if (text[i] === '}' && --depth === 0) break;
      }
      const call = /^zkluksCommand\([^,'()]+((?:,\s*'[^']*')+)\)$/.exec(text.slice(from, i).trim());
      const words = call ? [...(call[1] ?? '').matchAll(/'([^']*)'/g)].map((m) => m[1]) : [];
      out += call ? ['zkluks', ...words, '--root', '/mnt'].join(' ') : '/dev/sda2';
    } else out += text[i];
  }
  return out;
}

/** The contents of the string literals on one line of source. */
function literals(line: string): string[] {
  const found: string[] = [];
  const text = interpolated(line);
  for (let i = 0; i < text.length; i++) {
    const q = text[i];
    if (q !== "'" && q !== '"' && q !== '`') continue;
    let j = i + 1;
    while (j < text.length && text[j] !== q) j += text[j] === '\\' ? 2 : 1;
    found.push(text.slice(i + 1, j));
    i = j;
  }
  return found;
}

const PROSE = new Set(['again', 'once', 'it', 'the', 'to', 'first', 'by', 'now']);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

describe('zkluks command lines in the source', () => {
  it('all parse against the command definitions', async () => {
    const names = new Set((await commandTree()).subcommands.map((s) => s.path[0]));
    const problems: string[] = [];
    let checked = 0;
    for (const file of sources(join(repoRoot, 'src'))) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          // Comments describe; strings are what the user reads.
          if (!line.includes('zkluks ') || /^\s*(\/\/|\*|\/\*)/.test(line)) return;
          for (const [program, ...args] of literals(line).flatMap((l) => commandsOf(l))) {
            if (program !== 'zkluks' || !names.has(args[0])) continue;
            checked++;
            // Prose run on after a command ("then zkluks adopt again") parses as its VOLUME.
            const prose = args.find((a) => PROSE.has(a));
            problems.push(
              commandLineProblem(args).then((p) =>
                p || prose
                  ? `${file.slice(repoRoot.length)}:${i + 1}: ${p ?? `'zkluks ${args.join(' ')}' takes the word '${prose}' for an argument`}`
                  : '',
              ) as never,
            );
          }
        });
    }
    const found = (await Promise.all(problems as unknown as Promise<string>[])).filter(Boolean);
    expect(checked).toBeGreaterThan(20);
    expect(found).toEqual([]);
  });
});
