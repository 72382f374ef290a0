// A change stopped at any external-command boundary (as a kill or a power cut would stop it) leaves
// its intent in the header; the next run settles it from the header alone: every key that opened the
// volume before still opens it, no token dangles and no keyslot is leaked.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { findTmpfs } from '../../src/device/tmpfs-dir.ts';
import { createRunner, type Runner } from '../../src/exec.ts';
import { readHeader, type HeaderFacts, type KeyslotFacts } from '../../src/keyslot/header.ts';
import { enroll, recoveryRemove, repair, rotate, verifyZymkey } from '../../src/keyslot/operations.ts';
import {
  findPending,
  PENDING_TOKEN_TYPE,
  pendingSlots,
  type PendingIntent,
} from '../../src/keyslot/pending.ts';
import { planSettle } from '../../src/keyslot/settle.ts';
import { viewVolume } from '../../src/keyslot/volume-view.ts';
import { luksImage, opens } from '../helpers/luks.ts';
import { keyslotDeps } from './sim-fixture.ts';

const real = createRunner();

/** Runs cryptsetup calls up to and including the `at`-th (0-based), then never answers again. */
function stopAfter(at: number): { runner: Runner; stopped: Promise<void>; calls: () => number } {
  let n = 0;
  let onStop = () => {};
  const stopped = new Promise<void>((resolve) => (onStop = resolve));
  const runner: Runner = async (file, args, options) => {
    if (file !== 'cryptsetup') return real(file, args, options);
    const index = n++;
    if (index > at) return new Promise(() => {});
    const result = await real(file, args, options);
    if (index === at) {
      onStop();
      return new Promise(() => {});
    }
    return result;
  };
  return { runner, stopped, calls: () => n };
}

describe('rotate stopped after each cryptsetup call, then settled by the next run', () => {
  it('keeps every way in, leaks no keyslot, leaves no token dangling', async () => {
    const tmpfs = await mkdtemp(join(findTmpfs(), 'zkluks-settle-test-'));
    onTestFinished(() => rm(tmpfs, { recursive: true, force: true }));
    // One enrolled image; each trial works on a copy of it (same keys, same Zymkey).
    const template = await luksImage();
    const deps = { ...(await keyslotDeps()), tmpfs: [tmpfs] };
    const enrolled = await enroll(deps, template.path, {
      force: false,
      recoveryKey: true,
      escrow: null,
      dryRun: false,
      unlock: Buffer.from(template.passphrase),
    });
    const recoveryKey = enrolled.applied?.recoveryKey ?? '';
    let copies = 0;
    const setup = async () => {
      const path = join(template.dir, `copy-${copies++}.img`);
      await copyFile(template.path, path);
      return { img: { ...template, path }, deps, recoveryKey };
    };
    const clean = await setup();
    const counting = stopAfter(Number.MAX_SAFE_INTEGER);
    await rotate({ ...clean.deps, runner: counting.runner }, clean.img.path, { dryRun: false });
    const total = counting.calls();
    expect(total).toBeGreaterThan(8);

    let interrupted = 0;
    for (let at = 0; at < total; at++) {
      const { img } = await setup();
      const stop = stopAfter(at);
      void rotate({ ...deps, runner: stop.runner, lockDir: await mkdtemp(join(tmpfs, 'lock-')) }, img.path, {
        dryRun: false,
      });
      await stop.stopped;
      const during = await readHeader(real, img.path);
      if (findPending(during).length > 0) {
        interrupted++;
        const touched = pendingSlots(findPending(during)[0]?.intent as PendingIntent);
        const kinds = viewVolume(during)
          .slots.filter((s) => touched.includes(s.id))
          .map((s) => s.kind);
        expect(kinds.length, `call ${at}`).toBeGreaterThan(0);
        expect(new Set(kinds), `call ${at}`).toEqual(new Set(['pending']));
      }
      // The next run (any zkluks change; repair here) settles from the header alone.
      const settled = await repair(deps, img.path, false);
      const after = await readHeader(real, img.path);
      expect(findPending(after), `call ${at}`).toEqual([]);
      expect(settled.plans.length, `call ${at}`).toBe(findPending(during).length);
      expect(await opens(img.path, img.passphrase, 0), `call ${at}: passphrase`).toBe(true);
      expect(await opens(img.path, recoveryKey), `call ${at}: recovery key`).toBe(true);
      expect((await verifyZymkey(deps, img.path)).ok, `call ${at}: Zymkey`).toBe(true);
      expect(after.keyslots, `call ${at}: one Zymkey slot, no leaked slot`).toHaveLength(3);
      expect(
        after.tokens.filter((t) => t.keyslots.length === 0),
        `call ${at}`,
      ).toEqual([]);
      expect(viewVolume(after).problems, `call ${at}`).toEqual([]);
    }
    expect(interrupted).toBeGreaterThan(total / 2);
  }, 600_000);
});

describe('after a rotate killed before its luksKillSlot', () => {
  it('recovery remove finishes the rotate first (the old Zymkey slot goes) and needs a key to prove slot 0', async () => {
    const img = await luksImage();
    const deps = await keyslotDeps();
    await enroll(deps, img.path, {
      force: false,
      recoveryKey: true,
      escrow: null,
      dryRun: false,
      unlock: Buffer.from(img.passphrase),
    });
    const stop = stopAfter(Number.MAX_SAFE_INTEGER);
    // Stop right after the old token is removed (the call before luksKillSlot).
    let tokenRemoved = -1;
    const probe: Runner = async (file, args, options) => {
      const r = await real(file, args, options);
      if (file === 'cryptsetup' && args[0] === 'token' && args[1] === 'remove' && tokenRemoved < 0) {
        tokenRemoved = 1;
        return new Promise(() => {});
      }
      return r;
    };
    void stop;
    void rotate({ ...deps, runner: probe, lockDir: await mkdtemp(join(img.dir, 'lock-')) }, img.path, {
      dryRun: false,
    });
    for (let i = 0; i < 600 && tokenRemoved < 0; i++) await new Promise((r) => setTimeout(r, 50));
    const during = await readHeader(real, img.path);
    expect(during.keyslots).toHaveLength(4);
    expect(findPending(during)[0]?.intent?.phase).toBe('remove');
    // The orphaned old Zymkey slot is not a passphrase: it is pending now, and unknown were the record lost.
    expect(viewVolume(during).slots.find((s) => s.id === 1)?.kind).toBe('pending');
    expect(
      viewVolume({
        ...during,
        tokens: during.tokens.filter((t) => t.type !== PENDING_TOKEN_TYPE),
      }).slots.find((s) => s.id === 1)?.kind,
    ).toBe('unknown');
    await expect(
      recoveryRemove(deps, img.path, { dryRun: false, lockMeOut: false, yes: false }),
    ).rejects.toMatchObject({ exitCode: 3 });
    const after = await readHeader(real, img.path);
    expect(after.keyslots.map((k) => k.id)).toEqual([0, 2, 3]);
    expect(findPending(after)).toEqual([]);
    expect((await verifyZymkey(deps, img.path)).ok).toBe(true);
  }, 120_000);
});

describe('planSettle', () => {
  const salt = (id: number) => Buffer.from(`salt ${id}`).toString('base64');
  const slot = (id: number, over: Partial<KeyslotFacts> = {}): KeyslotFacts => ({
    id,
    type: 'luks2',
    kdf: 'pbkdf2',
    iterations: 1000,
    memoryKiB: null,
    priority: 'normal',
    keySize: 64,
    salt: salt(id),
    ...over,
  });
  const intent = (over: Partial<PendingIntent>): PendingIntent => ({
    type: PENDING_TOKEN_TYPE,
    keyslots: [],
    version: 1,
    operation: 'rotate',
    phase: 'add',
    created: '2026-01-01T00:00:00.000Z',
    added: { slots: [{ slot: 3, salt: salt(3) }], tokens: [2] },
    removed: { tokens: [{ id: 0, type: 'zkluks-zymkey' }], slots: [{ slot: 1, salt: salt(1) }] },
    ...over,
  });
  const header = (
    keyslots: KeyslotFacts[],
    i: PendingIntent,
    extra: HeaderFacts['tokens'] = [],
  ): HeaderFacts => ({
    volume: 'v.img',
    version: 2,
    uuid: 'u',
    keyslots,
    tokens: [
      { id: 0, type: 'zkluks-zymkey', keyslots: [1], json: {} },
      { id: 2, type: 'zkluks-zymkey', keyslots: [3], json: {} },
      { id: 9, type: PENDING_TOKEN_TYPE, keyslots: [], json: i as unknown as Record<string, unknown> },
      ...extra,
    ],
    freeKeyslots: 28,
    jsonSize: 12288,
    jsonUsed: 2000,
  });
  const settle = (h: HeaderFacts) => planSettle(h, findPending(h)[0] as never);

  it('phase add rolls back: the added token and slot go, then the record; nothing old is touched', () => {
    const plan = settle(header([slot(0), slot(1), slot(3)], intent({})));
    expect(plan.action).toBe('roll-back');
    expect(plan.steps).toEqual([
      { op: 'remove-token', tokenId: 2, type: 'zkluks-zymkey' },
      { op: 'kill-slot', slot: 3 },
      { op: 'remove-token', tokenId: 9, type: PENDING_TOKEN_TYPE },
    ]);
  });

  it('phase remove finishes: the old token and slot go, then the record', () => {
    const plan = settle(header([slot(0), slot(1), slot(3)], intent({ phase: 'remove' })));
    expect(plan.action).toBe('finish');
    expect(plan.steps).toEqual([
      { op: 'remove-token', tokenId: 0, type: 'zkluks-zymkey' },
      { op: 'kill-slot', slot: 1 },
      { op: 'remove-token', tokenId: 9, type: PENDING_TOKEN_TYPE },
    ]);
  });

  it('never wipes a slot whose salt changed, or one another tool’s token uses', () => {
    const rekeyed = settle(
      header([slot(0), slot(1, { salt: salt(7) }), slot(3)], intent({ phase: 'remove' })),
    );
    expect(rekeyed.steps.filter((s) => s.op === 'kill-slot')).toEqual([]);
    expect(rekeyed.notes.join('\n')).toMatch(/keyslot 1 is kept: it is not the keyslot/);
    const shared = settle(
      header([slot(0), slot(1), slot(3)], intent({ phase: 'remove' }), [
        { id: 4, type: 'systemd-tpm2', keyslots: [1], json: {} },
      ]),
    );
    expect(shared.steps.filter((s) => s.op === 'kill-slot')).toEqual([]);
    expect(shared.notes.join('\n')).toMatch(/keyslot 1 is kept: systemd-tpm2 token 4 uses it/);
    const noSaltYet = intent({ added: { slots: [{ slot: 3, salt: null }], tokens: [2] } });
    expect(
      settle(header([slot(0), slot(1), slot(3, { kdf: 'argon2id' })], noSaltYet)).steps,
    ).not.toContainEqual({
      op: 'kill-slot',
      slot: 3,
    });
  });

  it('refuses an unreadable record, naming the token to inspect', () => {
    const h = header([slot(0)], { ...intent({}), phase: 'sideways' } as unknown as PendingIntent);
    expect(() => settle(h)).toThrow(/zkluks-pending token 9 that cannot be read \(phase is not/);
  });
});
