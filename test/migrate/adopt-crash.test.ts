// `zkluks adopt --remove-old` SIGKILLed at external-command boundaries: wrappers on PATH count every
// cryptsetup, chroot (the rebuild), lsinitramfs and ldd call and kill zkluks right before call N.
// After each kill the staged Pi must boot by Zymbit's path or zkluks's (crypttab, image, keys
// consistent), and a re-run of adopt must finish the job. By default every boundary just before and
// just after a command that changes something is tried; ZKLUKS_CRASH_ALL=1 tries every boundary.
// On a production SCM, zkluks's own file operations are boundaries too (fs-boundaries.mjs): every one
// on the boot partition, the module and adopt's list of files taken out of the manifest; after each
// kill the SCM's verification at the next power-on must pass, so it never destroys the keys.
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { simBindLock } from '../../src/device/sim-control.ts';
import {
  simScmAddOrUpdate,
  simScmBootDir,
  simScmManifest,
  simSupervisedBoot,
} from '../../src/device/sim-scm.ts';
import { createRunner } from '../../src/exec.ts';
import { MANIFEST_OUT } from '../../src/migrate/adopt/layout.ts';
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
let scmTemplate: ZymbitPi | undefined;
afterAll(() => {
  template?.cleanup();
  scmTemplate?.cleanup();
});

/** The SCM's manifest, or why it cannot be read (a destroyed module answers nothing). */
function manifestOf(pi: ZymbitPi): string[] {
  try {
    return simScmManifest(pi.simState);
  } catch (error) {
    return [`(unreadable: ${(error as Error).message.split(':')[0] ?? ''})`];
  }
}

const PRELOAD = fileURLToPath(new URL('../harness/fs-boundaries.mjs', import.meta.url));
/** The Supervised Boot steps' boundaries: the boot partition, the module, the list of files taken out. */
const SCM_BOUNDARY = /boot\/firmware\/|\.zkluks-sim-modules\/|supervised-boot/;

/** A Pi as Zymbit's script leaves it on a production SCM whose manifest holds its boot files. */
async function buildScmPi(): Promise<ZymbitPi> {
  const pi = await buildZymbitPi({ model: 'SCM' });
  simScmBootDir(pi.simState, join(pi.root, 'boot/firmware'));
  for (const f of ['cmdline.txt', 'config.txt', 'initrd.img', 'kernel8.img'])
    simScmAddOrUpdate(pi.simState, f);
  return pi;
}

/** A copy of the SCM Pi, supervising its own boot partition, its binding locked there (to the copy's card). */
async function scmClone(template: ZymbitPi): Promise<ZymbitPi> {
  const pi = await template.clone();
  simScmBootDir(pi.simState, join(pi.root, 'boot/firmware'));
  simBindLock(pi.simState);
  return pi;
}

/** adopt with zkluks's own file operations counted in `log`, SIGKILLed right after boundary `at`. */
function scmAdoptRun(pi: ZymbitPi, log: string, at: number, keyFile: string) {
  rmSync(log, { force: true });
  return pi.zkluks(['adopt', '--root', pi.root, '--yes', '--recovery-key-file', keyFile], undefined, {
    NODE_OPTIONS: `--import=${PRELOAD}`,
    ZKLUKS_SHIM_TREE: pi.dir,
    ZKLUKS_SHIM_LOG: log,
    ZKLUKS_SHIM_AT: String(at),
    ZKLUKS_SHIM_MODE: 'kill-after',
  });
}

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

  it('on a production SCM every SIGKILL leaves a boot the SCM verifies, and a re-run adds the image the firmware loads', async () => {
    scmTemplate = await buildScmPi();
    const clean = await scmClone(scmTemplate);
    const cleanLog = `${clean.dir}.fs.log`; // outside the tree the preload watches
    const full = await scmAdoptRun(clean, cleanLog, 0, join(clean.dir, 'rk'));
    expect(full.exitCode, full.stderr).toBe(0);
    const log = readFileSync(cleanLog, 'utf8').trim().split('\n');
    clean.cleanup();
    rmSync(cleanLog, { force: true });
    const points = log.flatMap((line, i) => (SCM_BOUNDARY.test(line) ? [i + 1] : []));
    expect(points.length).toBeGreaterThan(0);
    let survived = 0;
    const failures: string[] = [];
    for (const at of points) {
      const pi = await scmClone(scmTemplate);
      try {
        const killed = await scmAdoptRun(pi, `${pi.dir}.fs.log`, at, join(pi.dir, 'rk1'));
        expect(killed.exitCode, `kill after ${at} (${log[at - 1]}) did not kill`).not.toBe(0);
        const first = readKey(join(pi.dir, 'rk1'));
        const boot = await bootPaths(pi, first);
        // The next power-on: the SCM verifies its manifest before the Pi boots (production: a
        // failure destroys every key).
        const power = simSupervisedBoot(pi.simState);
        const rerun = await pi.zkluks([
          'adopt',
          '--root',
          pi.root,
          '--yes',
          '--recovery-key-file',
          join(pi.dir, 'rk2'),
        ]);
        const recovery = readKey(join(pi.dir, 'rk2')) ?? first;
        const after = simSupervisedBoot(pi.simState);
        const done =
          rerun.exitCode === 0 &&
          after.result === 'verified' &&
          manifestOf(pi).includes('initramfs8') &&
          manifestOf(pi).includes('config.txt') &&
          !pi.exists(MANIFEST_OUT) &&
          (await bootPaths(pi, recovery)).new;
        if ((boot.old || boot.new) && power.result === 'verified' && done) survived++;
        else
          failures.push(
            `kill after ${at} (${log[at - 1]}): boots old=${boot.old} new=${boot.new}; power-on ${power.result} ${JSON.stringify(power.failed)}; re-run exit ${rerun.exitCode} ${rerun.stderr.trim().split('\n')[0] ?? ''}, then ${after.result}, manifest ${manifestOf(pi).join(' ')}`,
          );
      } finally {
        pi.cleanup();
        rmSync(`${pi.dir}.fs.log`, { force: true });
      }
    }
    process.stdout.write(
      `adopt crash points (SCM): ${points.length} tried, ${survived} survived (of ${log.length} file boundaries)\n`,
    );
    expect(failures).toEqual([]);
    expect(survived).toBe(points.length);
  }, 3_600_000);
});
