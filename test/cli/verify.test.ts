import { writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { simArm, simBindLock, simBreach, simSetReachable } from '../../src/device/sim-control.ts';
import { createRunner } from '../../src/exec.ts';
import { zkluks } from '../helpers/cli.ts';
import { luksImage } from '../helpers/luks.ts';
import { expectIntact, simEnv, simStateDir } from '../keyslot/sim-fixture.ts';
import { silentModule } from '../helpers/opaque.ts';

const runner = createRunner();

async function enrolled() {
  const img = await luksImage();
  const sim = await simStateDir();
  const keyFile = `${img.dir}/unlock.key`;
  await writeFile(keyFile, img.passphrase, { mode: 0o600 });
  const run = (args: string[]) => zkluks(args, { env: simEnv(sim) });
  const r = await run(['enroll', img.path, '--unlock-key-file', keyFile, '--no-recovery-key']);
  expect(r.exitCode, r.stderr).toBe(0);
  return { img, sim, keyFile, run };
}

const token = async (volume: string, id: number) =>
  JSON.parse((await runner('cryptsetup', ['token', 'export', '--token-id', String(id), volume])).stdout);
const replaceToken = (volume: string, id: number, json: unknown) =>
  runner(
    'cryptsetup',
    ['token', 'import', '--token-id', String(id), '--token-replace', '--json-file', '-', volume],
    {
      input: JSON.stringify(json),
    },
  );

describe('zkluks verify', () => {
  it('exits 0 when the unsealed key opens the Zymkey keyslot', async () => {
    const { img, run } = await enrolled();
    const r = await run(['verify', img.path, '--json']);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, reason: 'ok', slot: 1, tokenId: 0 });
  });

  it('exits 4 with the simulator reason after a tamper self-destruct; the passphrase still opens', async () => {
    const { img, sim, run } = await enrolled();
    simBindLock(sim);
    simArm(sim, 0, 'self-destruct');
    simBreach(sim, 0);
    const r = await run(['verify', img.path]);
    expect(r.exitCode).toBe(4);
    expect(r.stdout).toMatch(new RegExp(`^zymkey-unavailable \\(${silentModule('self-destructed')}\\)`));
    expect(r.stderr).toMatch(/Failed to verify the Zymkey keyslot/);
    await expectIntact(img.path, img.passphrase);
  });

  it('exits 4 with unreachable when the Zymkey is unplugged', async () => {
    const { img, sim, run } = await enrolled();
    simSetReachable(sim, false);
    const r = await run(['verify', img.path, '--json']);
    expect(r.exitCode).toBe(4);
    expect(JSON.parse(r.stdout)).toMatchObject({
      ok: false,
      reason: 'zymkey-unavailable',
      zymkeyReason: silentModule('unreachable'),
    });
  });

  it('reports a corrupt token (exit 1) without crashing', async () => {
    const { img, run } = await enrolled();
    await replaceToken(img.path, 0, { ...(await token(img.path, 0)), sealed: 'not base64!' });
    const r = await run(['verify', img.path, '--json']);
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      reason: 'corrupt-token',
      detail: expect.stringMatching(/sealed is not base64/),
    });
    const list = await run(['list', img.path]);
    expect(list.stdout).toMatch(/warning: token 0 \(zkluks-zymkey\) is unusable: sealed is not base64/);
  });

  it('reports slot-gone when the Zymkey keyslot was wiped behind zkluks (dangling token)', async () => {
    const { img, run } = await enrolled();
    await runner('cryptsetup', ['luksKillSlot', '--batch-mode', img.path, '1'], { input: '' });
    const r = await run(['verify', img.path, '--json']);
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ reason: 'slot-gone' });
  });

  it('detects a token copied from another volume: the sealed key does not open this one', async () => {
    const a = await enrolled();
    const b = await enrolled();
    await replaceToken(b.img.path, 0, await token(a.img.path, 0));
    const r = await zkluks(['verify', b.img.path, '--json'], { env: simEnv(a.sim) });
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ reason: 'key-rejected', slot: 1 });
    await expectIntact(b.img.path, b.img.passphrase);
  });

  it('says a volume without a zkluks token is not enrolled', async () => {
    const img = await luksImage();
    const r = await zkluks(['verify', img.path], { env: simEnv(await simStateDir()) });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/^no-token: .* not enrolled/);
    expect(r.stderr).toMatch(/hint: zkluks enroll/);
  });

  it('names the module it was given in its hint: --backend and --sim-state as typed', async () => {
    const img = await luksImage();
    const sim = await simStateDir();
    const r = await zkluks(['verify', img.path, '--backend', 'sim', `--sim-state=${sim}`]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(
      `hint: zkluks enroll '${img.path}' --backend sim --sim-state=${sim}`,
    );
  });
});
