// dist/ is the artifact an admin copies to a Pi: the zkluks.mjs entry and the chunks it loads on
// demand must run alone, with no node_modules and no scripts/ beside them.
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { bundle, nodeBin, repoRoot } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'zkluks-bundle-'));
const alone = join(dir, 'zkluks.mjs');
cpSync(dirname(bundle), dir, { recursive: true });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = (args: string[]) => execa(nodeBin, [alone, ...args], { cwd: dir, reject: false });

describe('the bundle directory', () => {
  it('prints help from a directory with no node_modules', async () => {
    const r = await run(['--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('initramfs');
  });

  it('runs the simulator end to end on its own', async () => {
    const state = join(dir, 'sim');
    expect((await run(['sim', 'init', '--sim-state', state])).exitCode).toBe(0);
    const r = await run(['device', 'random', '16', '--backend', 'sim', '--sim-state', state, '--json']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/[0-9a-f]{32}/);
  });

  it('carries the boot-script templates inside it', () => {
    const keyscript = readFileSync(join(repoRoot, 'scripts/initramfs/keyscript.sh.in'), 'utf8');
    const marker = keyscript.split('\n').find((line) => line.includes('askpass') && line.length > 20);
    expect(marker).toBeDefined();
    const text = readdirSync(dir)
      .filter((f) => f.endsWith('.mjs'))
      .map((f) => readFileSync(join(dir, f), 'utf8'))
      .join('\n');
    expect(text).toContain(JSON.stringify(marker).slice(1, -1));
  });

  it('loads no node:assert: yargs gets the two checks it uses from zkluks', () => {
    for (const f of readdirSync(dir).filter((name) => name.endsWith('.mjs'))) {
      expect(readFileSync(join(dir, f), 'utf8'), f).not.toMatch(/from ["'](?:node:)?assert["']/);
    }
  });

  it('answers --version and --help without loading any command', async () => {
    const version = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version;
    expect((await run(['--version'])).stdout).toBe(version);
    // A command module that cannot load shows up only when that command runs.
    const list = readdirSync(dir).find((f) => /^list-.*\.mjs$/.test(f));
    expect(list).toBeDefined();
    const broken = mkdtempSync(join(tmpdir(), 'zkluks-bundle-broken-'));
    try {
      cpSync(dir, broken, { recursive: true });
      rmSync(join(broken, list as string));
      const exec = (args: string[]) =>
        execa(process.execPath, [join(broken, 'zkluks.mjs'), ...args], { cwd: broken, reject: false });
      const help = await exec(['--help']);
      expect(help.exitCode, help.stderr).toBe(0);
      for (const c of [
        'device',
        'sim',
        'doctor',
        'initramfs',
        'enroll',
        'list',
        'verify',
        'rotate',
        'remove',
        'recovery',
      ]) {
        expect(help.stdout).toContain(`zkluks ${c} `);
      }
      expect((await exec(['--version'])).stdout).toBe(version);
      expect((await exec(['list', '/nonexistent'])).exitCode).not.toBe(0);
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
  });

  it('prints the top-level --help without loading yargs', async () => {
    const main = readdirSync(dir).find((f) => /^main-.*\.mjs$/.test(f)) as string;
    const broken = mkdtempSync(join(tmpdir(), 'zkluks-bundle-noyargs-'));
    try {
      cpSync(dir, broken, { recursive: true });
      rmSync(join(broken, main));
      const help = await execa(process.execPath, [join(broken, 'zkluks.mjs'), '--help'], { reject: false });
      expect(help.exitCode, help.stderr).toBe(0);
      expect(help.stdout).toBe((await run(['--help'])).stdout);
      // Everything else needs the parser.
      expect(
        (await execa(process.execPath, [join(broken, 'zkluks.mjs'), 'list', '--help'], { reject: false }))
          .exitCode,
      ).not.toBe(0);
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
  });

  it('loads for `list` only what reading a header needs: no process library, no device, no keyslot change', () => {
    // The modules a chunk pulls in as it loads (its static imports, followed through the chunks).
    const loaded = (start: string): string => {
      const seen = new Set<string>();
      const visit = (file: string) => {
        if (seen.has(file)) return;
        seen.add(file);
        const text = readFileSync(join(dir, file), 'utf8');
        for (const m of text.matchAll(/^(?:import|export)\s[^;]*?from\s+"\.\/([^"]+)"/gms)) visit(m[1]!);
      };
      visit(start);
      return [...seen].map((f) => readFileSync(join(dir, f), 'utf8')).join('\n');
    };
    const list = readdirSync(dir).find((f) => /^list-.*\.mjs$/.test(f)) as string;
    const modules = [...loaded(list).matchAll(/^\/\/ (\S+)$/gm)].map((m) => m[1]!);
    expect(modules).toContain('src/keyslot/header.ts');
    expect(modules).toContain('src/exec.ts');
    expect(modules.filter((m) => m.startsWith('node_modules/'))).toEqual([]);
    expect(modules.filter((m) => /^src\/(device|initramfs|doctor|migrate)\//.test(m))).toEqual([]);
    expect(modules).not.toContain('src/cli/keyslot-command.ts');
  });
});
