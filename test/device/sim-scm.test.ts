// The simulated SCM's Supervised Boot: a manifest of boot files signed inside the module, read back
// as paths only, and the check at power-on, which in production destroys the keys (or holds the Pi in
// reset) when a file no longer matches, and in developer mode only reports it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ZymkeyUnavailableError } from '../../src/errors.ts';
import { simBindLock, simBoot, simInit, simStatus, simZkifc } from '../../src/device/sim-control.ts';
import { simScmAddOrUpdate, simScmManifest, simScmPolicy, simScmRemove } from '../../src/device/sim-scm.ts';
import { SimZymkey } from '../../src/device/sim.ts';

let dir: string;
let state: string;
let boot: string;
const key = Buffer.alloc(32, 7);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zkluks-sim-scm-'));
  state = join(dir, 'state');
  boot = join(dir, 'boot');
  mkdirSync(join(boot, 'overlays'), { recursive: true });
  for (const f of ['cmdline.txt', 'config.txt', 'initrd.img', 'kernel8.img'])
    writeFileSync(join(boot, f), `${f} v1\n`);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function sealed(): Promise<Buffer> {
  return new SimZymkey(state).seal(key);
}

describe('simulated SCM Supervised Boot', () => {
  it('ships with the files of its image signed; the API gives the paths back, never the signatures', async () => {
    simInit(state, { model: 'SCM', boot });
    expect(simScmManifest(state)).toEqual(['cmdline.txt', 'config.txt', 'initrd.img', 'kernel8.img']);
    expect(await new SimZymkey(state).supervisedBoot()).toEqual({
      scm: true,
      manifest: ['cmdline.txt', 'config.txt', 'initrd.img', 'kernel8.img'],
      error: null,
    });
    expect(simBoot(state).supervisedBoot).toMatchObject({ result: 'verified', failed: [] });
  });

  it('production: a changed file destroys every key at the next boot; signing it first keeps them', async () => {
    simInit(state, { model: 'SCM', boot });
    simBindLock(state);
    const blob = await sealed();
    writeFileSync(join(boot, 'initrd.img'), 'rebuilt\n');
    simScmAddOrUpdate(state, 'initrd.img');
    expect(simBoot(state).supervisedBoot.result).toBe('verified');
    expect((await new SimZymkey(state).unseal(blob)).equals(key)).toBe(true);

    writeFileSync(join(boot, 'kernel8.img'), 'new kernel\n');
    const after = simBoot(state);
    expect(after.supervisedBoot).toMatchObject({
      result: 'destroyed',
      failed: [{ file: 'kernel8.img', why: 'changed' }],
    });
    expect(after.status.keyMaterial).toBe('destroyed');
    expect(after.status.led).toBe('atecc-unreachable');
    const e = await new SimZymkey(state).unseal(blob).catch((error: unknown) => error);
    expect(e).toBeInstanceOf(ZymkeyUnavailableError);
    expect((e as ZymkeyUnavailableError).reason).toBe('self-destructed');
    // Putting the file back revives nothing.
    writeFileSync(join(boot, 'kernel8.img'), 'kernel8.img v1\n');
    expect(simBoot(state).supervisedBoot.result).toBe('dead');
    expect(simStatus(state).keyMaterial).toBe('destroyed');
  });

  it('production: policy none is no protection (Zymbit: the policy is not implemented, #126); a missing file fails too', async () => {
    simInit(state, { model: 'SCM', boot });
    simScmPolicy(state, 'none');
    simBindLock(state);
    rmSync(join(boot, 'cmdline.txt'));
    expect(simBoot(state).supervisedBoot).toMatchObject({
      result: 'destroyed',
      failed: [{ file: 'cmdline.txt', why: 'missing' }],
    });
  });

  it('production with hold-reset: the Pi stays in reset and the module answers nothing, keys kept', async () => {
    simInit(state, { model: 'SCM', boot });
    simScmPolicy(state, 'hold-reset');
    simBindLock(state);
    expect(() => simScmPolicy(state, 'none')).toThrow(/immutable/);
    writeFileSync(join(boot, 'config.txt'), 'changed\n');
    const b = simBoot(state);
    expect(b.supervisedBoot).toMatchObject({ result: 'held', boots: false });
    expect(b.status.keyMaterial).toBe('present');
    expect(b.status.led).toBe('off');
    await expect(sealed()).rejects.toThrow(/holds the Pi in reset/);
  });

  it('developer mode only flashes 4-2 and boots; keys kept', async () => {
    simInit(state, { model: 'SCM', boot });
    const blob = await sealed();
    writeFileSync(join(boot, 'initrd.img'), 'rebuilt\n');
    expect(simBoot(state).supervisedBoot).toMatchObject({ result: 'simulated', boots: true });
    expect((await new SimZymkey(state).unseal(blob)).equals(key)).toBe(true);
  });

  it('an empty manifest turns Supervised Boot off; other models have none and refuse the calls', async () => {
    simInit(state, { model: 'SCM', boot });
    for (const f of simScmManifest(state)) simScmRemove(state, f);
    writeFileSync(join(boot, 'initrd.img'), 'rebuilt\n');
    simBindLock(state);
    expect(simBoot(state).supervisedBoot.result).toBe('off');

    const other = join(dir, 'hsm');
    simInit(other, { model: 'HSM6' });
    expect(() => simScmManifest(other)).toThrow(/no Supervised Boot/);
    expect(await new SimZymkey(other).supervisedBoot()).toEqual({ scm: false, manifest: null, error: null });
    expect(simBoot(other).supervisedBoot.result).toBe('not-scm');
  });

  it('the manifest calls go through zkifc like every API call, and take paths inside the boot partition only', async () => {
    simInit(state, { model: 'SCM', boot });
    expect(() => simScmAddOrUpdate(state, '../etc/passwd')).toThrow(/not a path inside the boot partition/);
    expect(() => simScmAddOrUpdate(state, '/boot/initrd.img')).toThrow(/not a path inside/);
    simZkifc(state, 'stopped');
    expect(() => simScmAddOrUpdate(state, 'initrd.img')).toThrow(/zkifc is not running/);
    const info = await new SimZymkey(state).supervisedBoot();
    expect(info).toMatchObject({ scm: true, manifest: null });
    expect(info.error).toMatch(/zkifc/);
  });
});
