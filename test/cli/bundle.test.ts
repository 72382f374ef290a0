// dist/zkluks.mjs is the artifact an admin copies to a Pi: it must run alone, with no node_modules
// and no scripts/ beside it.
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { bundle, nodeBin, repoRoot } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'zkluks-bundle-'));
const alone = join(dir, 'zkluks.mjs');
copyFileSync(bundle, alone);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = (args: string[]) => execa(nodeBin, [alone, ...args], { cwd: dir, reject: false });

describe('the single-file bundle', () => {
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
    expect(readFileSync(alone, 'utf8')).toContain(JSON.stringify(marker).slice(1, -1));
  });
});
