// Follows a printed hint the way an admin would: picks the commands out of the hint's words, puts in
// what a user puts in for the placeholders (VOLUME, FILE, DEVICE, NAME, N, RECIPIENT/age1…), runs
// them in order, and then runs the command that failed again, which must not meet the same failure.
// Every `zkluks …` in a hint must also be a command line the CLI's own definitions accept.
import { execa } from 'execa';
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { expect } from 'vitest';
import { commandLineProblem } from '../../src/cli/command-spec.ts';
import { zkluks, type CliResult } from '../helpers/cli.ts';
import { HINT_COUNTS_DIR } from './summary.ts';

const PROGRAMS = [
  'zkluks',
  'cryptsetup',
  'mkdir',
  'ln',
  'truncate',
  'chroot',
  'update-initramfs',
  'ls',
  'lsblk',
  'blkid',
  'age-keygen',
  'e2fsck',
];

/** The hint's branch `branch` when it offers `if …: A; if …: B`, else the whole hint. */
function branchOf(hint: string, branch: number): string {
  const parts = hint.split(/(?:^|;\s*)if [^:;]*:\s*/).filter((p) => p.trim() !== '');
  return hint.includes('if ') && parts.length > 1 ? (parts[branch] ?? '') : hint;
}

/** Shell words from `text` starting at `from`, up to where the hint's prose resumes. */
function wordsFrom(text: string, from: number): { words: string[]; end: number } {
  const words: string[] = [];
  let i = from;
  while (i < text.length) {
    while (text[i] === ' ') i++;
    if (i >= text.length) break;
    const c = text[i] ?? '';
    if (c === '(' || text.startsWith('&&', i) || text.startsWith('—', i)) break;
    let word = '';
    let quoted = false;
    let last = '';
    while (i < text.length && text[i] !== ' ') {
      if (text[i] === "'") {
        // An unclosed quote runs to the end of the hint.
        const close = text.indexOf("'", i + 1) < 0 ? text.length : text.indexOf("'", i + 1);
        word += text.slice(i + 1, close);
        quoted = true;
        last = "'";
        i = close + 1;
      } else {
        last = text[i] ?? '';
        word += text[i++];
      }
    }
    if (!quoted && ['then', 'or', 'if', 'and', 'otherwise'].includes(word)) break;
    // A comma, semicolon, closing parenthesis or full stop (outside quotes) ends the command: prose goes on after it.
    const stop = /[,;)]/.test(last) || (last === '.' && word.length > 1);
    words.push(stop ? word.slice(0, -1) : word);
    if (stop) break;
  }
  return { words: words.filter((w) => w !== ''), end: i };
}

/** The commands a hint names, in order, as argument vectors. */
export function commandsOf(hint: string, branch = 0): string[][] {
  const text = branchOf(hint, branch);
  const found: string[][] = [];
  const re = new RegExp(`(^|[\\s'(:,;])(${PROGRAMS.join('|')})(?= )`, 'g');
  let consumed = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const start = m.index + (m[1] ?? '').length;
    if (start < consumed) continue;
    if (m[1] === "'") {
      // A whole command in quotes: 'zkluks rotate /dev/mmcblk0p2'.
      const close = text.indexOf("'", start);
      found.push(wordsFrom(text.slice(start, close < 0 ? undefined : close), 0).words);
      consumed = close < 0 ? text.length : close + 1;
    } else {
      const { words, end } = wordsFrom(text, start);
      found.push(words);
      consumed = end;
    }
  }
  return found;
}

export interface FollowOptions {
  /** What the user puts in for each placeholder. */
  values?: Record<string, string>;
  /** Which `if …:` branch applies to this user. */
  branch?: number;
  /** What the user types into a program that asks (cryptsetup luksAddKey's prompts). */
  input?: (argv: string[]) => string | undefined;
  env?: Record<string, string>;
  /** Words appended to a zkluks command (the staged tree has no update-initramfs: --no-update). */
  extra?: (argv: string[]) => string[];
  /** Exit codes that count as success for a command (default: 0). doctor exits 1 on any error. */
  exits?: (argv: string[]) => number[];
}

export interface Followed {
  commands: string[][];
  results: CliResult[];
}

const counts = { followed: 0, worked: 0 };

/** This file's counts, kept on disk after every hint so a failing run still adds up. */
function record(): void {
  const file = basename(expect.getState().testPath ?? 'unknown', '.test.ts');
  mkdirSync(HINT_COUNTS_DIR, { recursive: true });
  writeFileSync(join(HINT_COUNTS_DIR, `${file}.json`), JSON.stringify({ file, ...counts }));
}

/** This file's line, "hints: N followed, N worked", printed only with ZKLUKS_HINTS_DETAIL=1. */
export function printHintCounts(): void {
  if (process.env.ZKLUKS_HINTS_DETAIL === '1') {
    const file = basename(expect.getState().testPath ?? 'unknown', '.test.ts');
    console.log(`hints (${file}): ${counts.followed} followed, ${counts.worked} worked`);
  }
}

/** The `hint:` line of a command's stderr. */
export function hintOf(r: CliResult): string {
  const line = r.stderr.split('\n').find((l) => l.startsWith('hint: '));
  expect(line, `no hint in:\n${r.stderr}`).toBeDefined();
  return (line ?? '').slice('hint: '.length);
}

function substitute(word: string, values: Record<string, string>): string {
  if (word in values) return values[word] ?? word;
  if (word === 'age1…') return values.RECIPIENT ?? word;
  return word;
}

/**
 * Follow `hint`: every command it names must parse and succeed; then `again` (the command that
 * failed, run once more) must not end in the same failure. Returns what ran.
 */
export async function follow(
  hint: string,
  options: FollowOptions,
  again?: { run: () => Promise<CliResult>; failure: CliResult },
): Promise<Followed> {
  counts.followed++;
  record();
  const values = options.values ?? {};
  const commands = commandsOf(hint, options.branch).map((c) => c.map((w) => substitute(w, values)));
  expect(commands.length, `no command in hint: ${hint}`).toBeGreaterThan(0);
  const results: CliResult[] = [];
  for (const argv of commands) {
    const [program = '', ...args] = argv;
    const input = options.input?.(argv);
    let r: CliResult;
    if (program === 'zkluks') {
      expect(
        await commandLineProblem(args),
        `hint names a command the CLI rejects: ${argv.join(' ')}`,
      ).toBeNull();
      r = await zkluks([...args, ...(options.extra?.(argv) ?? [])], { env: options.env, input });
    } else {
      const e = await execa(program, args, { input, reject: false, env: options.env });
      r = { exitCode: e.exitCode ?? 1, stdout: e.stdout, stderr: e.stderr };
    }
    results.push(r);
    expect(
      options.exits?.(argv) ?? [0],
      `following '${hint}': ${argv.join(' ')} failed:\n${r.stdout}\n${r.stderr}`,
    ).toContain(r.exitCode);
  }
  if (again) {
    const r = await again.run();
    const firstLine = (x: CliResult) => x.stderr.split('\n')[0] ?? '';
    expect(
      r.exitCode === again.failure.exitCode && firstLine(r) === firstLine(again.failure),
      `after following '${hint}' the same failure came back: ${firstLine(r)}`,
    ).toBe(false);
  }
  counts.worked++;
  record();
  return { commands, results };
}
