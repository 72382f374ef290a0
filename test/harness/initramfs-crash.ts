// The crash harness's rows for `initramfs install` and `initramfs remove` (crash.test.ts runs them and
// counts them in its one tally). The system is a staged tree: /etc/crypttab a relative symlink to a
// CRLF file whose last line has no newline, a third-party hook, two kernels whose images the rebuild
// stand-in (rebuild.ts) packs. A clean run through the shim (shim.ts: every cryptsetup, chroot,
// lsinitramfs and ldd call) and fs-boundaries.mjs (every file zkluks creates, writes, renames, links
// or removes in the tree) lists the boundaries; then, on a fresh copy each time, zkluks gets SIGKILL
// before the first and after every boundary, SIGHUP before and after every tool call and after every
// file operation, each cryptsetup call is killed while it runs, and the rebuild is killed half-way
// through writing an image and between two images. After each trial:
//   - crypttab (through the same links) and every file zkluks installs are byte for byte as before or
//     as after a completed run; a SIGHUP or a killed rebuild leaves all of them, and the images, as
//     before or all as after;
//   - no file zkluks left is one mkinitramfs or run-parts would run (hooks, scripts, conf-hooks.d,
//     kernel postinst.d);
//   - every image lists, and holds the keyscript when crypttab names it; otherwise `zkluks doctor
//     --root` reports the image's missing files with the command that fixes it;
//   - the same command run again exits 0 and leaves the state of a completed run, with no temp file
//     or kept image of zkluks anywhere in the tree.
import { execa } from 'execa';
import { cp, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { BOOT_PATHS, INSTALLED_FILES } from '../../src/initramfs/boot-files.ts';
import { CRYPTTAB_ABSENT, ZKLUKS_KEYSCRIPT } from '../../src/initramfs/crypttab.ts';
import { hasFile } from '../../src/initramfs/inspect.ts';
import { makeShim, type Shim, type ShimMode } from './shim.ts';
import { writeRebuildStandins } from './rebuild.ts';

export interface InitramfsCase {
  name: string;
  /** The tree it starts from. */
  start: 'plain' | 'installed';
  args: (root: string, volume: string) => string[];
}

export const INITRAMFS_CASES: InitramfsCase[] = [
  {
    name: 'initramfs install',
    start: 'plain',
    args: (root, volume) => ['initramfs', 'install', volume, '--root', root],
  },
  { name: 'initramfs remove', start: 'installed', args: (root) => ['initramfs', 'remove', '--root', root] },
];

export const KERNELS = ['6.1.0-zk1', '6.6.0-zk2'];
const CRYPTTAB =
  '# staged system\r\nswap /dev/sdb2 /dev/urandom swap,cipher=aes-xts-plain64\r\n# last\r\ndata /dev/sdc1 none luks';
const PRELOAD = fileURLToPath(new URL('./fs-boundaries.mjs', import.meta.url));
/** Where mkinitramfs runs or sources files, and run-parts runs the kernel hooks. */
const RUN_DIRS = [
  'etc/initramfs-tools/hooks',
  'etc/initramfs-tools/scripts',
  'etc/initramfs-tools/conf-hooks.d',
  'usr/share/initramfs-tools/hooks',
  'usr/share/initramfs-tools/scripts',
  'usr/share/initramfs-tools/conf-hooks.d',
  'etc/kernel/postinst.d',
];
const WATCHED = [...INSTALLED_FILES, BOOT_PATHS.crypttabBackup, CRYPTTAB_ABSENT];
const TEMP = /\.zkluks-\d+-[0-9a-f]+\.tmp$|\.zkluks-keep$/;

export type Cli = (
  args: string[],
  extra?: Record<string, string>,
  nodeArgs?: string[],
) => Promise<{ exitCode?: number; stdout: unknown; stderr: unknown }> & { pid?: number };

export interface InitramfsHarness {
  shim: Shim;
  /** The LUKS2 image the trees' crypttab line names. */
  volume: string;
  /** A copy of the start tree of `c` in a new directory; its root. */
  copy(c: InitramfsCase): Promise<string>;
  run(
    c: InitramfsCase,
    root: string,
    mode: ShimMode,
    at: number,
    extra?: Record<string, string>,
  ): ReturnType<Cli>;
  cleanup(): Promise<void>;
}

interface TreeState {
  link: string | null;
  crypttab: string | null;
  files: Record<string, string | null>;
  /** Each kernel's image listing (sorted), or null when it is missing or does not list. */
  images: Record<string, string[] | null>;
  /** The names in /boot (what update-initramfs leaves of a killed build, `*.new`, aside). */
  boot: string[];
}

const read = (p: string) => readFile(p, 'latin1').catch(() => null);

/** The paths in an image the stand-in packed (gzip'd newc cpio); null when missing or cut short. */
async function imageFiles(path: string): Promise<string[] | null> {
  let data: Buffer;
  try {
    data = gunzipSync(await readFile(path));
  } catch {
    return null;
  }
  const names: string[] = [];
  const align = (n: number) => (n + 3) & ~3;
  for (let off = 0; off + 110 <= data.length;) {
    if (data.toString('latin1', off, off + 6) !== '070701') return null;
    const field = (i: number) => parseInt(data.toString('latin1', off + 6 + i * 8, off + 14 + i * 8), 16);
    const [fileSize, nameSize] = [field(6), field(11)];
    const name = data.toString('latin1', off + 110, off + 110 + nameSize - 1);
    if (name === 'TRAILER!!!') return names.sort();
    const rel = name.replace(/^\.\/?/, '');
    if (rel !== '') names.push(rel);
    off = align(align(off + 110 + nameSize) + fileSize);
  }
  return null;
}

async function stateOf(root: string): Promise<TreeState> {
  const link = await readlink(join(root, 'etc/crypttab')).catch(() => null);
  const files: Record<string, string | null> = {};
  for (const f of WATCHED) files[f] = await read(join(root, f));
  const images: Record<string, string[] | null> = {};
  for (const k of KERNELS) images[k] = await imageFiles(join(root, `boot/initrd.img-${k}`));
  const boot = (await readdir(join(root, 'boot'))).filter((n) => !n.endsWith('.new')).sort();
  return { link, crypttab: await read(join(root, 'etc/secure/crypttab')), files, images, boot };
}

/** Names in the directories mkinitramfs and run-parts read, recursively, relative to the root. */
async function runnable(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(join(root, dir), { withFileTypes: true }).catch(() => [])) {
      const rel = join(dir, e.name);
      if (e.isDirectory()) await walk(rel);
      else out.push(rel);
    }
  };
  for (const d of RUN_DIRS) await walk(d);
  return out.sort();
}

/** zkluks's temp files and kept images anywhere in the tree. */
async function leftovers(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(join(root, dir), { withFileTypes: true }).catch(() => [])) {
      const rel = join(dir, e.name);
      if (e.isDirectory() && rel !== 'dev') await walk(rel);
      else if (TEMP.test(e.name)) out.push(rel);
    }
  };
  await walk('');
  return out;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function describeDiff(now: TreeState, before: TreeState, after: TreeState): string {
  const parts: string[] = [];
  if (!same(now.link, before.link)) parts.push(`/etc/crypttab is no longer the link ${before.link ?? ''}`);
  if (now.crypttab !== before.crypttab && now.crypttab !== after.crypttab)
    parts.push(`crypttab is neither old nor new: ${JSON.stringify(now.crypttab)}`);
  for (const f of WATCHED) {
    if (now.files[f] !== before.files[f] && now.files[f] !== after.files[f])
      parts.push(`${f} is neither old nor new`);
  }
  return parts.join('; ');
}

/** Build the shim, the rebuild stand-in and the two start trees. */
export async function makeInitramfsHarness(opts: {
  work: string;
  volume: string;
  uuid: string;
  cli: Cli;
}): Promise<InitramfsHarness> {
  const base = await mkdtemp(join(opts.work, 'initramfs-'));
  const standins = await writeRebuildStandins(await mkdtemp(join(base, 'standin-')));
  const ldd = String((await execa('sh', ['-c', 'command -v ldd'])).stdout).trim();
  const shim = await makeShim({ ...standins, ldd });
  const standin = standins.chroot;
  const plain = join(base, 'plain', 'root');
  const file = async (path: string, content: string, mode = 0o644) => {
    await mkdir(join(plain, path, '..'), { recursive: true });
    await writeFile(join(plain, path), content, { mode });
  };
  await file('etc/secure/crypttab', CRYPTTAB);
  await symlink('secure/crypttab', join(plain, 'etc/crypttab'));
  await file('usr/sbin/zkunlockifs', '#!/bin/sh\nexit 1\n', 0o755);
  await file('var/lib/zymbit/zkenv.conf', 'ZK_GPIO_WAKE_PIN=516\n');
  await file('var/lib/zymbit/4a1b/s1_fp_salt.bin', 'test salt\n', 0o600);
  await file('etc/initramfs-tools/hooks/other', '#!/bin/sh\nexit 0\n', 0o755);
  await file('etc/initramfs-tools/initramfs.conf', 'MODULES=most\n');
  await mkdir(join(plain, 'etc/initramfs-tools/scripts/init-premount'), { recursive: true });
  await mkdir(join(plain, 'etc/initramfs-tools/conf-hooks.d'), { recursive: true });
  await mkdir(join(plain, 'etc/kernel/postinst.d'), { recursive: true });
  for (const k of KERNELS) {
    await file(`boot/vmlinuz-${k}`, 'kernel\n');
    await file(`boot/initrd.img-${k}`, '');
    await file(`usr/lib/modules/${k}/modules.dep`, '');
  }
  await mkdir(join(plain, 'dev/disk/by-uuid'), { recursive: true });
  await symlink(opts.volume, join(plain, `dev/disk/by-uuid/${opts.uuid}`));
  const built = await execa(standin, [plain, 'update-initramfs', '-u', '-k', 'all'], { reject: false });
  if (built.exitCode !== 0) throw new Error(`the stand-in failed: ${String(built.stderr)}`);
  const installed = join(base, 'installed', 'root');
  await cp(join(base, 'plain'), join(base, 'installed'), { recursive: true, verbatimSymlinks: true });
  const env = (mode: ShimMode, at: number, root: string) => ({
    ...shim.env(mode, at),
    ZKLUKS_SHIM_TREE: root,
  });
  const install = await opts.cli(
    INITRAMFS_CASES[0]?.args(installed, opts.volume) ?? [],
    env('count', 0, installed),
  );
  if (install.exitCode !== 0) throw new Error(`install failed: ${String(install.stderr)}`);
  let copies = 0;
  return {
    shim,
    volume: opts.volume,
    copy: async (c) => {
      const dir = join(base, `t${copies++}`);
      await cp(join(base, c.start === 'plain' ? 'plain' : 'installed'), dir, {
        recursive: true,
        verbatimSymlinks: true,
      });
      return join(dir, 'root');
    },
    run: (c, root, mode, at, extra = {}) =>
      opts.cli(c.args(root, opts.volume), { ...env(mode, at, root), ...extra }, ['--import', PRELOAD]),
    cleanup: async () => {
      await shim.cleanup();
      await rm(base, { recursive: true, force: true });
    },
  };
}

type Point = [ShimMode, number, string?];

/** Run every crash point of `c`; the number tried and what did not survive. */
export async function initramfsCrashPoints(
  h: InitramfsHarness,
  c: InitramfsCase,
  opts: { cli: Cli; keyFilesOf: (pid: number) => Promise<string[]> },
): Promise<{ tried: number; failures: string[] }> {
  const cleanRoot = await h.copy(c);
  const before = await stateOf(cleanRoot);
  const runBefore = await runnable(cleanRoot);
  await h.shim.reset();
  const clean = await h.run(c, cleanRoot, 'count', 0);
  if (clean.exitCode !== 0) return { tried: 0, failures: [`the clean run failed: ${String(clean.stderr)}`] };
  const calls = await h.shim.calls();
  const after = await stateOf(cleanRoot);
  const runAfter = await runnable(cleanRoot);
  await rm(join(cleanRoot, '..'), { recursive: true, force: true });
  // SIGKILL before the first boundary and after each. SIGHUP before each tool call and after the
  // last boundary: Node runs a signal handler at its next await, which is the next tool call (zkluks
  // writes its files synchronously), so a SIGHUP after a file operation is the trial of the SIGHUP
  // before the tool call that follows it.
  const points: Point[] = [['kill-before', 1]];
  calls.forEach((call, i) => {
    const n = i + 1;
    const tool = !call.startsWith('fs ');
    points.push(['kill-after', n]);
    if (tool) points.push(['hup-before', n]);
    if (tool && !['chroot', 'lsinitramfs', 'ldd'].includes(call)) points.push(['kill-cryptsetup', n]);
  });
  points.push(['hup-after', calls.length]);
  const rebuildAt = calls.indexOf('chroot') + 1;
  if (rebuildAt > 0) points.push(['count', 0, 'write'], ['count', 0, 'between']);
  const failures: string[] = [];
  let doctorAsked = false;
  // A trial that left exactly the state before (or after) a run, with no leftovers, is re-run once:
  // the next such trial starts from the same bytes.
  const rerunFrom = new Map<'before' | 'after', string[]>();
  for (const [mode, at, rebuildKill] of points) {
    const root = await h.copy(c);
    const problems: string[] = [];
    await h.shim.reset();
    const run = h.run(c, root, mode, at, rebuildKill ? { ZKLUKS_REBUILD_KILL: rebuildKill } : {});
    const pid = run.pid as number;
    const r = await run;
    const now = await stateOf(root);
    const diff = describeDiff(now, before, after);
    if (diff !== '') problems.push(diff);
    const wholly = same(now, before) || same(now, after);
    if ((mode.startsWith('hup') || rebuildKill) && !wholly)
      problems.push('not all of crypttab, the boot files and the images are as before or as after');
    if (rebuildKill && !same(now, before))
      problems.push(`a killed rebuild did not put everything back (exit ${r.exitCode})`);
    const run2 = await runnable(root);
    const stray = run2.filter((f) => !runBefore.includes(f) && !runAfter.includes(f));
    const runs = stray.filter((f) => !f.split('/').at(-1)?.startsWith('.'));
    if (runs.length > 0) problems.push(`mkinitramfs or run-parts would run: ${runs.join(', ')}`);
    const keys = await opts.keyFilesOf(pid);
    if (keys.length > 0) problems.push(`key files left: ${keys.join(', ')}`);
    const namesKeyscript = (now.crypttab ?? '').includes(`keyscript=${ZKLUKS_KEYSCRIPT}`);
    const lacking = Object.entries(now.images).filter(
      ([, files]) => files === null || (namesKeyscript && !hasFile(files, ZKLUKS_KEYSCRIPT)),
    );
    if (lacking.some(([, files]) => files === null))
      problems.push(`an image is missing or unreadable: ${lacking.map(([k]) => k).join(', ')}`);
    else if (lacking.length > 0 && !doctorAsked) {
      // Once per command: the doctor names the state and its fix (the re-run below proves the fix).
      doctorAsked = true;
      const doctor = await opts.cli(['doctor', h.volume, '--root', root, '--json']);
      const report = JSON.parse(String(doctor.stdout) || '{}') as {
        findings?: Array<{ id: string; hint: string }>;
      };
      const found = report.findings?.find((f) => f.id === 'initramfs.missing-files');
      if (!found?.hint.includes('initramfs install'))
        problems.push(
          'crypttab names the keyscript, the image lacks it, and doctor does not say how to fix it',
        );
    }
    const clear = (await leftovers(root)).length === 0 && stray.length === 0;
    const exact = !clear ? null : same(now, before) ? 'before' : same(now, after) ? 'after' : null;
    const known = exact === null ? undefined : rerunFrom.get(exact);
    if (known !== undefined) problems.push(...known);
    else {
      const rerun: string[] = [];
      const again = await h.run(c, root, 'count', 0);
      if (again.exitCode !== 0) rerun.push(`the re-run failed: ${String(again.stderr).trim()}`);
      const final = await stateOf(root);
      if (!same(final, after)) {
        const d = describeDiff(final, after, after);
        rerun.push(`the re-run did not leave the state of a completed run${d ? `: ${d}` : ' (images)'}`);
      }
      const left = await leftovers(root);
      if (left.length > 0) rerun.push(`left after the re-run: ${left.join(', ')}`);
      if (exact !== null) rerunFrom.set(exact, rerun);
      problems.push(...rerun);
    }
    if (problems.length > 0)
      failures.push(
        `${rebuildKill ? `rebuild killed (${rebuildKill})` : `${mode} at ${at} (${calls[at - 1]})`}: ${problems.join('; ')}`,
      );
    await rm(join(root, '..'), { recursive: true, force: true });
  }
  return { tried: points.length, failures };
}
