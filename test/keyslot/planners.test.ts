import { describe, expect, it } from 'vitest';
import { RefusedError, ZkluksError } from '../../src/errors.ts';
import type { HeaderFacts, KeyslotFacts, TokenFacts } from '../../src/keyslot/header.ts';
import { describePlan, NoWayInError } from '../../src/keyslot/plan.ts';
import { planEnroll } from '../../src/keyslot/plan-enroll.ts';
import { planRecoveryAdd, planRecoveryRemove } from '../../src/keyslot/plan-recovery.ts';
import { planRemove } from '../../src/keyslot/plan-remove.ts';
import { planRotate } from '../../src/keyslot/plan-rotate.ts';
import { recoveryToken, zymkeyToken } from '../../src/keyslot/token.ts';
import { viewVolume } from '../../src/keyslot/volume-view.ts';
import type { ZymkeyCheck } from '../../src/keyslot/zymkey-check.ts';

/** Each fixture keyslot has its own salt; zkluks tokens record the salt of the slot they name. */
const saltOf = (id: number) => Buffer.from(`salt of keyslot ${id}`).toString('base64');
const slot = (id: number, kdf = 'pbkdf2'): KeyslotFacts => ({
  id,
  type: 'luks2',
  kdf,
  iterations: 1000,
  memoryKiB: null,
  priority: 'normal',
  keySize: 64,
  salt: saltOf(id),
});
const created = new Date('2026-01-01T00:00:00Z');
const zToken = (id: number, s: number): TokenFacts => ({
  id,
  type: 'zkluks-zymkey',
  keyslots: [s],
  json: zymkeyToken({
    keyslot: s,
    sealed: Buffer.from('x'),
    backend: 'sim',
    zymkey: { model: 'ZYMKEY4i', serial: 'S', binding: 'developer' },
    created,
    keyslotSalt: saltOf(s),
  }) as unknown as Record<string, unknown>,
});
const rToken = (id: number, s: number): TokenFacts => ({
  id,
  type: 'zkluks-recovery',
  keyslots: [s],
  json: recoveryToken({ keyslot: s, created, keyslotSalt: saltOf(s) }) as unknown as Record<string, unknown>,
});
const header = (
  keyslots: KeyslotFacts[],
  tokens: TokenFacts[] = [],
  over: Partial<HeaderFacts> = {},
): HeaderFacts => ({
  volume: 'v.img',
  version: 2,
  uuid: 'u',
  keyslots,
  tokens,
  freeKeyslots: 32 - keyslots.length,
  jsonSize: 12288,
  jsonUsed: 2000,
  ...over,
});
const check = (tokenId: number, s: number, opens: boolean): ZymkeyCheck => ({
  tokenId,
  slot: s,
  opens,
  reason: opens ? 'ok' : 'key-rejected',
  zymkeyReason: null,
  detail: opens ? 'opens' : 'does not open',
});
const noConsent = { lockMeOut: false, yes: false };
const enrollOpts = { force: false, recoveryKey: true, escrow: null };

describe('planEnroll', () => {
  it('adds the Zymkey slot with priority prefer and its token, verifies, then adds a verified recovery key', () => {
    const plan = planEnroll({ view: viewVolume(header([slot(0)])), checks: [], unlockOpens: [] }, enrollOpts);
    expect(plan.generates).toEqual(['zymkey-new', 'recovery-new']);
    expect(plan.steps).toEqual([
      { op: 'add-key', slot: 1, key: 'zymkey-new', authorizedBy: 'unlock' },
      { op: 'set-priority', slot: 1, priority: 'prefer' },
      { op: 'import-token', tokenId: 0, type: 'zkluks-zymkey', slot: 1 },
      { op: 'verify-key', slot: 1, key: 'zymkey-new' },
      { op: 'add-key', slot: 2, key: 'recovery-new', authorizedBy: 'unlock' },
      { op: 'import-token', tokenId: 1, type: 'zkluks-recovery', slot: 2 },
      { op: 'verify-key', slot: 2, key: 'recovery-new' },
    ]);
    expect(describePlan(plan)).toMatch(/back up the LUKS header/);
  });

  it('makes no recovery key when the volume already has one', () => {
    const plan = planEnroll(
      { view: viewVolume(header([slot(0), slot(1)], [rToken(0, 1)])), checks: [], unlockOpens: [] },
      enrollOpts,
    );
    expect(plan.generates).toEqual(['zymkey-new']);
    expect(plan.steps.some((s) => s.op === 'add-key' && s.key === 'recovery-new')).toBe(false);
  });

  it('changes nothing on a volume whose Zymkey slot already opens, unless --force', () => {
    const view = viewVolume(header([slot(0), slot(1)], [zToken(0, 1)]));
    const plan = planEnroll({ view, checks: [check(0, 1, true)], unlockOpens: [] }, enrollOpts);
    expect(plan.unchanged).toMatch(/already enrolled: keyslot 1 opens with the Zymkey/);
    expect(plan.steps).toEqual([]);
  });

  it('with --force adds and verifies the new slot before removing the old token and slot', () => {
    const view = viewVolume(header([slot(0), slot(1)], [zToken(0, 1)]));
    const plan = planEnroll(
      { view, checks: [check(0, 1, true)], unlockOpens: [] },
      { ...enrollOpts, force: true },
    );
    const ops = plan.steps.map((s) => `${s.op}:${'slot' in s ? s.slot : s.tokenId}`);
    expect(ops.indexOf('verify-key:2')).toBeLessThan(ops.indexOf('remove-token:0'));
    expect(ops.at(-1)).toBe('kill-slot:1');
  });

  it('refuses without --force when its token does not unlock the volume (copied from another volume)', () => {
    const view = viewVolume(header([slot(0), slot(1)], [zToken(0, 1)]));
    expect(() => planEnroll({ view, checks: [check(0, 1, false)], unlockOpens: [] }, enrollOpts)).toThrow(
      RefusedError,
    );
  });

  it('never wipes a keyslot the given passphrase opens, even under a zkluks-zymkey token', () => {
    const view = viewVolume(header([slot(0)], [zToken(0, 0)]));
    const plan = planEnroll(
      { view, checks: [check(0, 0, false)], unlockOpens: [0] },
      { ...enrollOpts, force: true },
    );
    expect(plan.steps.some((s) => s.op === 'kill-slot')).toBe(false);
    expect(plan.steps).toContainEqual({ op: 'remove-token', tokenId: 0, type: 'zkluks-zymkey' });
  });

  it('cleans up a dangling zkluks-zymkey token', () => {
    const dangling: TokenFacts = {
      ...zToken(3, 1),
      keyslots: [],
      json: { ...zToken(3, 1).json, keyslots: [] },
    };
    const plan = planEnroll(
      { view: viewVolume(header([slot(0)], [dangling])), checks: [], unlockOpens: [] },
      enrollOpts,
    );
    expect(plan.steps.at(-1)).toEqual({ op: 'remove-token', tokenId: 3, type: 'zkluks-zymkey' });
  });

  it('fails with the count when all 32 keyslots are in use', () => {
    const full = header(Array.from({ length: 32 }, (_, i) => slot(i)));
    expect(() => planEnroll({ view: viewVolume(full), checks: [], unlockOpens: [] }, enrollOpts)).toThrow(
      /all 32 keyslots are in use, 2 free keyslots are needed, 0 are free/,
    );
  });

  it('fails when the JSON metadata area has no room for the token', () => {
    const h = header([slot(0)], [], { jsonUsed: 12000 });
    expect(() => planEnroll({ view: viewVolume(h), checks: [], unlockOpens: [] }, enrollOpts)).toThrow(
      /metadata area is too full: 288 of 12288 bytes free/,
    );
  });
});

describe('planRotate', () => {
  it('adds and verifies the new key before removing the old token and wiping the old slot', () => {
    const view = viewVolume(header([slot(0), slot(1)], [zToken(0, 1)]));
    const plan = planRotate({
      view,
      checks: [check(0, 1, true)],
      authorizedBy: 'zymkey-old',
      unlockOpens: [],
    });
    expect(plan.steps).toEqual([
      { op: 'add-key', slot: 2, key: 'zymkey-new', authorizedBy: 'zymkey-old' },
      { op: 'set-priority', slot: 2, priority: 'prefer' },
      { op: 'import-token', tokenId: 1, type: 'zkluks-zymkey', slot: 2 },
      { op: 'verify-key', slot: 2, key: 'zymkey-new' },
      { op: 'remove-token', tokenId: 0, type: 'zkluks-zymkey' },
      { op: 'kill-slot', slot: 1 },
    ]);
  });

  it('fails on a volume that is not enrolled and refuses on a corrupt token', () => {
    expect(() =>
      planRotate({
        view: viewVolume(header([slot(0)])),
        checks: [],
        authorizedBy: 'unlock',
        unlockOpens: [],
      }),
    ).toThrow(/not enrolled/);
    const bad: TokenFacts = { ...zToken(0, 1), json: { ...zToken(0, 1).json, sealed: '*' } };
    expect(() =>
      planRotate({
        view: viewVolume(header([slot(0), slot(1)], [bad])),
        checks: [],
        authorizedBy: 'unlock',
        unlockOpens: [],
      }),
    ).toThrow(RefusedError);
  });

  it('needs a passphrase when the current Zymkey key does not open its slot', () => {
    const view = viewVolume(header([slot(0), slot(1)], [zToken(0, 1)]));
    let error: unknown;
    try {
      planRotate({ view, checks: [check(0, 1, false)], authorizedBy: 'zymkey-old', unlockOpens: [] });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({
      message: expect.stringMatching(/cannot authorize/),
      hint: expect.stringMatching(/--unlock-key-file/),
    });
  });
});

describe('planRemove and planRecoveryRemove: never leave a volume without a way in without the Zymkey', () => {
  it('removes the token before wiping the slot when a passphrase given opens a slot that remains', () => {
    const plan = planRemove(viewVolume(header([slot(0), slot(1)], [zToken(0, 1)])), noConsent, [], [0]);
    expect(plan.steps).toEqual([
      { op: 'remove-token', tokenId: 0, type: 'zkluks-zymkey' },
      { op: 'kill-slot', slot: 1 },
    ]);
  });

  it('refuses (exit 3) to remove the last way in, stating the rule', () => {
    const view = viewVolume(
      header(
        [slot(1), slot(2)],
        [zToken(0, 1), { id: 1, type: 'clevis', keyslots: [2], json: { type: 'clevis', keyslots: ['2'] } }],
      ),
    );
    let error: unknown;
    try {
      planRemove(view, noConsent);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RefusedError);
    expect((error as RefusedError).exitCode).toBe(3);
    expect((error as RefusedError).message).toMatch(
      /never leaves a volume without a way in that does not need the Zymkey/,
    );
    expect(() => planRemove(view, { lockMeOut: true, yes: false })).toThrow(RefusedError);
    expect(planRemove(view, { lockMeOut: true, yes: true }).steps).toHaveLength(2);
  });

  it('refuses to remove the recovery key when it is the only way in without the Zymkey', () => {
    const view = viewVolume(header([slot(1), slot(2)], [zToken(0, 1), rToken(1, 2)]));
    expect(() => planRecoveryRemove(view, noConsent)).toThrow(RefusedError);
    const withPassphrase = viewVolume(header([slot(0), slot(1), slot(2)], [zToken(0, 1), rToken(1, 2)]));
    expect(planRecoveryRemove(withPassphrase, noConsent, [0]).steps).toEqual([
      { op: 'remove-token', tokenId: 1, type: 'zkluks-recovery' },
      { op: 'kill-slot', slot: 2 },
    ]);
  });

  it('says there is nothing to remove on a volume without our tokens', () => {
    expect(planRemove(viewVolume(header([slot(0)])), noConsent).unchanged).toMatch(/nothing to remove/);
  });
});

describe('planRecoveryAdd', () => {
  it('adds, tokens and verifies a recovery key authorized by the Zymkey, with an escrow recipient', () => {
    const view = viewVolume(header([slot(0), slot(1)], [zToken(0, 1)]));
    const plan = planRecoveryAdd(
      { view, authorizedBy: 'zymkey-old', unlockOpens: [] },
      { force: false, escrow: 'age1x' },
    );
    expect(plan.escrowRecipient).toBe('age1x');
    expect(plan.steps).toEqual([
      { op: 'add-key', slot: 2, key: 'recovery-new', authorizedBy: 'zymkey-old' },
      { op: 'import-token', tokenId: 1, type: 'zkluks-recovery', slot: 2 },
      { op: 'verify-key', slot: 2, key: 'recovery-new' },
    ]);
  });

  it('keeps an existing recovery key unless --force, then replaces it after verifying the new one', () => {
    const view = viewVolume(header([slot(0), slot(3)], [rToken(2, 3)]));
    expect(
      planRecoveryAdd({ view, authorizedBy: 'unlock', unlockOpens: [] }, { force: false, escrow: null })
        .unchanged,
    ).toMatch(/already has a recovery key in keyslot 3/);
    const plan = planRecoveryAdd(
      { view, authorizedBy: 'unlock', unlockOpens: [] },
      { force: true, escrow: null },
    );
    expect(plan.steps.slice(-2)).toEqual([
      { op: 'remove-token', tokenId: 2, type: 'zkluks-recovery' },
      { op: 'kill-slot', slot: 3 },
    ]);
  });

  it('fails when no keyslot is free', () => {
    const full = header(Array.from({ length: 32 }, (_, i) => slot(i)));
    expect(() =>
      planRecoveryAdd(
        { view: viewVolume(full), authorizedBy: 'unlock', unlockOpens: [] },
        { force: false, escrow: null },
      ),
    ).toThrow(ZkluksError);
  });
});

describe('viewVolume', () => {
  it('classifies zymkey, recovery, unknown and other-token slots and reports broken zkluks tokens', () => {
    const corrupt: TokenFacts = {
      id: 5,
      type: 'zkluks-zymkey',
      keyslots: [4],
      json: { type: 'zkluks-zymkey', keyslots: ['4'], version: 1 },
    };
    const view = viewVolume(
      header(
        [slot(0, 'argon2id'), slot(1), slot(2), slot(3), slot(4)],
        [zToken(0, 1), rToken(1, 2), { id: 2, type: 'systemd-tpm2', keyslots: [3], json: {} }, corrupt],
      ),
    );
    expect(view.slots.map((s) => [s.id, s.kind])).toEqual([
      [0, 'unknown'],
      [1, 'zymkey'],
      [2, 'recovery'],
      [3, 'other-token'],
      [4, 'zymkey'],
    ]);
    expect(view.problems).toMatchObject([{ tokenId: 5, kind: 'corrupt', slot: 4 }]);
  });
});

describe('slotsToWipe: a keyslot is wiped only when it is the one its token was made for', () => {
  /** A token naming `s` that recorded another slot's salt (copied), or none (unrecorded). */
  const retarget = (t: TokenFacts, s: number, salt: string | undefined): TokenFacts => {
    const json: Record<string, unknown> = { ...t.json, keyslots: [String(s)] };
    if (salt === undefined) delete json.keyslot_salt;
    else json.keyslot_salt = salt;
    return { ...t, keyslots: [s], json };
  };
  // 0 passphrase with a zkluks-zymkey token copied onto it (token 2), 1 Zymkey, 2 recovery.
  const copiedOntoPassphrase = () =>
    viewVolume(
      header([slot(0), slot(1), slot(2)], [zToken(0, 1), rToken(1, 2), retarget(zToken(2, 0), 0, saltOf(9))]),
    );

  it('a slot named only by a token made for another slot is unverified, and never counts as a way in', () => {
    const view = copiedOntoPassphrase();
    expect(view.slots.map((s) => s.kind)).toEqual(['unverified', 'zymkey', 'recovery']);
    expect(() => planRecoveryRemove(view, noConsent)).toThrow(
      /no keyslot proven to open without the Zymkey \(keyslot 0 is named by zkluks tokens made for another keyslot/,
    );
    try {
      planRecoveryRemove(view, noConsent);
    } catch (error) {
      expect((error as RefusedError).hint).toMatch(/cryptsetup token remove --token-id 2 'v.img'/);
    }
  });

  it('remove: the copied token whose key the Zymkey shows does not open slot 0 goes; slot 0 stays', () => {
    const plan = planRemove(copiedOntoPassphrase(), noConsent, [check(0, 1, true), check(2, 0, false)]);
    expect(plan.steps).toEqual([
      { op: 'remove-token', tokenId: 0, type: 'zkluks-zymkey' },
      { op: 'remove-token', tokenId: 2, type: 'zkluks-zymkey' },
      { op: 'kill-slot', slot: 1 },
    ]);
    expect(plan.notes.join('\n')).toMatch(/keyslot 0 is kept: zkluks-zymkey token 2 was not made for it/);
  });

  it('remove is refused when neither the salt nor the Zymkey can tell whose slot it is', () => {
    const unavailable: ZymkeyCheck = {
      ...check(2, 0, false),
      reason: 'zymkey-unavailable',
      zymkeyReason: 'unreachable',
    };
    for (const checks of [[], [unavailable]]) {
      expect(() => planRemove(copiedOntoPassphrase(), noConsent, checks)).toThrow(
        /cannot tell whether keyslot 0 \(zkluks-zymkey token 2\) holds the Zymkey-sealed key/,
      );
    }
  });

  it('a slot whose salt changed but whose key the Zymkey still opens (re-keyed with luksConvertKey) is wiped', () => {
    const view = viewVolume(header([slot(0), slot(1)], [retarget(zToken(0, 1), 1, saltOf(8))]));
    expect(view.slots.map((s) => s.kind)).toEqual(['unknown', 'unverified']);
    expect(planRemove(view, noConsent, [check(0, 1, true)], [0]).steps.at(-1)).toEqual({
      op: 'kill-slot',
      slot: 1,
    });
  });

  it('one token made for the slot is enough, whatever copied tokens name it too', () => {
    const view = viewVolume(header([slot(0), slot(1)], [retarget(rToken(0, 1), 1, saltOf(5)), rToken(5, 1)]));
    expect(view.slots.map((s) => s.kind)).toEqual(['unknown', 'recovery']);
    const plan = planRecoveryAdd(
      { view, authorizedBy: 'unlock', unlockOpens: [] },
      { force: true, escrow: null },
    );
    expect(plan.steps.filter((s) => s.op === 'kill-slot')).toEqual([{ op: 'kill-slot', slot: 1 }]);
  });

  it('a copied zkluks-recovery token: the slot it names is kept, the genuine recovery slot wiped', () => {
    const view = viewVolume(
      header([slot(0), slot(2), slot(4)], [rToken(1, 2), retarget(rToken(3, 4), 4, saltOf(7))]),
    );
    const plan = planRecoveryRemove(view, noConsent, [0]);
    expect(plan.steps.filter((s) => s.op === 'kill-slot')).toEqual([{ op: 'kill-slot', slot: 2 }]);
    expect(plan.steps.filter((s) => s.op === 'remove-token')).toHaveLength(2);
    expect(plan.notes.join('\n')).toMatch(/keyslot 4 is kept: zkluks-recovery token 3 was not made for it/);
  });

  it('a token that records no salt: its slot goes once the unsealed key opens it, stays if the key is rejected', () => {
    const view = viewVolume(header([slot(0), slot(1)], [retarget(zToken(0, 1), 1, undefined)]));
    expect(view.zymkey[0]?.match).toBe('unrecorded');
    expect(view.slots.map((s) => s.kind)).toEqual(['unknown', 'zymkey']);
    const kept = planRemove(view, noConsent, [check(0, 1, false)], [0]);
    expect(kept.steps).toEqual([{ op: 'remove-token', tokenId: 0, type: 'zkluks-zymkey' }]);
    expect(kept.notes.join('\n')).toMatch(
      /keyslot 1 is kept: .*no keyslot salt is recorded.*luksKillSlot 'v.img' 1/,
    );
    const rotation = planRotate({
      view,
      checks: [check(0, 1, true)],
      authorizedBy: 'zymkey-old',
      unlockOpens: [],
    });
    expect(rotation.steps.at(-1)).toEqual({ op: 'kill-slot', slot: 1 });
  });

  it('a corrupt token: its slot goes if the salt it still records matches; otherwise remove is refused', () => {
    const corrupt = (salt: string): TokenFacts => ({
      id: 4,
      type: 'zkluks-zymkey',
      keyslots: [1],
      json: { type: 'zkluks-zymkey', keyslots: ['1'], version: 1, keyslot_salt: salt },
    });
    const own = planRemove(viewVolume(header([slot(0), slot(1)], [corrupt(saltOf(1))])), noConsent, [], [0]);
    expect(own.steps.at(-1)).toEqual({ op: 'kill-slot', slot: 1 });
    expect(() =>
      planRemove(viewVolume(header([slot(0), slot(1)], [corrupt(saltOf(0))])), noConsent, [], [0]),
    ).toThrow(RefusedError);
  });

  it('a copied recovery token is not a recovery key: enroll still makes one, recovery add is not a no-op', () => {
    const view = viewVolume(header([slot(0)], [retarget(rToken(4, 0), 0, saltOf(6))]));
    const enroll = planEnroll({ view, checks: [], unlockOpens: [0] }, enrollOpts);
    expect(enroll.generates).toEqual(['zymkey-new', 'recovery-new']);
    const add = planRecoveryAdd(
      { view, authorizedBy: 'unlock', unlockOpens: [0] },
      { force: false, escrow: null },
    );
    expect(add.unchanged).toBeNull();
  });

  it('the lock-out rule judges the volume as it will be: a passphrase slot whose copied token goes counts', () => {
    const view = viewVolume(header([slot(0), slot(1)], [zToken(0, 1), retarget(zToken(2, 0), 0, saltOf(9))]));
    expect(view.slots.map((s) => s.kind)).toEqual(['unverified', 'zymkey']);
    const plan = planEnroll(
      { view, checks: [check(0, 1, true), check(2, 0, false)], unlockOpens: [0] },
      { force: true, recoveryKey: false, escrow: null },
    );
    expect(plan.steps.filter((s) => s.op === 'kill-slot')).toEqual([{ op: 'kill-slot', slot: 1 }]);
    expect(plan.steps.filter((s) => s.op === 'remove-token').map((s) => 'tokenId' in s && s.tokenId)).toEqual(
      [0, 2],
    );
  });

  it("a slot another tool's token also uses is never wiped", () => {
    const view = viewVolume(
      header([slot(0), slot(1)], [zToken(0, 1), { id: 3, type: 'systemd-tpm2', keyslots: [1], json: {} }]),
    );
    const plan = planRemove(view, noConsent, [], [0]);
    expect(plan.steps).toEqual([{ op: 'remove-token', tokenId: 0, type: 'zkluks-zymkey' }]);
    expect(plan.notes.join('\n')).toMatch(/keyslot 1 is kept: systemd-tpm2 token 3 also uses it/);
  });
});

describe('ways in are proven, not guessed', () => {
  it('a keyslot without a token is unknown and never counts as a way in; a key given that opens it does', () => {
    // A rotate killed between removing the old token and wiping its slot left slot 1 tokenless.
    const view = viewVolume(header([slot(0), slot(1), slot(2), slot(3)], [zToken(3, 3), rToken(1, 2)]));
    expect(view.slots.map((s) => [s.id, s.kind])).toEqual([
      [0, 'unknown'],
      [1, 'unknown'],
      [2, 'recovery'],
      [3, 'zymkey'],
    ]);
    let error: unknown;
    try {
      planRecoveryRemove(view, noConsent);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(NoWayInError);
    expect((error as NoWayInError).exitCode).toBe(3);
    expect((error as NoWayInError).provable).toEqual([0, 1]);
    expect((error as NoWayInError).message).toMatch(
      /keyslot 0, 1 have no token, so what opens them is not proven/,
    );
    expect((error as NoWayInError).hint).toMatch(/--unlock-key-file FILE/);
    expect(planRecoveryRemove(view, noConsent, [0]).steps.at(-1)).toEqual({ op: 'kill-slot', slot: 2 });
  });

  it('a recovery token that records no salt does not prove its slot', () => {
    const unrecorded: TokenFacts = {
      ...rToken(1, 2),
      json: recoveryToken({ keyslot: 2, created }) as unknown as Record<string, unknown>,
    };
    const view = viewVolume(header([slot(1), slot(2)], [zToken(0, 1), unrecorded]));
    expect(() => planRemove(view, noConsent)).toThrow(NoWayInError);
  });

  it('a priority-ignore slot is no way in, even when a key given opens it, and the refusal says so', () => {
    const ignored = { ...slot(0), priority: 'ignore' as const };
    const view = viewVolume(header([ignored, slot(1), slot(2)], [zToken(0, 1), rToken(1, 2)]));
    expect(() => planRecoveryRemove(view, noConsent, [0])).toThrow(
      /keyslot 0 has priority ignore, so the boot prompt never tries it/,
    );
    const ignoredRecovery = { ...slot(2), priority: 'ignore' as const };
    const onlyRecovery = viewVolume(header([slot(1), ignoredRecovery], [zToken(0, 1), rToken(1, 2)]));
    expect(() => planRemove(onlyRecovery, noConsent)).toThrow(NoWayInError);
  });
});
