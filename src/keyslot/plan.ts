// A plan: what an operation will do to a LUKS2 header, as plain data. Planners (plan-*.ts) build
// it from header facts and options and enforce the safety rules; the executor (apply.ts) runs it.
// Keys appear only by name: they are made or read while applying, never stored in a plan.
import { RefusedError, ZkluksError } from '../errors.ts';
import type { HeaderFacts } from './header.ts';
import { RECOVERY_TOKEN_TYPE, ZYMKEY_TOKEN_TYPE, type ZkluksToken, type ZkluksTokenType } from './token.ts';
import type { ZymkeyCheck } from './zymkey-check.ts';
import {
  viewVolume,
  waysInWithoutZymkey,
  type OurToken,
  type SlotMatch,
  type VolumeView,
} from './volume-view.ts';

/** A key the executor holds while applying. */
export type KeyRef = 'unlock' | 'zymkey-old' | 'zymkey-new' | 'recovery-new';

export type Step =
  | { op: 'add-key'; slot: number; key: KeyRef; authorizedBy: KeyRef }
  | { op: 'set-priority'; slot: number; priority: 'prefer' }
  | { op: 'import-token'; tokenId: number; type: ZkluksTokenType; slot: number }
  | { op: 'verify-key'; slot: number; key: KeyRef }
  | { op: 'remove-token'; tokenId: number; type: ZkluksTokenType }
  | { op: 'kill-slot'; slot: number };

export type Operation = 'enroll' | 'rotate' | 'remove' | 'recovery-add' | 'recovery-remove';

export interface Plan {
  operation: Operation;
  volume: string;
  /** Set when there is nothing to do: the sentence that says why. */
  unchanged: string | null;
  /** Keys the executor makes: the Zymkey key (sealed into a token) and/or a recovery key. */
  generates: Array<'zymkey-new' | 'recovery-new'>;
  /** Encrypt the new recovery key to this age recipient and keep it in the recovery token. */
  escrowRecipient: string | null;
  steps: Step[];
  /** Things the admin should know (e.g. a slot kept because the passphrase opens it). */
  notes: string[];
}

export const VERBS: Record<Operation, string> = {
  enroll: 'enroll the Zymkey in',
  rotate: 'rotate the Zymkey key of',
  remove: 'remove the Zymkey from',
  'recovery-add': 'add a recovery key to',
  'recovery-remove': 'remove the recovery key from',
};

/** Per-item estimates of the JSON that an operation adds to the header's metadata area. */
export const JSON_BYTES = {
  keyslot: 450,
  zymkeyToken: 700,
  recoveryToken: 120,
  escrow: 650,
  /** The zkluks-pending record of the change, while it runs. */
  pending: 450,
} as const;

export function unchangedPlan(operation: Operation, volume: string, why: string, notes: string[] = []): Plan {
  return { operation, volume, unchanged: why, generates: [], escrowRecipient: null, steps: [], notes };
}

/** The header must have `needed` free keyslots. */
export function requireFreeKeyslots(
  operation: Operation,
  header: HeaderFacts,
  needed: number,
  hint?: string,
): void {
  if (header.freeKeyslots >= needed) return;
  throw new ZkluksError(
    `Failed to ${VERBS[operation]} '${header.volume}': all 32 keyslots are in use, ${needed} free ${needed === 1 ? 'keyslot is' : 'keyslots are'} needed, ${header.freeKeyslots} ${header.freeKeyslots === 1 ? 'is' : 'are'} free`,
    {
      hint:
        hint ??
        `zkluks list '${header.volume}', then free a slot you no longer need: cryptsetup luksKillSlot '${header.volume}' N`,
    },
  );
}

/** The new keyslots and tokens must fit the LUKS2 JSON metadata area. */
export function requireJsonRoom(operation: Operation, header: HeaderFacts, addedBytes: number): void {
  const free = header.jsonSize - header.jsonUsed;
  if (addedBytes <= free) return;
  throw new ZkluksError(
    `Failed to ${VERBS[operation]} '${header.volume}': the LUKS2 metadata area is too full: ${free} of ${header.jsonSize} bytes free, about ${addedBytes} needed for the new keyslot and token`,
    {
      hint: `zkluks list '${header.volume}', then remove tokens you no longer need (cryptsetup token remove --token-id N '${header.volume}'); the area's size is fixed at luksFormat (--luks2-metadata-size)`,
    },
  );
}

export interface LockOutConsent {
  /** --i-understand-this-locks-me-out */
  lockMeOut: boolean;
  /** --yes: the second explicit consent. */
  yes: boolean;
}

/** The lock-out rule refused: `provable` lists the remaining slots a key given could prove. */
export class NoWayInError extends RefusedError {
  readonly provable: number[];
  constructor(message: string, hint: string, provable: number[]) {
    super(message, { hint });
    this.provable = provable;
  }
}

/**
 * Safety rule: a volume keeps a way in that does not need the Zymkey — a recovery slot made for it,
 * or a slot a key given this run opens (`proven`) — unless the admin says so twice. A slot no token
 * explains is not counted on trust, and a priority-ignore slot never counts: the boot prompt skips it.
 */
export function requireWayInWithoutZymkey(
  operation: Operation,
  before: VolumeView,
  steps: readonly Step[],
  consent: LockOutConsent,
  proven: readonly number[] = [],
): string[] {
  // Judged on the volume as the steps leave it: a slot whose copied token goes is no longer unverified.
  const killed = steps.flatMap((s) => (s.op === 'kill-slot' ? [s.slot] : []));
  const removed = steps.flatMap((s) => (s.op === 'remove-token' ? [s.tokenId] : []));
  const view = viewVolume({
    ...before.header,
    keyslots: before.header.keyslots.filter((k) => !killed.includes(k.id)),
    tokens: before.header.tokens.filter((t) => !removed.includes(t.id)),
  });
  if (waysInWithoutZymkey(view, proven).length > 0) return [];
  const rule = `zkluks never leaves a volume without a way in that does not need the Zymkey (a recovery keyslot, or a keyslot a key you give opens), unless told twice with --i-understand-this-locks-me-out and --yes`;
  const volume = view.header.volume;
  const ignored = view.slots.filter((s) => s.priority === 'ignore');
  if (!consent.lockMeOut || !consent.yes) {
    const unverified = view.slots.filter((s) => s.kind === 'unverified');
    const tokens = unverified.flatMap((s) => s.tokens.filter((t) => t.type.startsWith('zkluks-')));
    const provable = view.slots
      .filter((s) => s.priority !== 'ignore' && s.kind !== 'zymkey' && s.kind !== 'pending')
      .map((s) => s.id);
    const unknown = view.slots
      .filter((s) => s.kind === 'unknown' && s.priority !== 'ignore')
      .map((s) => s.id);
    const why = [
      unknown.length > 0
        ? `keyslot ${unknown.join(', ')} ${unknown.length > 1 ? 'have' : 'has'} no token, so what opens ${unknown.length > 1 ? 'them' : 'it'} is not proven: no key given this run was tested against ${unknown.length > 1 ? 'them' : 'it'}`
        : '',
      unverified.length > 0
        ? `keyslot ${unverified.map((s) => s.id).join(', ')} ${unverified.length > 1 ? 'are' : 'is'} named by zkluks tokens made for another keyslot`
        : '',
      ignored.length > 0
        ? `keyslot ${ignored.map((s) => s.id).join(', ')} ${ignored.length > 1 ? 'have' : 'has'} priority ignore, so the boot prompt never tries ${ignored.length > 1 ? 'them' : 'it'}`
        : '',
    ].filter((w) => w !== '');
    throw new NoWayInError(
      `Refused to ${VERBS[operation]} '${volume}': it would leave no keyslot proven to open without the Zymkey${why.length > 0 ? ` (${why.join('; ')})` : ''}; ${rule}`,
      tokens.length > 0
        ? `if keyslot ${unverified.map((s) => s.id).join(', ')} opens with a passphrase you know (cryptsetup open --test-passphrase --key-slot N '${volume}'), remove the copied token: ${tokens.map((t) => `cryptsetup token remove --token-id ${t.id} '${volume}'`).join('; ')}; otherwise ${addWayIn(operation, volume)} first`
        : provable.length > 0
          ? `give a passphrase that opens keyslot ${provable.join(' or ')}: --unlock-key-file FILE (- reads stdin), or run it on a terminal to be asked; or ${addWayIn(operation, volume)} first`
          : `${addWayIn(operation, volume)}, then run this again${ignored.length > 0 ? `; or make an ignored keyslot count again: cryptsetup config --priority normal --key-slot ${ignored[0]?.id} '${volume}'` : ''}`,
      provable,
    );
  }
  return [`After this, '${volume}' opens only with the Zymkey (or other hardware): you said so twice.`];
}

/** What gives a volume a way in without the Zymkey, when `operation` would take the last one. */
function addWayIn(operation: Operation, volume: string): string {
  // Removing the recovery key: only a passphrase can take its place (a new recovery key would be
  // the one removed next).
  return operation === 'recovery-remove'
    ? `add a passphrase: cryptsetup luksAddKey '${volume}' (it asks for an existing key: the recovery key; then for the new passphrase)`
    : `zkluks recovery add '${volume}'`;
}

export function describeStep(step: Step): string {
  switch (step.op) {
    case 'add-key':
      return `add the ${keyName(step.key)} to keyslot ${step.slot} (pbkdf2, 1000 iterations), authorized by the ${keyName(step.authorizedBy)}`;
    case 'set-priority':
      return `set keyslot ${step.slot} priority to ${step.priority}`;
    case 'import-token':
      return `import a ${step.type} token as token ${step.tokenId} for keyslot ${step.slot}`;
    case 'verify-key':
      return `verify the ${keyName(step.key)} opens keyslot ${step.slot} (open --test-passphrase --key-slot ${step.slot})`;
    case 'remove-token':
      return `remove ${step.type} token ${step.tokenId}`;
    case 'kill-slot':
      return `wipe keyslot ${step.slot}`;
  }
}

export function keyName(key: KeyRef): string {
  switch (key) {
    case 'unlock':
      return 'existing passphrase';
    case 'zymkey-old':
      return 'current Zymkey key';
    case 'zymkey-new':
      return 'new Zymkey-sealed key';
    case 'recovery-new':
      return 'new recovery key';
  }
}

/** The plan as lines a person reads (for --dry-run). */
export function describePlan(plan: Plan): string {
  const lines = [`Plan: ${VERBS[plan.operation]} '${plan.volume}'`];
  if (plan.unchanged) lines.push(`  nothing to do: ${plan.unchanged}`);
  else {
    lines.push(
      '  0. back up the LUKS header (0600, kept until the change is verified; restored on any failure), then record the change in the header (a zkluks-pending token, removed last): an interruption is rolled back, or finished once the new keys are delivered',
    );
    const firstRemoval = plan.steps.findIndex((s) => s.op === 'remove-token' || s.op === 'kill-slot');
    plan.steps.forEach((s, i) => {
      if (i === firstRemoval) {
        lines.push(
          `     ${plan.generates.includes('recovery-new') ? 'deliver the new recovery key (shown, or written to its file), then ' : ''}mark the change as finishing: from here an interruption is finished, not undone`,
        );
      }
      lines.push(`  ${i + 1}. ${describeStep(s)}`);
    });
    if (plan.escrowRecipient)
      lines.push(`  the recovery key is also encrypted to ${plan.escrowRecipient} in its token`);
  }
  for (const n of plan.notes) lines.push(`  note: ${n}`);
  return lines.join('\n');
}

/** A zkluks token an operation removes, and the keyslot it names (null when none can be read). */
export interface OldToken {
  tokenId: number;
  type: ZkluksTokenType;
  slot: number | null;
  match: SlotMatch;
}

/** Every zkluks token of `type` in the volume, usable or not: what replacing or removing them retires. */
export function tokensOfType(view: VolumeView, type: ZkluksTokenType): OldToken[] {
  const usable: Array<OurToken<ZkluksToken>> = type === ZYMKEY_TOKEN_TYPE ? view.zymkey : view.recovery;
  return [
    ...usable.map((o) => ({ tokenId: o.tokenId, type, slot: o.slot, match: o.match })),
    ...view.problems.filter((p) => p.type === type),
  ];
}

export interface WipeFacts {
  /** The outcome of unsealing each valid zkluks-zymkey token and testing it against its slot. */
  checks?: readonly ZymkeyCheck[];
  /** Slots the key the admin gave opens: never wiped. */
  unlockOpens?: readonly number[];
  /** How the notes name the key the admin gave. */
  unlockName?: string;
}

/**
 * Safety rule: removing zkluks tokens wipes a keyslot they name only when it is known to be theirs —
 * a token naming it recorded its current salt, or the Zymkey's unsealed key opens it — and never a
 * slot the admin's own key opens. A slot a token was not made for (copied from another volume,
 * replaced since) keeps its key and loses only the token, with a note. When that cannot be told —
 * a zkluks-zymkey token without a matching salt and no Zymkey answer for its key — the operation is
 * refused: keeping the slot could leave a dead slot that later passes for a passphrase, and wiping
 * it could destroy one.
 */
function slotsToWipe(
  operation: Operation,
  view: VolumeView,
  tokens: readonly OldToken[],
  facts: WipeFacts = {},
): { kills: number[]; notes: string[] } {
  const volume = view.header.volume;
  const kills: number[] = [];
  const notes: string[] = [];
  const undecided: string[] = [];
  for (const k of view.header.keyslots) {
    const slot = k.id;
    const naming = tokens.filter((t) => t.slot === slot);
    const first = naming[0];
    if (!first) continue;
    const ids = naming.map((t) => `${t.type} token ${t.tokenId}`).join(', ');
    const checks = (facts.checks ?? []).filter((c) => c.slot === slot);
    const others = view.header.tokens.filter(
      (t) => t.keyslots.includes(slot) && !tokens.some((o) => o.tokenId === t.id),
    );
    if (facts.unlockOpens?.includes(slot)) {
      notes.push(
        `keyslot ${slot} opens with the ${facts.unlockName ?? 'passphrase'} you gave, so only its ${first.type} token is removed`,
      );
    } else if (others.length > 0) {
      notes.push(
        `keyslot ${slot} is kept: ${others.map((t) => `${t.type} token ${t.id}`).join(', ')} also ${others.length > 1 ? 'use' : 'uses'} it; only the ${first.type} token is removed`,
      );
    } else if (naming.some((t) => t.match === 'match') || checks.some((c) => c.opens)) {
      kills.push(slot);
    } else if (
      naming.every((t) => t.type === RECOVERY_TOKEN_TYPE) ||
      checks.some((c) => c.reason === 'key-rejected')
    ) {
      const why = naming.some((t) => t.match === 'mismatch')
        ? "the slot's salt differs from the one recorded: a token copied from another volume, or a keyslot replaced since"
        : 'no keyslot salt is recorded';
      notes.push(
        `keyslot ${slot} is kept: ${ids} ${naming.length > 1 ? 'were' : 'was'} not made for it (${why}); only the token is removed. If the slot should go too: cryptsetup luksKillSlot '${volume}' ${slot}`,
      );
    } else {
      undecided.push(`keyslot ${slot} (${ids})`);
    }
  }
  if (undecided.length > 0) {
    throw new RefusedError(
      `Refused to ${VERBS[operation]} '${volume}': zkluks cannot tell whether ${undecided.join('; ')} ${undecided.length > 1 ? 'hold' : 'holds'} the Zymkey-sealed key: no token naming it recorded its current salt, and the Zymkey did not show that the key it seals opens it (it could not answer, or the token is corrupt)`,
      {
        hint: `if the keyslot opens with a passphrase you know (cryptsetup open --test-passphrase --key-slot N '${volume}'), remove only the token: cryptsetup token remove --token-id T '${volume}'; otherwise wipe it: cryptsetup luksKillSlot '${volume}' N`,
      },
    );
  }
  return { kills, notes };
}

/** Steps that remove `tokens` and then wipe the keyslots slotsToWipe allows, with its notes. */
export function retireTokens(
  operation: Operation,
  view: VolumeView,
  tokens: readonly OldToken[],
  facts: WipeFacts = {},
): { steps: Step[]; notes: string[] } {
  const { kills, notes } = slotsToWipe(operation, view, tokens, facts);
  return {
    steps: [
      ...tokens.map((t): Step => ({ op: 'remove-token', tokenId: t.tokenId, type: t.type })),
      ...kills.map((slot): Step => ({ op: 'kill-slot', slot })),
    ],
    notes,
  };
}
