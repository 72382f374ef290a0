// Each keyslot operation end to end: take the volume's lock, read the header, gather the facts the
// planner needs (does the passphrase open, does the sealed key still open its slot), plan, and —
// unless it is a dry run or there is nothing to do — apply. Also the read-only checks: verify the
// Zymkey slot, verify a recovery key, open the escrowed recovery key.
import type { ZymkeyPort } from '../device/port.ts';
import { UsageError, ZkluksError, ZymkeyUnavailableError } from '../errors.ts';
import type { Runner } from '../exec.ts';
import { applyPlan, type ApplyHooks, type ApplyResult } from './apply.ts';
import { keyOpensSlot } from './cryptsetup.ts';
import { openAgeEscrow } from './escrow.ts';
import { readHeader, type HeaderFacts } from './header.ts';
import { VERBS, type LockOutConsent, type Operation, type Plan } from './plan.ts';
import { planEnroll, type EnrollOptions } from './plan-enroll.ts';
import { planRecoveryAdd, planRecoveryRemove } from './plan-recovery.ts';
import { planRemove } from './plan-remove.ts';
import { planRotate } from './plan-rotate.ts';
import { normalizeRecoveryKey } from './recovery-key.ts';
import { sealedKey, ZYMKEY_TOKEN_TYPE } from './token.ts';
import { viewVolume, type VolumeView } from './volume-view.ts';
import { withVolumeLock, DEFAULT_LOCK_DIR } from './volume-lock.ts';
import type { ZymkeyCheck } from './zymkey-check.ts';

export interface KeyslotDeps {
  runner: Runner;
  /** Opens the Zymkey port (openZymkey from src/device/open.ts); called only when needed. */
  zymkey: () => ZymkeyPort;
  signal?: AbortSignal;
  lockDir?: string;
  tmpfs?: readonly string[];
  now?: () => Date;
}

export interface OperationResult {
  plan: Plan;
  /** Null for a dry run or when there was nothing to do. */
  applied: ApplyResult | null;
}

interface Checked {
  checks: ZymkeyCheck[];
  /** Unsealed keys of the tokens that open their slot, by token id. */
  keys: Map<number, Buffer>;
}

/** Unseal each valid zkluks-zymkey token and test it against its keyslot. */
export async function checkZymkeyTokens(deps: KeyslotDeps, view: VolumeView): Promise<Checked> {
  const checks: ZymkeyCheck[] = [];
  const keys = new Map<number, Buffer>();
  let port: ZymkeyPort | null = null;
  for (const z of view.zymkey) {
    const base = { tokenId: z.tokenId, slot: z.slot };
    let key: Buffer;
    try {
      port ??= deps.zymkey();
      key = await port.unseal(sealedKey(z.token));
    } catch (error) {
      if (!(error instanceof ZymkeyUnavailableError)) throw error;
      checks.push({
        ...base,
        opens: false,
        reason: 'zymkey-unavailable',
        zymkeyReason: error.reason,
        detail: error.message,
        ...(error.hint ? { hint: error.hint } : {}),
      });
      continue;
    }
    if (await keyOpensSlot(deps.runner, view.header.volume, key, z.slot)) {
      keys.set(z.tokenId, key);
      checks.push({
        ...base,
        opens: true,
        reason: 'ok',
        zymkeyReason: null,
        detail: `the unsealed key opens keyslot ${z.slot}`,
      });
    } else {
      key.fill(0);
      checks.push({
        ...base,
        opens: false,
        reason: 'key-rejected',
        zymkeyReason: null,
        detail: `the Zymkey unsealed token ${z.tokenId}, but its key does not open keyslot ${z.slot}${z.match === 'mismatch' ? ': the token was not made for that keyslot (its recorded keyslot salt differs: a token copied from another volume, or a keyslot replaced since)' : ' (a token copied from another volume, or a replaced keyslot)'}`,
      });
    }
  }
  return { checks, keys };
}

/** The checks alone; every unsealed key is wiped at once. */
async function zymkeyChecksOnly(deps: KeyslotDeps, view: VolumeView): Promise<ZymkeyCheck[]> {
  const { checks, keys } = await checkZymkeyTokens(deps, view);
  for (const k of keys.values()) k.fill(0);
  return checks;
}

/** The checks, and the unsealed key of the first token that opens its slot (the others are wiped). */
async function workingZymkeyKey(
  deps: KeyslotDeps,
  view: VolumeView,
): Promise<{ checks: ZymkeyCheck[]; key: Buffer | undefined }> {
  const { checks, keys } = await checkZymkeyTokens(deps, view);
  const working = checks.find((c) => c.opens)?.tokenId ?? null;
  for (const [id, k] of keys) if (id !== working) k.fill(0);
  return { checks, key: working === null ? undefined : keys.get(working) };
}

async function slotsOpenedBy(
  deps: KeyslotDeps,
  volume: string,
  key: Buffer | undefined,
  slots: number[],
): Promise<number[]> {
  if (!key) return [];
  const opened: number[] = [];
  for (const slot of slots) if (await keyOpensSlot(deps.runner, volume, key, slot)) opened.push(slot);
  return opened;
}

async function requireKeyOpens(
  deps: KeyslotDeps,
  operation: Operation,
  volume: string,
  key: Buffer,
): Promise<void> {
  if (await keyOpensSlot(deps.runner, volume, key)) return;
  // A key file made with echo ends with a newline, which cryptsetup --key-file (and zkluks) read
  // as part of the key: say so when the key without it would open.
  const newline = /\r?\n$/.exec(key.toString('latin1'))?.[0].length ?? 0;
  if (newline > 0 && (await keyOpensSlot(deps.runner, volume, key.subarray(0, key.length - newline)))) {
    throw new ZkluksError(
      `Failed to ${VERBS[operation]} '${volume}': the key file ends with a newline, which is read as part of the key (as cryptsetup --key-file does); without the newline it opens the volume`,
      {
        hint: `remove the newline: truncate -s -${newline} FILE (make key files with printf %s, not echo), then run this again`,
      },
    );
  }
  throw new ZkluksError(
    `Failed to ${VERBS[operation]} '${volume}': wrong passphrase: the key given does not open any keyslot${newline > 0 ? ' (with or without the newline it ends with)' : ''}`,
    {
      hint: `check the key file exactly as zkluks reads it: cryptsetup open --test-passphrase --key-file FILE '${volume}'`,
    },
  );
}

async function run(
  deps: KeyslotDeps,
  volume: string,
  dryRun: boolean,
  plan: (header: HeaderFacts) => Promise<{ plan: Plan; unlock?: Buffer; zymkeyOld?: Buffer }>,
  hooks: ApplyHooks,
): Promise<OperationResult> {
  return withVolumeLock(
    volume,
    async () => {
      const header = await readHeader(deps.runner, volume);
      const planned = await plan(header);
      try {
        if (dryRun || planned.plan.unchanged) return { plan: planned.plan, applied: null };
        const applied = await applyPlan(
          planned.plan,
          header,
          { runner: deps.runner, zymkey: deps.zymkey, signal: deps.signal, tmpfs: deps.tmpfs, now: deps.now },
          { unlock: planned.unlock, zymkeyOld: planned.zymkeyOld },
          hooks,
        );
        return { plan: planned.plan, applied };
      } finally {
        planned.zymkeyOld?.fill(0);
      }
    },
    deps.lockDir ?? DEFAULT_LOCK_DIR,
  );
}

function candidateSlots(view: VolumeView, type: string): number[] {
  const ours = type === ZYMKEY_TOKEN_TYPE ? view.zymkey : view.recovery;
  return [
    ...ours.map((t) => t.slot),
    ...view.problems.filter((p) => p.type === type).map((p) => p.slot),
  ].filter((s): s is number => s !== null && view.header.keyslots.some((k) => k.id === s));
}

export interface EnrollRequest extends EnrollOptions {
  /** The existing passphrase (or key) that authorizes the change. */
  unlock: Buffer;
  dryRun: boolean;
}

export async function enroll(
  deps: KeyslotDeps,
  volume: string,
  request: EnrollRequest,
  hooks: ApplyHooks = {},
) {
  return run(
    deps,
    volume,
    request.dryRun,
    async (header) => {
      const view = viewVolume(header);
      await requireKeyOpens(deps, 'enroll', volume, request.unlock);
      const checks = await zymkeyChecksOnly(deps, view);
      const unlockOpens = await slotsOpenedBy(
        deps,
        volume,
        request.unlock,
        candidateSlots(view, ZYMKEY_TOKEN_TYPE),
      );
      return { plan: planEnroll({ view, checks, unlockOpens }, request), unlock: request.unlock };
    },
    hooks,
  );
}

export interface RotateRequest {
  /** A passphrase to authorize with instead of the current Zymkey key. */
  unlock?: Buffer;
  dryRun: boolean;
}

export async function rotate(deps: KeyslotDeps, volume: string, request: RotateRequest) {
  return run(
    deps,
    volume,
    request.dryRun,
    async (header) => {
      const view = viewVolume(header);
      if (request.unlock) await requireKeyOpens(deps, 'rotate', volume, request.unlock);
      const { checks, key: zymkeyOld } = await workingZymkeyKey(deps, view);
      if (!request.unlock && !zymkeyOld && view.zymkey.length > 0) {
        const unavailable = checks.find((c) => c.reason === 'zymkey-unavailable');
        if (unavailable?.zymkeyReason) {
          throw new ZymkeyUnavailableError(
            unavailable.zymkeyReason,
            `Failed to rotate the Zymkey key of '${volume}': ${unavailable.detail}`,
            {
              hint: `zkluks rotate --unlock-key-file FILE '${volume}' (a passphrase or the recovery key; - reads stdin)`,
            },
          );
        }
      }
      const unlockOpens = await slotsOpenedBy(
        deps,
        volume,
        request.unlock,
        candidateSlots(view, ZYMKEY_TOKEN_TYPE),
      );
      const plan = planRotate({
        view,
        checks,
        authorizedBy: request.unlock ? 'unlock' : 'zymkey-old',
        unlockOpens,
      });
      return { plan, unlock: request.unlock, zymkeyOld };
    },
    {},
  );
}

export interface RemoveRequest extends LockOutConsent {
  dryRun: boolean;
}

export async function remove(deps: KeyslotDeps, volume: string, request: RemoveRequest) {
  return run(
    deps,
    volume,
    request.dryRun,
    async (header) => {
      const view = viewVolume(header);
      // A token whose recorded salt does not match its slot is settled by the Zymkey: does its key
      // open the slot? (Only then: a volume whose Zymkey is gone must still be able to drop it.)
      const unsure = view.zymkey.some((z) => z.match !== 'match');
      const checks = unsure ? await zymkeyChecksOnly(deps, view) : [];
      return { plan: planRemove(view, request, checks) };
    },
    {},
  );
}

export interface RecoveryAddRequest {
  unlock?: Buffer;
  /** Asked for a passphrase when neither `unlock` nor the Zymkey can authorize. */
  askUnlock?: () => Promise<Buffer>;
  force: boolean;
  /** The age recipient; null: none; undefined: keep the recipient of the key it replaces. */
  escrow: string | null | undefined;
  dryRun: boolean;
}

export async function recoveryAdd(
  deps: KeyslotDeps,
  volume: string,
  request: RecoveryAddRequest,
  hooks: ApplyHooks = {},
) {
  return run(
    deps,
    volume,
    request.dryRun,
    async (header) => {
      const view = viewVolume(header);
      let unlock = request.unlock;
      let zymkeyOld: Buffer | undefined;
      const hasRecovery = view.recovery.some((r) => r.match !== 'mismatch');
      if (!unlock && !(hasRecovery && !request.force)) {
        const working = await workingZymkeyKey(deps, view);
        zymkeyOld = working.key;
        if (!zymkeyOld) {
          if (!request.askUnlock) {
            throw new UsageError(
              `Failed to add a recovery key to '${volume}': a key is needed to authorize it and the Zymkey cannot (${working.checks.map((c) => c.detail).join('; ') || 'not enrolled'})`,
              { hint: `zkluks recovery add --unlock-key-file FILE '${volume}' (- reads stdin)` },
            );
          }
          unlock = await request.askUnlock();
        }
      }
      if (unlock) await requireKeyOpens(deps, 'recovery-add', volume, unlock);
      const unlockOpens = await slotsOpenedBy(deps, volume, unlock, candidateSlots(view, 'zkluks-recovery'));
      // Replacing a recovery key keeps what the admin set up: its escrow recipient, unless told.
      const kept =
        request.escrow === undefined
          ? (view.recovery.find((r) => r.match !== 'mismatch' && r.token.escrow)?.token.escrow?.recipient ??
            null)
          : null;
      const plan = planRecoveryAdd(
        { view, authorizedBy: unlock ? 'unlock' : 'zymkey-old', unlockOpens },
        { force: request.force, escrow: request.escrow ?? kept },
      );
      if (kept && plan.unchanged === null) {
        plan.notes.push(
          `the new recovery key is escrowed to ${kept}, as the one it replaces was (--no-escrow drops the escrow, --escrow RECIPIENT changes it)`,
        );
      }
      return { plan, unlock, zymkeyOld };
    },
    hooks,
  );
}

export async function recoveryRemove(deps: KeyslotDeps, volume: string, request: RemoveRequest) {
  return run(
    deps,
    volume,
    request.dryRun,
    async (header) => ({ plan: planRecoveryRemove(viewVolume(header), request) }),
    {},
  );
}

export interface VerifyReport extends ZymkeyCheck {
  volume: string;
  ok: boolean;
  checks: ZymkeyCheck[];
}

/** Would the Zymkey slot unlock this volume at boot? Read-only: unseal, then --test-passphrase. */
export async function verifyZymkey(deps: KeyslotDeps, volume: string): Promise<VerifyReport> {
  const view = viewVolume(await readHeader(deps.runner, volume));
  const checks = await zymkeyChecksOnly(deps, view);
  const ok = checks.find((c) => c.opens);
  const problem = view.problems.find((p) => p.type === ZYMKEY_TOKEN_TYPE);
  const first: ZymkeyCheck =
    ok ??
    checks[0] ??
    (problem
      ? {
          tokenId: problem.tokenId,
          slot: problem.slot,
          opens: false,
          reason: problem.kind === 'corrupt' ? 'corrupt-token' : 'slot-gone',
          zymkeyReason: null,
          detail: problem.error.message,
        }
      : {
          tokenId: null,
          slot: null,
          opens: false,
          reason: 'no-token',
          zymkeyReason: null,
          detail: `'${volume}' has no zkluks-zymkey token: it is not enrolled`,
        });
  return { volume, ok: first.opens, ...first, checks };
}

export interface RecoveryVerifyReport {
  volume: string;
  ok: boolean;
  slot: number | null;
  tokenId: number | null;
  detail: string;
}

/** Does `key` (as typed) open the recovery keyslot? */
export async function verifyRecovery(
  deps: KeyslotDeps,
  volume: string,
  typed: string,
): Promise<RecoveryVerifyReport> {
  const view = viewVolume(await readHeader(deps.runner, volume));
  const r = view.recovery.find((x) => x.match !== 'mismatch') ?? view.recovery[0];
  if (!r) {
    return {
      volume,
      ok: false,
      slot: null,
      tokenId: null,
      detail: `'${volume}' has no zkluks-recovery token`,
    };
  }
  const key = normalizeRecoveryKey(typed) ?? typed.replace(/\r?\n$/, '');
  const ok = await keyOpensSlot(deps.runner, volume, key, r.slot);
  return {
    volume,
    ok,
    slot: r.slot,
    tokenId: r.tokenId,
    detail: ok
      ? `the recovery key opens keyslot ${r.slot}`
      : `the key given does not open recovery keyslot ${r.slot}`,
  };
}

/** Decrypt the escrowed recovery key with an age identity file. */
export async function unlockEscrow(
  deps: KeyslotDeps,
  volume: string,
  identityFile: string,
): Promise<{ key: string; slot: number }> {
  const view = viewVolume(await readHeader(deps.runner, volume));
  const r =
    view.recovery.find((x) => x.token.escrow && x.match !== 'mismatch') ??
    view.recovery.find((x) => x.token.escrow);
  if (!r?.token.escrow) {
    const problem = view.problems.find((p) => p.type === 'zkluks-recovery');
    if (problem) throw problem.error;
    throw new ZkluksError(
      `Failed to open the escrowed recovery key of '${volume}': it has no escrowed recovery key`,
      {
        hint: `zkluks recovery add --force --escrow age1… '${volume}'`,
      },
    );
  }
  return { key: await openAgeEscrow(deps.runner, r.token.escrow, identityFile), slot: r.slot };
}
