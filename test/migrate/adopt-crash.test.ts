// `zkluks adopt --remove-old` SIGKILLed at external-command boundaries: wrappers on PATH count every
// cryptsetup, chroot (the rebuild), lsinitramfs and ldd call and kill zkluks right before call N.
// After each kill the staged Pi must boot by Zymbit's path or zkluks's (crypttab, image, keys
// consistent), and a re-run of adopt must finish the job. By default every boundary just before and
// just after a command that changes something is tried; ZKLUKS_CRASH_ALL=1 tries every boundary.
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRunner } from '../../src/exec.ts';
import { readHeader } from '../../src/keyslot/header.ts';
import { opens } from '../helpers/luks.ts';
import { bootPaths } from './boot-paths.ts';
import { buildZymbitPi, type ZymbitPi } from './zymbit-pi.ts';

const TOOLS = ['cryptsetup', 'chroot', 'lsinitramfs', 'ldd'];
const MUTATING = /^(cryptsetup (luksAddKey|token import|config|luksKillSlot|luksHeaderRestore)|chroot)/;

/** Wrappers that count calls in `dir`, log them, and SIGKILL their parent (zkluks) at call $ZK_CRASH_AT. */
function writeShims(dir: string, pi: ZymbitPi): void {
  mkdirSync(dir, { recursive: true });
  for (const tool of TOOLS) {
    const real =
      tool === 'chroot' ? join(pi.bin, 'chroot') : `$(PATH=${process.env.PATH} command -v ${tool})`;
    writeFileSync(
      join(dir, tool),
      [
        '#!/bin/sh',
        `real=${real}`,
        'n=$(( $(cat "$ZK_CRASH_DIR/count" 2>/dev/null || echo 0) + 1 ))',
        'echo "$n" > "$ZK_CRASH_DIR/count"',
        `sub=$1; [ "$1" = token ] && sub="token $2"`,
        `echo "$n ${tool} $sub" >> "$ZK_CRASH_DIR/log"`,
        'if [ "$n" = "${ZK_CRASH_AT:-0}" ]; then kill -KILL "$PPID"; exit 137; fi',
        'exec "$real" "$@"',
        '',
      ].join('\n'),
    );
    chmodSync(join(dir, tool), 0o755);
  }
}

function shimEnv(pi: ZymbitPi, dir: string, at: number): Record<string, string> {
  return { PATH: `${join(dir, 'shims')}:${pi.env.PATH}`, ZK_CRASH_DIR: dir, ZK_CRASH_AT: String(at) };
}

async function adoptRun(pi: ZymbitPi, dir: string, at: number, keyFile: string) {
  rmSync(join(dir, 'count'), { force: true });
  return pi.zkluks(
    ['adopt', '--root', pi.root, '--yes', '--remove-old', '--recovery-key-file', keyFile],
    undefined,
    shimEnv(pi, dir, at),
  );
}

function readKey(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

let template: ZymbitPi | undefined;
afterAll(() => template?.cleanup());

describe('adopt crash points', () => {
  it('every SIGKILL leaves a Pi that boots by the old path or the new one, and a re-run completes', async () => {
    template = await buildZymbitPi();
    // A clean run, counted, to learn the boundaries.
    const clean = await template.clone();
    const cleanDir = join(clean.dir, 'crash');
    writeShims(join(cleanDir, 'shims'), clean);
    const full = await adoptRun(clean, cleanDir, 0, join(clean.dir, 'rk'));
    expect(full.exitCode, full.stderr).toBe(0);
    const log = readFileSync(join(cleanDir, 'log'), 'utf8').trim().split('\n');
    clean.cleanup();
    const total = log.length;
    const all = process.env.ZKLUKS_CRASH_ALL === '1';
    const points = new Set<number>();
    log.forEach((line, i) => {
      const n = i + 1;
      const what = line.split(' ').slice(1).join(' ');
      if (all || MUTATING.test(what)) {
        points.add(n);
        if (n + 1 <= total) points.add(n + 1);
      }
    });
    let survived = 0;
    const failures: string[] = [];
    for (const at of [...points].sort((a, b) => a - b)) {
      const pi = await template.clone();
      const dir = join(pi.dir, 'crash');
      writeShims(join(dir, 'shims'), pi);
      try {
        const killed = await adoptRun(pi, dir, at, join(pi.dir, 'rk1'));
        expect(killed.exitCode, `kill at ${at} (${log[at - 1]}) did not kill`).not.toBe(0);
        const first = readKey(join(pi.dir, 'rk1'));
        const boot = await bootPaths(pi, first);
        // A re-run names a new key file: zkluks never overwrites one.
        const rerun = await adoptRun(pi, dir, 0, join(pi.dir, 'rk2'));
        const header = await readHeader(createRunner(), pi.volume);
        const recovery = readKey(join(pi.dir, 'rk2')) ?? first;
        const done =
          rerun.exitCode === 0 &&
          !pi.exists('/var/lib/zymbit/key.bin.lock') &&
          !(await opens(pi.volume, pi.key)) &&
          header.tokens.some((t) => t.type === 'zkluks-zymkey') &&
          recovery !== null &&
          (await opens(pi.volume, recovery)) &&
          (await bootPaths(pi, recovery)).new;
        if ((boot.old || boot.new) && done) survived++;
        else
          failures.push(
            `kill before call ${at} (${log[at - 1]}): boots old=${boot.old} new=${boot.new} (${boot.detail}); re-run exit ${rerun.exitCode} ${rerun.stderr.trim().split('\n')[0] ?? ''}`,
          );
      } finally {
        pi.cleanup();
      }
    }
    const tried = points.size;
    process.stdout.write(
      `adopt crash points: ${tried} tried, ${survived} survived (of ${total} boundaries)\n`,
    );
    expect(failures).toEqual([]);
    expect(survived).toBe(tried);
  }, 3_600_000);
});
