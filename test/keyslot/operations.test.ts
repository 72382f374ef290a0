import { describe, expect, it } from 'vitest';
import { simArm, simBindLock, simBreach } from '../../src/device/sim-control.ts';
import { createRunner, type RunRecord } from '../../src/exec.ts';
import { readHeader } from '../../src/keyslot/header.ts';
import {
  enroll,
  recoveryAdd,
  recoveryRemove,
  remove,
  rotate,
  unlockEscrow,
  verifyRecovery,
  verifyZymkey,
} from '../../src/keyslot/operations.ts';
import { viewVolume } from '../../src/keyslot/volume-view.ts';
import { luksImage, opens } from '../helpers/luks.ts';
import { keyslotDeps } from './sim-fixture.ts';

const runner = createRunner();
const base = { force: false, recoveryKey: true, escrow: null, dryRun: false };

async function noDanglingTokens(volume: string) {
  const h = await readHeader(runner, volume);
  expect(h.tokens.filter((t) => t.keyslots.length === 0)).toEqual([]);
  expect(viewVolume(h).problems).toEqual([]);
}

describe('keyslot operations on a real LUKS2 image with the simulator', () => {
  it('enroll adds a verified Zymkey slot (pbkdf2 1000, prefer) and a recovery key; verify passes', async () => {
    const img = await luksImage();
    const deps = await keyslotDeps();
    const r = await enroll(deps, img.path, { ...base, unlock: Buffer.from(img.passphrase) });
    expect(r.applied?.zymkeySlot).toBe(1);
    expect(r.applied?.recoverySlot).toBe(2);
    const h = await readHeader(runner, img.path);
    expect(h.keyslots.find((k) => k.id === 1)).toMatchObject({
      kdf: 'pbkdf2',
      iterations: 1000,
      priority: 'prefer',
    });
    expect(h.tokens.map((t) => [t.type, t.keyslots])).toEqual([
      ['zkluks-zymkey', [1]],
      ['zkluks-recovery', [2]],
    ]);
    expect(await verifyZymkey(deps, img.path)).toMatchObject({ ok: true, reason: 'ok', slot: 1 });
    const key = r.applied?.recoveryKey as string;
    expect(key).toMatch(/^([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}$/);
    expect(await opens(img.path, key, 2)).toBe(true);
    expect((await verifyRecovery(deps, img.path, key.toUpperCase().replace(/-/g, ' '))).ok).toBe(true);
    expect(await opens(img.path, img.passphrase)).toBe(true);
  });

  it('enroll twice changes nothing; --force replaces the key and the old slot goes', async () => {
    const img = await luksImage();
    const deps = await keyslotDeps();
    await enroll(deps, img.path, { ...base, unlock: Buffer.from(img.passphrase) });
    const before = await readHeader(runner, img.path);
    const again = await enroll(deps, img.path, { ...base, unlock: Buffer.from(img.passphrase) });
    expect(again.plan.unchanged).toMatch(/already enrolled/);
    expect(await readHeader(runner, img.path)).toEqual(before);
    const forced = await enroll(deps, img.path, {
      ...base,
      force: true,
      unlock: Buffer.from(img.passphrase),
    });
    expect(forced.applied?.zymkeySlot).toBe(3);
    const h = await readHeader(runner, img.path);
    expect(h.keyslots.map((k) => k.id)).toEqual([0, 2, 3]);
    expect((await verifyZymkey(deps, img.path)).slot).toBe(3);
    await noDanglingTokens(img.path);
  });

  it('rotate, authorized by the current Zymkey key, replaces slot and token in one call', async () => {
    const img = await luksImage();
    const deps = await keyslotDeps();
    await enroll(deps, img.path, { ...base, unlock: Buffer.from(img.passphrase) });
    const r = await rotate(deps, img.path, { dryRun: false });
    expect(r.plan.steps[0]).toMatchObject({ op: 'add-key', authorizedBy: 'zymkey-old', slot: 3 });
    const h = await readHeader(runner, img.path);
    expect(h.keyslots.map((k) => k.id)).toEqual([0, 2, 3]);
    expect(await verifyZymkey(deps, img.path)).toMatchObject({ ok: true, slot: 3 });
    expect(await opens(img.path, img.passphrase)).toBe(true);
    await noDanglingTokens(img.path);
  });

  it('remove wipes the Zymkey slot and its token; recovery remove keeps the passphrase', async () => {
    const img = await luksImage();
    const deps = await keyslotDeps();
    await enroll(deps, img.path, { ...base, unlock: Buffer.from(img.passphrase) });
    await remove(deps, img.path, { dryRun: false, lockMeOut: false, yes: false });
    // Only the recovery key is proven: without a key shown to open slot 0, it stays.
    await expect(
      recoveryRemove(deps, img.path, { dryRun: false, lockMeOut: false, yes: false }),
    ).rejects.toMatchObject({ exitCode: 3, message: expect.stringMatching(/keyslot 0 has no token/) });
    await expect(
      recoveryRemove(deps, img.path, {
        dryRun: false,
        lockMeOut: false,
        yes: false,
        unlock: Buffer.from('not the passphrase'),
      }),
    ).rejects.toThrow(/the key given opens none of keyslot 0/);
    await recoveryRemove(deps, img.path, {
      dryRun: false,
      lockMeOut: false,
      yes: false,
      unlock: Buffer.from(img.passphrase),
    });
    const h = await readHeader(runner, img.path);
    expect(h.keyslots.map((k) => k.id)).toEqual([0]);
    expect(h.tokens).toEqual([]);
    expect(await verifyZymkey(deps, img.path)).toMatchObject({ ok: false, reason: 'no-token' });
    expect(await opens(img.path, img.passphrase)).toBe(true);
  });

  it('recovery add with an age escrow: the identity owner gets a key that opens the volume', async () => {
    const img = await luksImage();
    const deps = await keyslotDeps();
    const identity = `${img.dir}/identity.txt`;
    await runner('age-keygen', ['-o', identity]);
    const recipient = (await runner('age-keygen', ['-y', identity])).stdout.trim();
    await enroll(deps, img.path, { ...base, recoveryKey: false, unlock: Buffer.from(img.passphrase) });
    const added = await recoveryAdd(deps, img.path, { force: false, escrow: recipient, dryRun: false });
    expect(added.plan.steps[0]).toMatchObject({ authorizedBy: 'zymkey-old' });
    const { key, slot } = await unlockEscrow(deps, img.path, identity);
    expect(key).toBe(added.applied?.recoveryKey);
    expect(await opens(img.path, key, slot)).toBe(true);
  });

  it('verify reports self-destruct with the Zymkey reason, and the passphrase still opens the volume', async () => {
    const img = await luksImage();
    const deps = await keyslotDeps();
    await enroll(deps, img.path, { ...base, unlock: Buffer.from(img.passphrase) });
    simBindLock(deps.simState);
    simArm(deps.simState, 0, 'self-destruct');
    simBreach(deps.simState, 0);
    expect(await verifyZymkey(deps, img.path)).toMatchObject({
      ok: false,
      reason: 'zymkey-unavailable',
      zymkeyReason: 'self-destructed',
    });
    expect(await opens(img.path, img.passphrase)).toBe(true);
  });

  it('a token copied from another volume is detected by verify as key-rejected', async () => {
    const a = await luksImage();
    const b = await luksImage();
    const deps = await keyslotDeps();
    await enroll(deps, a.path, { ...base, recoveryKey: false, unlock: Buffer.from(a.passphrase) });
    await enroll(deps, b.path, { ...base, recoveryKey: false, unlock: Buffer.from(b.passphrase) });
    const tokenA = (await runner('cryptsetup', ['token', 'export', '--token-id', '0', a.path])).stdout;
    await runner(
      'cryptsetup',
      ['token', 'import', '--token-id', '0', '--token-replace', '--json-file', '-', b.path],
      {
        input: tokenA,
      },
    );
    expect(await verifyZymkey(deps, b.path)).toMatchObject({
      ok: false,
      reason: 'key-rejected',
      slot: 1,
      detail: expect.stringMatching(/not made for that keyslot \(its recorded keyslot salt differs/),
    });
    await expect(enroll(deps, b.path, { ...base, unlock: Buffer.from(b.passphrase) })).rejects.toMatchObject({
      exitCode: 3,
      message: expect.stringMatching(/does not unlock it/),
    });
  });

  it('enroll asks the volume its UUID twice only (before and after the change), not at every step', async () => {
    const img = await luksImage();
    const records: RunRecord[] = [];
    const deps = await keyslotDeps({ records });
    await enroll(deps, img.path, { ...base, unlock: Buffer.from(img.passphrase) });
    expect(records.filter((r) => r.file === 'cryptsetup' && r.args[0] === 'luksUUID')).toHaveLength(2);
  });

  it('no recorded argv ever holds a key: passphrase, Zymkey key or recovery key; key input is redacted', async () => {
    const img = await luksImage();
    const records: RunRecord[] = [];
    const deps = await keyslotDeps({ records });
    const r = await enroll(deps, img.path, { ...base, unlock: Buffer.from(img.passphrase) });
    await rotate(deps, img.path, { dryRun: false });
    await verifyZymkey(deps, img.path);
    const recovery = r.applied?.recoveryKey as string;
    const view = viewVolume(await readHeader(runner, img.path));
    const zymkeyKey = await deps
      .zymkey()
      .unseal(Buffer.from(view.zymkey[0]?.token.sealed as string, 'base64'));
    const secrets = [img.passphrase, recovery, zymkeyKey.toString('hex'), zymkeyKey.toString('base64')];
    expect(records.length).toBeGreaterThan(10);
    for (const rec of records) {
      const argv = [rec.file, ...rec.args].join(' ');
      for (const secret of secrets) expect(argv).not.toContain(secret);
      if (rec.args.includes('--key-file')) expect(rec.input).toBe('<redacted>');
      for (const secret of secrets) expect(rec.input ?? '').not.toContain(secret);
    }
  });
});

/** Import `volume`'s token `from` into `into` as token `as`, renamed to name keyslot `slot`. */
async function copyToken(from: string, id: number, into: string, as: number, slot: number): Promise<void> {
  const exported = JSON.parse(
    (await runner('cryptsetup', ['token', 'export', '--token-id', String(id), from])).stdout,
  );
  await runner('cryptsetup', ['token', 'import', '--token-id', String(as), '--json-file', '-', into], {
    input: JSON.stringify({ ...exported, keyslots: [String(slot)] }),
  });
}

describe('a zkluks token copied from another volume never gets the keyslot it names wiped', () => {
  // Volume b: 0 passphrase, 1 Zymkey (token 0), 2 recovery (token 1); plus a token copied from a
  // naming the passphrase slot 0. Each operation must remove the copied token and keep slot 0.
  async function twoVolumes(type: 'zkluks-zymkey' | 'zkluks-recovery') {
    const a = await luksImage();
    const b = await luksImage();
    const deps = await keyslotDeps();
    await enroll(deps, a.path, { ...base, unlock: Buffer.from(a.passphrase) });
    await enroll(deps, b.path, { ...base, unlock: Buffer.from(b.passphrase) });
    await copyToken(a.path, type === 'zkluks-zymkey' ? 0 : 1, b.path, 5, 0);
    const view = viewVolume(await readHeader(runner, b.path));
    expect(view.slots.find((s) => s.id === 0)?.kind).toBe('unverified');
    expect([...view.zymkey, ...view.recovery].find((o) => o.tokenId === 5)?.match).toBe('mismatch');
    return { b, deps };
  }
  const kept = /keyslot 0 is kept: .* token 5 was not made for it/;

  it('remove wipes the Zymkey slot only; the passphrase slot the copied token names still opens', async () => {
    const { b, deps } = await twoVolumes('zkluks-zymkey');
    const r = await remove(deps, b.path, { dryRun: false, lockMeOut: false, yes: false });
    expect(r.plan.steps.filter((s) => s.op === 'kill-slot')).toEqual([{ op: 'kill-slot', slot: 1 }]);
    expect(r.plan.notes.join('\n')).toMatch(kept);
    const h = await readHeader(runner, b.path);
    expect(h.keyslots.map((k) => k.id)).toEqual([0, 2]);
    expect(h.tokens.map((t) => t.type)).toEqual(['zkluks-recovery']);
    expect(await opens(b.path, b.passphrase, 0)).toBe(true);
    await noDanglingTokens(b.path);
  });

  it('recovery remove wipes the recovery slot only; the passphrase slot the copied token named still opens', async () => {
    const { b, deps } = await twoVolumes('zkluks-recovery');
    const r = await recoveryRemove(deps, b.path, {
      dryRun: false,
      lockMeOut: false,
      yes: false,
      unlock: Buffer.from(b.passphrase),
    });
    expect(r.plan.steps.filter((s) => s.op === 'kill-slot')).toEqual([{ op: 'kill-slot', slot: 2 }]);
    // The passphrase given proves slot 0, so it is kept for that reason first.
    expect(r.plan.notes.join('\n')).toMatch(
      /keyslot 0 opens with the key you gave, so only its zkluks-recovery token is removed/,
    );
    expect((await readHeader(runner, b.path)).keyslots.map((k) => k.id)).toEqual([0, 1]);
    expect(await opens(b.path, b.passphrase, 0)).toBe(true);
    expect(await verifyZymkey(deps, b.path)).toMatchObject({ ok: true, slot: 1 });
    await noDanglingTokens(b.path);
  });

  it('recovery add --force replaces the recovery key; the passphrase slot a copied recovery token names is kept', async () => {
    const { b, deps } = await twoVolumes('zkluks-recovery');
    const r = await recoveryAdd(deps, b.path, { force: true, escrow: null, dryRun: false });
    expect(r.plan.steps.filter((s) => s.op === 'kill-slot')).toEqual([{ op: 'kill-slot', slot: 2 }]);
    expect(r.plan.notes.join('\n')).toMatch(kept);
    expect(await opens(b.path, b.passphrase, 0)).toBe(true);
    expect(await opens(b.path, r.applied?.recoveryKey as string, 3)).toBe(true);
    await noDanglingTokens(b.path);
  });

  it('rotate replaces the Zymkey slot only; the passphrase slot still opens', async () => {
    const { b, deps } = await twoVolumes('zkluks-zymkey');
    const r = await rotate(deps, b.path, { dryRun: false });
    expect(r.plan.steps.filter((s) => s.op === 'kill-slot')).toEqual([{ op: 'kill-slot', slot: 1 }]);
    expect(r.plan.notes.join('\n')).toMatch(kept);
    const h = await readHeader(runner, b.path);
    expect(h.keyslots.map((k) => k.id)).toEqual([0, 2, 3]);
    expect(await opens(b.path, b.passphrase, 0)).toBe(true);
    expect(await verifyZymkey(deps, b.path)).toMatchObject({ ok: true, slot: 3 });
    await noDanglingTokens(b.path);
  });

  it('enroll --force replaces the enrollment; the passphrase slot still opens', async () => {
    const { b, deps } = await twoVolumes('zkluks-zymkey');
    const r = await enroll(deps, b.path, { ...base, force: true, unlock: Buffer.from(b.passphrase) });
    expect(r.plan.steps.filter((s) => s.op === 'kill-slot')).toEqual([{ op: 'kill-slot', slot: 1 }]);
    expect(await opens(b.path, b.passphrase, 0)).toBe(true);
    expect(await verifyZymkey(deps, b.path)).toMatchObject({ ok: true, slot: 3 });
    await noDanglingTokens(b.path);
  });

  it('every zkluks token records the salt of the keyslot it was made for', async () => {
    const img = await luksImage();
    const deps = await keyslotDeps();
    await enroll(deps, img.path, { ...base, unlock: Buffer.from(img.passphrase) });
    const h = await readHeader(runner, img.path);
    for (const t of h.tokens) {
      expect(t.json.keyslot_salt).toBe(h.keyslots.find((k) => k.id === t.keyslots[0])?.salt);
    }
    expect(viewVolume(h).zymkey[0]?.match).toBe('match');
    expect(viewVolume(h).recovery[0]?.match).toBe('match');
  });

  it('a Zymkey slot re-keyed in place (luksConvertKey: new salt, same key) never counts as a way in, and remove proves it with the Zymkey', async () => {
    const img = await luksImage();
    const deps = await keyslotDeps();
    const r = await enroll(deps, img.path, { ...base, unlock: Buffer.from(img.passphrase) });
    const recovery = r.applied?.recoveryKey as string;
    await runner('cryptsetup', ['luksKillSlot', '--batch-mode', '--key-file', '-', img.path, '0'], {
      input: recovery,
    });
    const sealed = viewVolume(await readHeader(runner, img.path)).zymkey[0]?.token.sealed as string;
    const key = await deps.zymkey().unseal(Buffer.from(sealed, 'base64'));
    await runner(
      'cryptsetup',
      [
        'luksConvertKey',
        '--key-slot',
        '1',
        '--pbkdf',
        'pbkdf2',
        '--pbkdf-force-iterations',
        '1001',
        '--key-file',
        '-',
        img.path,
      ],
      { input: key },
    );
    const view = viewVolume(await readHeader(runner, img.path));
    expect(view.zymkey[0]?.match).toBe('mismatch');
    expect(view.slots.map((s) => [s.id, s.kind])).toEqual([
      [1, 'unverified'],
      [2, 'recovery'],
    ]);
    // Removing the recovery key would leave only the Zymkey: refused, as for any Zymkey slot.
    await expect(
      recoveryRemove(deps, img.path, { dryRun: false, lockMeOut: false, yes: false }),
    ).rejects.toMatchObject({ exitCode: 3 });
    expect(await verifyZymkey(deps, img.path)).toMatchObject({ ok: true, slot: 1 });
    // remove asks the Zymkey, whose key still opens slot 1: the slot goes with its token.
    const removed = await remove(deps, img.path, { dryRun: false, lockMeOut: false, yes: false });
    expect(removed.plan.steps.filter((s) => s.op === 'kill-slot')).toEqual([{ op: 'kill-slot', slot: 1 }]);
    expect((await readHeader(runner, img.path)).keyslots.map((k) => k.id)).toEqual([2]);
    expect(await opens(img.path, recovery, 2)).toBe(true);
    await noDanglingTokens(img.path);
  });
});
