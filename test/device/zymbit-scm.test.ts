// The zymbit backend's Supervised Boot calls against the simulated SCM through the fake `zymkey`
// Python module: an SCM is found by its /dev/zscm* node (no Python runs without one), the manifest
// comes from get_supervised_boot_file_manifest(), and a file is signed with
// add_or_update_supervised_boot_file(file, 15).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { simBindLock, simBoot, simInit, simZkifc } from '../../src/device/sim-control.ts';
import { ZymbitZymkey } from '../../src/device/zymbit.ts';
import { createRunner, type RunRecord, type Runner } from '../../src/exec.ts';
import { bundle, repoRoot } from '../helpers/cli.ts';

const fixtures = join(repoRoot, 'test/fixtures/zymbit');
let dir: string;
let state: string;
let boot: string;
let dev: string;
let records: RunRecord[];

function runner(): Runner {
  return createRunner({
    records,
    env: {
      PATH: [join(fixtures, 'bin'), process.env.PATH].join(':'),
      PYTHONPATH: join(fixtures, 'python'),
      ZKLUKS_SIM_STATE: state,
      ZKLUKS_SIM_NODE: process.execPath,
      ZKLUKS_SIM_BUNDLE: bundle,
    },
  });
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zkluks-zymbit-scm-'));
  state = join(dir, 'state');
  boot = join(dir, 'boot');
  dev = join(dir, 'dev');
  mkdirSync(boot);
  mkdirSync(dev);
  for (const f of ['cmdline.txt', 'initrd.img']) writeFileSync(join(boot, f), `${f}\n`);
  records = [];
  simInit(state, { model: 'SCM', boot });
  simBindLock(state);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('zymbit backend: Supervised Boot', () => {
  it('without a /dev/zscm* node there is no SCM, and no Python runs', async () => {
    const zk = new ZymbitZymkey({ runner: runner(), devDir: dev });
    expect(await zk.supervisedBoot()).toEqual({ scm: false, manifest: null, error: null });
    expect(records).toEqual([]);
  });

  it('with /dev/zscm0 it reads the manifest and signs a changed file through the Python API', async () => {
    writeFileSync(join(dev, 'zscm0'), '');
    const zk = new ZymbitZymkey({ runner: runner(), devDir: dev });
    expect(await zk.supervisedBoot()).toEqual({
      scm: true,
      manifest: ['cmdline.txt', 'initrd.img'],
      error: null,
    });
    writeFileSync(join(boot, 'initrd.img'), 'rebuilt\n');
    await zk.updateSupervisedBootFile('initrd.img');
    expect(records.at(-1)?.args).toEqual(['-', 'initrd.img', '15']);
    expect(simBoot(state).supervisedBoot.result).toBe('verified');
  });

  it('takes a file out of the manifest through remove_supervised_boot_file: the boot no longer verifies it', async () => {
    writeFileSync(join(dev, 'zscm0'), '');
    const zk = new ZymbitZymkey({ runner: runner(), devDir: dev });
    await zk.removeSupervisedBootFile('cmdline.txt');
    expect(records.at(-1)?.args).toEqual(['-', 'cmdline.txt']);
    expect((await zk.supervisedBoot()).manifest).toEqual(['initrd.img']);
    writeFileSync(join(boot, 'cmdline.txt'), 'changed\n');
    expect(simBoot(state).supervisedBoot.result).toBe('verified');
  });

  it('an SCM whose API does not answer (zkifc stopped) is still an SCM, with the reason; signing fails loudly', async () => {
    writeFileSync(join(dev, 'zscm0'), '');
    simZkifc(state, 'stopped');
    const zk = new ZymbitZymkey({ runner: runner(), devDir: dev });
    const info = await zk.supervisedBoot();
    expect(info).toMatchObject({ scm: true, manifest: null });
    expect(info.error).toMatch(/zymkey.client is None/);
    await expect(zk.updateSupervisedBootFile('initrd.img')).rejects.toThrow(
      /add_or_update_supervised_boot_file\('initrd.img'\) failed \(exit 1\): zymkey.client is None/,
    );
  });
});
