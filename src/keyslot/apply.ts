// The executor: runs a plan against the volume. Keys are made first; then the header is backed up
// (0600, in a private tmpfs directory) and the intent written into the header (a zkluks-pending
// token, phase add). The steps that add run one by one; once the new keys are verified they are
// delivered (the recovery key shown or written to its file), the intent moves to phase remove, the
// old tokens and slots go, and the intent is removed last. Any failure — a cryptsetup error, a check
// that does not hold, a signal — restores the backup and checks the header is exactly as before; a
// kill or a power cut leaves the intent, which the next run settles (settle.ts). Keys the caller
// holds go to cryptsetup on stdin only; a new key is a file only for its own luksAddKey.
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import type { ZymkeyPort } from '../device/port.ts';
import { withPrivateTmpfsDir, type PrivateDir } from '../device/tmpfs-dir.ts';
import { ZkluksError } from '../errors.ts';
import type { Runner } from '../exec.ts';
import {
  addKey,
  backupHeader,
  importToken,
  keyOpensSlot,
  killSlot,
  removeToken,
  restoreHeader,
  setPriority,
} from './cryptsetup.ts';
import { escrowToAge } from './escrow.ts';
import { readHeader, readMetadata, type HeaderFacts } from './header.ts';
import { intentOf, serializePending } from './pending.ts';
import { keyName, VERBS, type KeyRef, type Plan, type Step } from './plan.ts';
import { newRecoveryKey } from './recovery-key.ts';
import { recoveryToken, serializeToken, zymkeyToken, type AgeEscrow, type ZymkeyToken } from './token.ts';
import { freeTokenIds } from './volume-view.ts';
import { newZymkeyKey } from './zymkey-key.ts';

export interface ApplyDeps {
  runner: Runner;
  /** Opens the Zymkey; called only when the plan makes a Zymkey key. */
  zymkey: () => ZymkeyPort;
  now?: () => Date;
  /** Aborted by Ctrl-C/SIGTERM: the executor stops between steps and rolls back. */
  signal?: AbortSignal;
  /** Where the private key and backup directory may live (tmpfs). */
  tmpfs?: readonly string[];
}

/** Keys the caller already holds. */
export interface GivenKeys {
  unlock?: Buffer;
  zymkeyOld?: Buffer;
}

export interface MadeKeys {
  /** The new recovery key, to show once (null when the plan makes none). */
  recoveryKey: string | null;
}

export interface ApplyResult extends MadeKeys {
  header: HeaderFacts;
  zymkeySlot: number | null;
  recoverySlot: number | null;
  escrowRecipient: string | null;
}

export interface ApplyHooks {
  /**
   * Runs once the new keys are added and verified and before any old way in is removed: show the new
   * recovery key, or write it to its file. A failure here rolls the change back.
   */
  deliver?: (keys: MadeKeys) => Promise<void>;
}

class Interrupted extends Error {}

function checkSignal(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new Interrupted(`interrupted by ${String(signal.reason ?? 'a signal')}`);
}

/** Keyslots and tokens as comparable data. */
function shape(h: HeaderFacts): string {
  return JSON.stringify({
    uuid: h.uuid,
    keyslots: h.keyslots,
    tokens: h.tokens.map((t) => ({ id: t.id, json: t.json })),
  });
}

/** What the header must look like after the plan, or the first difference. */
export function checkOutcome(before: HeaderFacts, after: HeaderFacts, plan: Plan): string | null {
  const slots = new Set(before.keyslots.map((k) => k.id));
  const tokens = new Map(before.tokens.map((t) => [t.id, `${t.type}:${t.keyslots.join(',')}`]));
  const prefer = new Set<number>();
  for (const s of plan.steps) {
    if (s.op === 'add-key') slots.add(s.slot);
    if (s.op === 'kill-slot') slots.delete(s.slot);
    if (s.op === 'import-token') tokens.set(s.tokenId, `${s.type}:${s.slot}`);
    if (s.op === 'remove-token') tokens.delete(s.tokenId);
    if (s.op === 'set-priority') prefer.add(s.slot);
  }
  const haveSlots = after.keyslots.map((k) => k.id).sort((a, b) => a - b);
  const wantSlots = [...slots].sort((a, b) => a - b);
  if (haveSlots.join() !== wantSlots.join()) {
    return `keyslots are [${haveSlots.join(', ')}], expected [${wantSlots.join(', ')}]`;
  }
  const have = after.tokens.map((t) => `${t.id}=${t.type}:${t.keyslots.join(',')}`).sort();
  const want = [...tokens].map(([id, v]) => `${id}=${v}`).sort();
  if (have.join() !== want.join()) return `tokens are [${have.join(' ')}], expected [${want.join(' ')}]`;
  for (const slot of prefer) {
    if (after.keyslots.find((k) => k.id === slot)?.priority !== 'prefer')
      return `keyslot ${slot} is not priority prefer`;
  }
  return null;
}

const REMOVING: ReadonlySet<Step['op']> = new Set(['remove-token', 'kill-slot']);

export async function applyPlan(
  plan: Plan,
  before: HeaderFacts,
  deps: ApplyDeps,
  given: GivenKeys = {},
  hooks: ApplyHooks = {},
): Promise<ApplyResult> {
  const { runner, signal } = deps;
  const volume = plan.volume;
  const verb = VERBS[plan.operation];
  const now = deps.now ?? (() => new Date());
  const keys = new Map<KeyRef, Buffer>();
  if (given.unlock) keys.set('unlock', given.unlock);
  if (given.zymkeyOld) keys.set('zymkey-old', given.zymkeyOld);
  let recoveryKey: string | null = null;
  let sealedToken: ZymkeyToken | null = null;
  let escrow: AgeEscrow | undefined;
  const firstRemoval = plan.steps.findIndex((s) => REMOVING.has(s.op));
  const adding = firstRemoval < 0 ? plan.steps : plan.steps.slice(0, firstRemoval);
  const removing = firstRemoval < 0 ? [] : plan.steps.slice(firstRemoval);
  if (removing.some((s) => !REMOVING.has(s.op))) {
    throw new Error(`plan for ${plan.operation} adds after it removes; the planner must add first`);
  }
  const pendingId = freeTokenIds(
    before,
    plan.steps.flatMap((s) => (s.op === 'import-token' ? [s.tokenId] : [])),
  )[0];
  if (pendingId === undefined) {
    throw new ZkluksError(
      `Failed to ${verb} '${volume}': all 32 token ids are in use, none is free for the record of the change`,
      { hint: `zkluks list '${volume}', then remove a token you no longer need` },
    );
  }

  try {
    return await withPrivateTmpfsDir((dir) => run(dir, pendingId), deps.tmpfs);
  } catch (error) {
    if (error instanceof Interrupted) {
      throw new ZkluksError(
        `Failed to ${verb} '${volume}': ${error.message} before any change; nothing was changed`,
      );
    }
    throw error;
  } finally {
    for (const k of keys.values()) if (k !== given.unlock && k !== given.zymkeyOld) k.fill(0);
  }

  async function run(dir: PrivateDir, pendingId: number): Promise<ApplyResult> {
    // 1. Keys: nothing on the volume changes yet.
    if (plan.generates.includes('zymkey-new')) {
      const port = deps.zymkey();
      const key = await newZymkeyKey(port);
      keys.set('zymkey-new', key);
      const [sealed, info, binding] = [await port.seal(key), await port.info(), await port.binding()];
      sealedToken = zymkeyToken({
        keyslot: 0,
        sealed,
        backend: port.backend,
        zymkey: { model: info.model, serial: info.serial, binding: binding.mode },
        created: now(),
      });
    }
    if (plan.generates.includes('recovery-new')) {
      recoveryKey = newRecoveryKey();
      keys.set('recovery-new', Buffer.from(recoveryKey));
      if (plan.escrowRecipient) escrow = await escrowToAge(runner, plan.escrowRecipient, recoveryKey);
    }
    const key = (ref: KeyRef): Buffer => {
      const k = keys.get(ref);
      if (!k) throw new ZkluksError(`Failed to ${verb} '${volume}': the ${keyName(ref)} is not available`);
      return k;
    };
    checkSignal(signal);

    // 2. Header backup, the intent, then the steps.
    const backupName = 'header-backup.img';
    const backup = join(dir.path, backupName);
    await backupHeader(runner, volume, backup);
    await chmod(backup, 0o600);
    const intent = intentOf(plan, before, now());
    try {
      checkSignal(signal);
      await importToken(runner, volume, pendingId, serializePending(intent));
      for (const step of adding) {
        checkSignal(signal);
        await runStep(step);
      }
      checkSignal(signal);
      await hooks.deliver?.({ recoveryKey });
      // The new keys are verified and delivered: from here a kill or a power cut is finished by the
      // next run, not undone. A signal still rolls back (the admin who hung up may never have seen
      // the key), and the caller declares the delivered key void.
      checkSignal(signal);
      if (removing.length > 0) {
        intent.phase = 'remove';
        await importToken(runner, volume, pendingId, serializePending(intent), true);
        for (const step of removing) {
          checkSignal(signal);
          await runStep(step);
        }
      }
      checkSignal(signal);
      await removeToken(runner, volume, pendingId);
      const after = await readHeader(runner, volume);
      const difference = checkOutcome(before, after, plan);
      if (difference) throw new Error(`the header is not as planned: ${difference}`);
      for (const s of plan.steps) {
        if (s.op === 'verify-key' && !(await keyOpensSlot(runner, volume, key(s.key), s.slot))) {
          throw new Error(`the ${keyName(s.key)} no longer opens keyslot ${s.slot}`);
        }
      }
      const zStep = plan.steps.find((s) => s.op === 'import-token' && s.type === 'zkluks-zymkey');
      const rStep = plan.steps.find((s) => s.op === 'import-token' && s.type === 'zkluks-recovery');
      return {
        header: after,
        recoveryKey,
        zymkeySlot: zStep?.op === 'import-token' ? zStep.slot : null,
        recoverySlot: rStep?.op === 'import-token' ? rStep.slot : null,
        escrowRecipient: escrow ? escrow.recipient : null,
      };
    } catch (error) {
      const cause = error instanceof ZkluksError || error instanceof Error ? error.message : String(error);
      let restored: HeaderFacts;
      try {
        await restoreHeader(runner, volume, backup);
        restored = await readHeader(runner, volume);
      } catch (restoreError) {
        dir.keep(backupName);
        throw new ZkluksError(
          `Failed to ${verb} '${volume}': ${cause}; restoring the header backup failed too (${(restoreError as Error).message}); the backup is kept at '${backup}'`,
          {
            hint: `zkluks repair '${volume}' (settles the change from the record it left in the header), or cryptsetup luksHeaderRestore --batch-mode '${volume}' --header-backup-file '${backup}'`,
            cause: error,
          },
        );
      }
      if (shape(restored) !== shape(before)) {
        dir.keep(backupName);
        throw new ZkluksError(
          `Failed to ${verb} '${volume}': ${cause}; the header was restored from its backup but does not match the header before the change; the backup is kept at '${backup}'`,
          {
            hint: `zkluks list '${volume}', then cryptsetup luksHeaderRestore --batch-mode '${volume}' --header-backup-file '${backup}'`,
            cause: error,
          },
        );
      }
      throw new ZkluksError(
        `Failed to ${verb} '${volume}': ${cause}; the header was restored from its backup and is as before`,
        {
          hint: error instanceof ZkluksError && error.hint ? error.hint : `zkluks list '${volume}'`,
          cause: error,
        },
      );
    }

    async function runStep(step: Step): Promise<void> {
      switch (step.op) {
        case 'add-key': {
          // The new key is a file only for its own luksAddKey; the authorizing key goes on stdin.
          const name = `${step.key}.key`;
          const file = await dir.write(name, key(step.key));
          try {
            await addKey(runner, volume, step.slot, key(step.authorizedBy), file);
          } finally {
            await dir.remove(name);
          }
          // Record the new slot's salt: an interruption from here rolls back exactly this slot.
          const salt = (await readMetadata(runner, volume)).keyslots.find((k) => k.id === step.slot)?.salt;
          const added = intent.added.slots.find((s) => s.slot === step.slot);
          if (added && salt) {
            added.salt = salt;
            await importToken(runner, volume, pendingId, serializePending(intent), true);
          }
          return;
        }
        case 'set-priority':
          return setPriority(runner, volume, step.slot, step.priority);
        case 'import-token': {
          // The token records its keyslot's salt, so a later remove or rotate wipes that slot only
          // while it is still the one this token was made for.
          const salt =
            intent.added.slots.find((s) => s.slot === step.slot)?.salt ??
            (await readMetadata(runner, volume)).keyslots.find((k) => k.id === step.slot)?.salt;
          if (!salt) throw new Error(`keyslot ${step.slot} has no KDF salt to bind its token to`);
          const token =
            step.type === 'zkluks-zymkey'
              ? {
                  ...(sealedToken as ZymkeyToken),
                  keyslots: [String(step.slot)] as [string],
                  keyslot_salt: salt,
                }
              : recoveryToken({
                  keyslot: step.slot,
                  created: now(),
                  keyslotSalt: salt,
                  ...(escrow ? { escrow } : {}),
                });
          return importToken(runner, volume, step.tokenId, serializeToken(token));
        }
        case 'verify-key': {
          if (!(await keyOpensSlot(runner, volume, key(step.key), step.slot))) {
            throw new Error(`the ${keyName(step.key)} does not open keyslot ${step.slot} after it was added`);
          }
          return;
        }
        case 'remove-token': {
          const current = await readMetadata(runner, volume);
          const t = current.tokens.find((x) => x.id === step.tokenId);
          if (t && t.type !== step.type) {
            throw new Error(
              `token ${step.tokenId} is now a '${t.type}' token, not ${step.type}; zkluks never touches other token types`,
            );
          }
          if (t) await removeToken(runner, volume, step.tokenId);
          return;
        }
        case 'kill-slot':
          return killSlot(runner, volume, step.slot);
      }
    }
  }
}
