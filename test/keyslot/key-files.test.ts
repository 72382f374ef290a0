// Keys on disk only where a tool needs a file: the passphrase and the old Zymkey key go to
// cryptsetup on stdin and never touch a file; a new key is a 0600 tmpfs file only while its own
// luksAddKey runs; directories a killed zkluks left are removed at the next start; core dumps are
// off before a key is held.
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it, onTestFinished } from 'vitest';
import { findTmpfs } from '../../src/device/tmpfs-dir.ts';
import { createRunner, type Runner } from '../../src/exec.ts';
import { enroll, rotate } from '../../src/keyslot/operations.ts';
import { bundle } from '../helpers/cli.ts';
import { luksImage } from '../helpers/luks.ts';
import { keyslotDeps, simEnv } from './sim-fixture.ts';
import { slowCryptsetup, waitFor } from './slow-cryptsetup.ts';

const real = createRunner();

async function privateTmpfs(): Promise<string> {
  const dir = await mkdtemp(join(findTmpfs(), 'zkluks-keyfiles-test-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A runner that lists every file under `dir` at each cryptsetup call. */
function watching(dir: string): { runner: Runner; seen: Array<{ verb: string; files: string[] }> } {
  const seen: Array<{ verb: string; files: string[] }> = [];
  const runner: Runner = async (file, args, options) => {
    if (file === 'cryptsetup') {
      const files: string[] = [];
      for (const d of await readdir(dir)) {
        for (const f of await readdir(join(dir, d)).catch(() => [])) files.push(f);
      }
      seen.push({ verb: args.find((a) => !a.startsWith('-')) ?? '', files });
    }
    return real(file, args, options);
  };
  return { runner, seen };
}

describe('key files', () => {
  it('the passphrase and the old Zymkey key never become files; a new key only for its own luksAddKey', async () => {
    const img = await luksImage();
    const tmpfs = await privateTmpfs();
    const w = watching(tmpfs);
    const deps = { ...(await keyslotDeps()), runner: w.runner, tmpfs: [tmpfs] };
    const request = { force: false, recoveryKey: true, escrow: null, dryRun: false };
    await enroll(deps, img.path, { ...request, unlock: Buffer.from(img.passphrase) });
    await rotate(deps, img.path, { dryRun: false });
    const all = w.seen.flatMap((s) => s.files);
    expect(all.filter((f) => f.startsWith('unlock') || f.startsWith('zymkey-old'))).toEqual([]);
    for (const s of w.seen) {
      const keys = s.files.filter((f) => f.endsWith('.key'));
      if (s.verb === 'luksAddKey') expect(keys).toHaveLength(1);
      else expect(keys, `during ${s.verb}`).toEqual([]);
    }
    expect(w.seen.filter((s) => s.verb === 'luksAddKey')).toHaveLength(3);
    expect(await readdir(tmpfs)).toEqual([]);
  });

  it('what a killed zkluks left in the tmpfs is removed at the next start; a kept header backup stays', async () => {
    const img = await luksImage();
    const tmpfs = await privateTmpfs();
    const dead = 2 ** 22 + 17; // above pid_max's default: no such process
    const stale = join(tmpfs, `zkluks-${dead}-leftover1`);
    const backup = join(tmpfs, `zkluks-${dead}-leftover2`);
    for (const d of [stale, backup]) await mkdir(d, { mode: 0o700 });
    await writeFile(join(stale, 'zymkey-new.key'), 'secret', { mode: 0o600 });
    await writeFile(join(backup, 'recovery-new.key'), 'secret', { mode: 0o600 });
    await writeFile(join(backup, 'header-backup.img'), 'backup', { mode: 0o600 });
    const mine = join(tmpfs, `zkluks-${process.pid}-running`);
    await mkdir(mine, { mode: 0o700 });
    const deps = { ...(await keyslotDeps()), tmpfs: [tmpfs] };
    await enroll(deps, img.path, {
      force: false,
      recoveryKey: true,
      escrow: null,
      dryRun: false,
      unlock: Buffer.from(img.passphrase),
    });
    expect((await readdir(tmpfs)).sort()).toEqual(
      [`zkluks-${dead}-leftover2`, `zkluks-${process.pid}-running`].sort(),
    );
    expect(await readdir(backup)).toEqual(['header-backup.img']);
  });

  it('the private directory is 0700 and carries the owning pid', async () => {
    const img = await luksImage();
    const tmpfs = await privateTmpfs();
    const modes: string[] = [];
    const runner: Runner = async (file, args, options) => {
      if (file === 'cryptsetup' && args[0] === 'luksAddKey') {
        for (const d of await readdir(tmpfs))
          modes.push(
            `${d.replace(/-[^-]+$/, '')} ${((await stat(join(tmpfs, d))).mode & 0o777).toString(8)}`,
          );
      }
      return real(file, args, options);
    };
    const deps = { ...(await keyslotDeps()), runner, tmpfs: [tmpfs] };
    await enroll(deps, img.path, {
      force: false,
      recoveryKey: false,
      escrow: null,
      dryRun: false,
      unlock: Buffer.from(img.passphrase),
    });
    expect(modes).toEqual([`zkluks-${process.pid} 700`]);
  });

  it('core dumps are off in a zkluks process that holds a key', async () => {
    const img = await luksImage();
    const deps = await keyslotDeps();
    const keyFile = join(img.dir, 'unlock.key');
    await writeFile(keyFile, img.passphrase, { mode: 0o600 });
    const slow = await slowCryptsetup(['luksAddKey'], 3);
    const child = execa(process.execPath, [bundle, 'enroll', img.path, '--unlock-key-file', keyFile], {
      env: { ...simEnv(deps.simState), ...slow.env },
      reject: false,
    });
    await waitFor(slow.started);
    const pid = child.pid as number;
    const filter = readFileSync(`/proc/${pid}/coredump_filter`, 'utf8').trim();
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    expect(Number.parseInt(filter, 16)).toBe(0);
    expect(limits).toMatch(/^Max core file size\s+0\s+0\s+bytes\s*$/m);
    expect((await child).exitCode).toBe(0);
  });
});
