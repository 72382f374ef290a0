// The man pages and bash completion come from the same yargs definitions as --help: every command
// and every option --help shows is in them, the pages render without groff warnings, and bash
// completes commands, subcommands, options and option values.
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bashCompletion, commandDoc, helpText, manPages, type CommandDoc } from '../../packaging/docs.ts';

const dir = mkdtempSync(join(tmpdir(), 'zkluks-docs-'));
let root: CommandDoc;
let pages: Map<string, string>;
let completion: string;

function all(doc: CommandDoc): CommandDoc[] {
  return [doc, ...doc.subcommands.flatMap(all)];
}

beforeAll(async () => {
  root = await commandDoc();
  pages = manPages(root, '9.9.9', '2026-01-02');
  completion = bashCompletion(root);
  writeFileSync(join(dir, 'zkluks.bash'), completion);
  for (const [name, text] of pages) writeFileSync(join(dir, name), text);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What bash offers after typing `words` (the last one being completed). */
async function complete(...words: string[]): Promise<string[]> {
  const r = await execa('bash', [
    '-c',
    'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _zkluks; printf "%s\\n" "${COMPREPLY[@]}"',
    'bash',
    join(dir, 'zkluks.bash'),
    'zkluks',
    ...words,
  ]);
  return r.stdout.split('\n').filter(Boolean);
}

/** A man page as man(1) shows it, with groff's warnings on stderr. */
async function render(name: string) {
  return await execa('man', ['--warnings', '-E', 'UTF-8', '-l', join(dir, name)], {
    env: { MANWIDTH: '200', LC_ALL: 'C.UTF-8' },
  });
}

describe('man pages and completion', () => {
  it('walk every command and subcommand that --help lists', () => {
    const paths = all(root).map((c) => c.path.join(' '));
    for (const p of [
      '',
      'enroll',
      'doctor',
      'initramfs install',
      'initramfs check',
      'initramfs remove',
      'recovery add',
      'sim init',
    ]) {
      expect(paths).toContain(p);
    }
    const top = root.subcommands.map((c) => c.path[0]);
    expect(top.length).toBeGreaterThanOrEqual(10);
    expect([...pages.keys()].sort()).toEqual(['zkluks.1', ...top.map((c) => `zkluks-${c}.1`)].sort());
  });

  it('a man page per command holds every option and positional its --help shows', async () => {
    const rendered = new Map<string, string>();
    for (const name of pages.keys()) rendered.set(name, (await render(name)).stdout);
    for (const cmd of all(root).filter((c) => c.path.length > 0)) {
      const page = rendered.get(`zkluks-${cmd.path[0]}.1`)!;
      const help = await helpText(cmd.path);
      expect(page).toContain(cmd.usage);
      for (const flag of help.match(/^\s+(--[\w-]+)/gm) ?? []) {
        const global = root.options.some((o) => o.flags.includes(flag.trim()));
        // Global options are described once, in zkluks(1), and named in each page.
        expect(global ? rendered.get('zkluks.1') : page, `${cmd.usage}: ${flag}`).toContain(flag.trim());
      }
      for (const p of cmd.positionals) expect(page).toContain(p.describe.split(' ').slice(0, 4).join(' '));
    }
  });

  it('render without groff warnings', async () => {
    for (const name of pages.keys()) {
      const r = await render(name);
      expect(r.stderr, name).toBe('');
      expect(r.stdout).toMatch(/^NAME$/m);
    }
  });

  it('bash completes commands, subcommands, options and option values', async () => {
    expect(await complete('')).toEqual(root.subcommands.map((c) => c.path[0]));
    expect(await complete('init')).toEqual(['initramfs']);
    expect(await complete('initramfs', '')).toEqual(['install', 'check', 'remove']);
    expect(await complete('initramfs', 'install', '--ti')).toEqual(['--timeout']);
    expect(await complete('recovery', 'add', '/dev/mmcblk0p2', '--esc')).toEqual(['--escrow']);
    expect(await complete('--backend', '')).toEqual(['zymbit', 'sim']);
    expect(await complete('sim', 'init', '--model', 'HSM')).toEqual(['HSM4', 'HSM6', 'HSM60']);
    // A volume argument completes as a file name.
    expect(await complete('enroll', join(dir, 'zkluks.b'))).toEqual([join(dir, 'zkluks.bash')]);
  });

  it('the completion script passes shellcheck', async () => {
    const r = await execa('shellcheck', ['-s', 'bash', join(dir, 'zkluks.bash')], { reject: false });
    expect(r.stdout).toBe('');
    expect(r.exitCode).toBe(0);
  });
});
