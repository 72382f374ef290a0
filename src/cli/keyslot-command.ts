// The pieces every keyslot command shares: the operation deps, key input
// (a key file, stdin or a prompt), recovery-key options and delivering a new recovery key once
// (before any old way in is removed), and printing an operation's result and what it settled.
import type { CommandBody } from './commands.ts';
import { openZymkey } from '../device/open.ts';
import type { ZymkeyPort } from '../device/port.ts';
import { UsageError } from '../errors.ts';
import { givenCommandWith } from './given-command.ts';
import { createRunner, type Runner } from '../exec.ts';
import type { ApplyHooks, MadeKeys } from '../keyslot/apply.ts';
import { unsealZymbitKey, zymbitKeyPath } from '../keyslot/authority-zymbit.ts';
import { checkRecipient } from '../keyslot/escrow.ts';
import { withInterruptSignal } from './interrupt.ts';
import { volumeArg, volumeOf } from './volume-arg.ts';
import {
  promptHidden,
  readKeyFile,
  removeRecoveryKeyFile,
  writeRecoveryKeyFile,
} from '../keyslot/key-input.ts';
import type { KeyslotDeps, OperationResult, RemoveRequest } from '../keyslot/operations.ts';
import type { SettlePlan } from '../keyslot/settle.ts';
import { describePlan } from '../keyslot/plan.ts';
import { globalOptions, type GlobalOptions } from './global-options.ts';
import { createOutput, type Output } from './output.ts';
import { disableCoreDumps } from './core-dumps.ts';

/** Opens the Zymkey --backend names, through `runner`, with its warnings printed as warnings. */
export function zymkeyOpener(g: GlobalOptions, runner: Runner): () => ZymkeyPort {
  const out = createOutput(g.json);
  return () =>
    openZymkey({
      backend: g.backend,
      simState: g.simState,
      runner,
      root: g.root,
      onWarning: (l) => out.warn(l),
    });
}

export function keyslotDeps(g: GlobalOptions, signal?: AbortSignal): KeyslotDeps {
  const runner = createRunner();
  return { runner, signal, zymkey: zymkeyOpener(g, runner) };
}

/** Ask for the existing passphrase on the terminal, without echo; without one, hint the file option. */
export function promptUnlockKey(volume: string): Promise<Buffer> {
  return promptHidden(
    `Existing passphrase for '${volume}'`,
    { stdin: process.stdin, stderr: process.stderr },
    `${givenCommandWith('--unlock-key-file', 'FILE')} (- reads stdin)`,
  );
}

/** --unlock-key-file FILE / -, or nothing when it is not given. */
export function optionalUnlockKey(argv: Record<string, unknown>): Promise<Buffer> | undefined {
  const file = argv['unlock-key-file'];
  return typeof file === 'string' ? readKeyFile(file, 'unlock key') : undefined;
}

/** --unlock-key-file FILE / -, or a prompt on the terminal. */
export async function unlockKey(argv: Record<string, unknown>, volume: string): Promise<Buffer> {
  return (await optionalUnlockKey(argv)) ?? promptUnlockKey(volume);
}

export const unlockKeyOption = {
  type: 'string',
  nargs: 1, // so that `--unlock-key-file -` takes '-' as its value

  describe: 'Read an existing passphrase or key from FILE, exactly as cryptsetup --key-file does (- = stdin)',
} as const;

export const unlockZymbitKeyOption = {
  type: 'string',
  describe:
    "Authorize with the key Zymbit's script sealed (default /var/lib/zymbit/key.bin.lock under --root), unsealed by the Zymkey and kept in memory",
} as const;

/**
 * --unlock-zymbit-key [FILE]: the key Zymbit's mk_encr_sd_rfs.sh sealed, unsealed through the Zymkey
 * and proven to open the volume; undefined when the option is not given.
 */
export async function zymbitUnlockKey(
  argv: Record<string, unknown>,
  g: GlobalOptions,
  volume: string,
): Promise<Buffer | undefined> {
  const file = argv['unlock-zymbit-key'];
  if (file === undefined) return undefined;
  if (typeof argv['unlock-key-file'] === 'string') {
    throw new UsageError(
      'Failed to read the unlock key: --unlock-key-file and --unlock-zymbit-key both given',
      {
        hint: 'give one of them',
      },
    );
  }
  const path = zymbitKeyPath(g.root, typeof file === 'string' ? file : null);
  return (await unsealZymbitKey(keyslotDeps(g), volume, path)).key;
}

export const recoveryOptions = {
  'recovery-key-file': {
    type: 'string',
    describe: 'Write the new recovery key to FILE (created 0600, never overwritten) instead of showing it',
  },
  qr: { type: 'boolean', default: false, describe: 'Also show the new recovery key as a QR code (qrencode)' },
  escrow: {
    type: 'string',
    describe:
      'Also keep the recovery key encrypted to this age recipient (age1…) in its LUKS2 token (replacing a key keeps its recipient; --no-escrow drops it)',
  },
} as const;

export function escrowOf(argv: Record<string, unknown>): string | null {
  return typeof argv.escrow === 'string' ? checkRecipient(argv.escrow) : null;
}

/** --escrow RECIPIENT, --no-escrow (null), or undefined when neither was given. */
export function escrowChoice(argv: Record<string, unknown>): string | null | undefined {
  if (argv.escrow === false) return null;
  return argv.escrow === undefined ? undefined : escrowOf(argv);
}

/**
 * Delivers a new recovery key once it is added and verified and before any old way in is removed:
 * written to --recovery-key-file, or shown once on stderr (the terminal). If the change is undone
 * afterwards, the file is removed and the shown key is declared void.
 */
export function recoveryKeyDelivery(g: GlobalOptions, argv: Record<string, unknown>) {
  const file = typeof argv['recovery-key-file'] === 'string' ? argv['recovery-key-file'] : null;
  let written = false;
  let shown = false;
  return {
    file,
    hooks: {
      deliver: async (keys: MadeKeys) => {
        if (!keys.recoveryKey) return;
        if (file) {
          await writeRecoveryKeyFile(file, keys.recoveryKey);
          written = true;
        }
        await showRecoveryKey(g, argv, keys.recoveryKey, null, file);
        shown = !file;
      },
    },
    async undo() {
      if (written && file) await removeRecoveryKeyFile(file);
      if (shown) {
        createOutput(g.json).warn(
          'the recovery key shown above was not kept: the change was undone, so it opens nothing; discard it',
        );
      }
    },
  };
}

/**
 * Runs a change that may make a recovery key under the interrupt signal, delivers that key as
 * --recovery-key-file asks (or shows it) and prints the result with `summary`; when the change
 * fails, takes the delivered key back before the error goes on.
 */
export async function runDeliveringRecoveryKey(
  g: GlobalOptions,
  argv: Record<string, unknown>,
  change: (deps: KeyslotDeps, hooks: ApplyHooks) => Promise<OperationResult>,
  summary: (result: OperationResult) => string,
): Promise<void> {
  const keyFile = recoveryKeyDelivery(g, argv);
  try {
    const result = await withInterruptSignal((signal) => change(keyslotDeps(g, signal), keyFile.hooks));
    printResult(createOutput(g.json), g, result, summary(result), {
      recoveryKeyFile: result.applied?.recoveryKey ? keyFile.file : null,
    });
  } catch (error) {
    await keyFile.undo();
    throw error;
  }
}

/**
 * Writes --recovery-key-file when the new key is delivered (added and verified, nothing old removed
 * yet); removes it again if the change fails. For callers that show the key themselves afterwards.
 */
export function recoveryKeyFileHooks(argv: Record<string, unknown>) {
  const file = typeof argv['recovery-key-file'] === 'string' ? argv['recovery-key-file'] : null;
  let written = false;
  return {
    file,
    hooks: {
      deliver: async (keys: MadeKeys) => {
        if (file && keys.recoveryKey) {
          await writeRecoveryKeyFile(file, keys.recoveryKey);
          written = true;
        }
      },
    },
    async undo() {
      if (written && file) await removeRecoveryKeyFile(file);
    },
  };
}

/** Show a new recovery key once, on stderr (the terminal), unless it went to a file. */
export async function showRecoveryKey(
  g: GlobalOptions,
  argv: Record<string, unknown>,
  key: string,
  slot: number | null,
  file: string | null,
): Promise<void> {
  const err = process.stderr;
  const where = slot === null ? '' : ` for keyslot ${slot}`;
  if (file) err.write(`The new recovery key${where} was written to '${file}' (mode 0600).\n`);
  else {
    err.write(
      [
        '',
        `A new recovery key was added${slot === null ? '' : ` to keyslot ${slot}`} and verified. It is shown only this once:`,
        '',
        `    ${key}`,
        '',
        'Write it down and keep it away from this device. It unlocks the volume at the passphrase prompt',
        '(dashes included) when the Zymkey cannot, e.g. after a tamper event or on another Pi.',
        '',
      ].join('\n'),
    );
  }
  if (argv.qr === true) {
    const r = await createRunner()('qrencode', ['-t', 'ansiutf8'], {
      input: key,
      secretInput: true,
      reject: false,
    });
    if (r.exitCode === 0) err.write(r.stdout);
    else
      createOutput(g.json).warn(
        `could not draw the QR code (qrencode: ${r.stderr.trim() || r.exitCode}); apt-get install qrencode`,
      );
  }
}

/** What a change did, from its steps: tokens removed, keyslots wiped (never a slot that was kept). */
export function describeRemovals(result: OperationResult): string {
  const steps = result.plan.steps;
  const tokens = steps.flatMap((s) => (s.op === 'remove-token' ? [`${s.type} token ${s.tokenId}`] : []));
  const slots = steps.flatMap((s) => (s.op === 'kill-slot' ? [s.slot] : []));
  const parts = [
    tokens.length > 0 ? `removed ${tokens.join(', ')}` : '',
    slots.length > 0 ? `wiped keyslot ${slots.join(', ')}` : '',
  ].filter((p) => p !== '');
  return parts.join('; ');
}

/** Say which interrupted changes the run settled before its own. */
export function printSettled(out: Output, result: { settled: readonly SettlePlan[] }): void {
  for (const p of result.settled) {
    out.warn(`${p.action === 'roll-back' ? 'rolled back' : 'finished'} ${p.description}`);
  }
}

/** Print an operation's outcome: the plan for --dry-run, otherwise what changed. */
export function printResult(
  out: Output,
  g: GlobalOptions,
  result: OperationResult,
  summary: string,
  extra: Record<string, unknown> = {},
): void {
  const { plan, applied } = result;
  if (!g.json) printSettled(out, result);
  const json = {
    volume: plan.volume,
    operation: plan.operation,
    dryRun: g.dryRun,
    changed: applied !== null,
    unchanged: plan.unchanged,
    plan: { steps: plan.steps, generates: plan.generates, escrowRecipient: plan.escrowRecipient },
    notes: plan.notes,
    settled: result.settled.map((p) => ({
      operation: p.operation,
      action: p.action,
      steps: p.steps,
      notes: p.notes,
    })),
    zymkeySlot: applied?.zymkeySlot ?? null,
    recoverySlot: applied?.recoverySlot ?? null,
    escrowRecipient: applied?.escrowRecipient ?? null,
    ...extra,
  };
  if (g.dryRun) return out.data(describePlan(plan), json);
  if (plan.unchanged) {
    out.data(`unchanged: ${plan.unchanged}`, json);
  } else out.data(summary, json);
  if (!g.json) for (const n of plan.notes) out.info(`note: ${n}`);
}

const lockOutOption = {
  type: 'boolean',
  default: false,
  describe: 'Allow leaving no passphrase or recovery keyslot (also needs --yes)',
} as const;

/**
 * A command that removes a zkluks keyslot and its token (`remove`, `recovery remove`): refused by
 * the operation when no other way in without the Zymkey would remain, unless told twice.
 */
export function removalCommand(spec: {
  remove: (deps: KeyslotDeps, volume: string, request: RemoveRequest) => Promise<OperationResult>;
  done: (volume: string) => string;
}): CommandBody {
  return {
    builder: (y) =>
      volumeArg(y)
        .option('i-understand-this-locks-me-out', lockOutOption)
        .option('unlock-key-file', {
          ...unlockKeyOption,
          describe: `${unlockKeyOption.describe}: proves a keyslot that stays opens without the Zymkey (asked for on a terminal when nothing else proves one)`,
        }),
    handler: async (argv) => {
      const g = globalOptions(argv);
      await disableCoreDumps(createRunner());
      const volume = volumeOf(argv);
      const consent = { lockMeOut: argv['i-understand-this-locks-me-out'] === true, yes: g.yes };
      const unlock = await optionalUnlockKey(argv);
      try {
        const result = await withInterruptSignal((signal) =>
          spec.remove(keyslotDeps(g, signal), volume, {
            ...consent,
            dryRun: g.dryRun,
            unlock,
            ...(process.stdin.isTTY && !unlock ? { askUnlock: () => promptUnlockKey(volume) } : {}),
          }),
        );
        printResult(
          createOutput(g.json),
          g,
          result,
          `${spec.done(volume)}: ${describeRemovals(result) || 'nothing changed'}`,
        );
      } finally {
        unlock?.fill(0);
      }
    },
  };
}
