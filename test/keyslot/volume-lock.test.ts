// One operation per volume: the lock is flock(2) on the volume's identity, so every name of one
// volume (a hard link, a symlink) shares it, and a holder that dies — even by SIGKILL — leaves no
// lock behind.
import { link, mkdtemp, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RefusedError } from '../../src/errors.ts';
import { lockFileFor, withVolumeLock } from '../../src/keyslot/volume-lock.ts';
import { bundle } from '../helpers/cli.ts';
import { formatLuks } from '../helpers/luks.ts';
import { slowCryptsetup, waitFor } from './slow-cryptsetup.ts';

async function scratch(): Promise<{ dir: string; volume: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'zkluks-lock-test-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const volume = join(dir, 'disk.img');
  await writeFile(volume, 'not a real volume');
  return { dir, volume };
}

/** Hold the lock of `volume` until the returned function is called. */
async function hold(volume: string): Promise<() => Promise<void>> {
  let release = () => {};
  let taken = () => {};
  const isTaken = new Promise<void>((r) => (taken = r));
  const done = withVolumeLock(
    volume,
    () =>
      new Promise<void>((r) => {
        release = r;
        taken();
      }),
  );
  await isTaken;
  return async () => {
    release();
    await done;
  };
}

describe('the volume lock', () => {
  it('is shared by a hard link and a symlink of the same image: a second zkluks is refused (exit 3)', async () => {
    const { dir, volume } = await scratch();
    const hard = join(dir, 'other-name.img');
    const soft = join(dir, 'alias.img');
    await link(volume, hard);
    await symlink(volume, soft);
    expect(lockFileFor(hard)).toBe(lockFileFor(volume));
    expect(lockFileFor(soft)).toBe(lockFileFor(volume));
    const release = await hold(volume);
    for (const name of [volume, hard, soft]) {
      const refused = await execa(process.execPath, [bundle, 'repair', name], { reject: false });
      expect(refused.exitCode, name).toBe(3);
      expect(refused.stderr).toMatch(
        new RegExp(`another zkluks operation \\(pid ${process.pid}\\) is changing it`),
      );
    }
    await release();
    expect(await withVolumeLock(hard, async () => 'ran')).toBe('ran');
  });

  it('dies with its holder: after a SIGKILL the next run takes it at once', async () => {
    const { volume } = await scratch();
    await truncate(volume, 32 * 2 ** 20);
    await formatLuks(volume, 'pass');
    const slow = await slowCryptsetup(['luksDump'], 60);
    const child = execa(process.execPath, [bundle, 'repair', volume], { env: slow.env, reject: false });
    await waitFor(slow.started);
    const refused = await withVolumeLock(volume, async () => 'ran').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RefusedError);
    child.kill('SIGKILL');
    await child;
    // The flock helper sees its stdin close and ends; the kernel drops the lock with it.
    let outcome: unknown;
    for (let i = 0; i < 100 && outcome !== 'ran'; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 50));
      outcome = await withVolumeLock(volume, async () => 'ran').catch((e: unknown) => e);
    }
    expect(outcome).toBe('ran');
  });
});
