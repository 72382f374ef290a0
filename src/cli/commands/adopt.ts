// zkluks adopt [VOLUME]: take a Pi encrypted by Zymbit's mk_encr_sd_rfs.sh to zkluks — a recovery key
// first, a zkluks Zymkey slot, the zkluks keyscript with a prompt fallback and the distro's kernel
// hook — and, with --remove-old, wipe Zymbit's slot and key.bin.lock once all of that is verified.
import type { CommandBody } from '../commands.ts';
import { UsageError } from '../../errors.ts';
import { withInterruptSignal } from '../interrupt.ts';
import { promptHidden } from '../../keyslot/key-input.ts';
import { adopt, type AdoptResult } from '../../migrate/adopt/adopt.ts';
import { describeStep } from '../../migrate/adopt/plan.ts';
import { givenCommandWithout } from '../given-command.ts';
import { globalOptions, type GlobalOptions } from '../global-options.ts';
import { createOutput } from '../output.ts';
import { describeSigning, type SigningPlan } from '../../initramfs/supervised-boot.ts';
import { planBootFilesSigning, withBootFilesSigned } from '../supervised-boot-guard.ts';
import {
  escrowOf,
  keyslotDeps,
  recoveryKeyFileHooks,
  recoveryOptions,
  showRecoveryKey,
} from '../keyslot-command.ts';

function json(g: GlobalOptions, r: AdoptResult, recoveryKeyFile: string | null) {
  return {
    volume: r.plan.volume,
    operation: 'adopt',
    dryRun: g.dryRun,
    changed: r.done.length > 0,
    unchanged: r.plan.unchanged,
    plan: { steps: r.plan.steps },
    done: r.done,
    notes: r.plan.notes,
    recoverySlot: r.recoverySlot,
    zymkeySlot: r.zymkeySlot,
    escrowRecipient: r.escrowRecipient,
    recoveryKeyFile: r.recoveryKey ? recoveryKeyFile : null,
  };
}

/** The admin's own command line without --yes/--dry-run: what the hints repeat. */
function givenAdopt(): string {
  return givenCommandWithout(['yes', 'dry-run']);
}

async function confirm(volume: string | undefined, again: string): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new UsageError('Failed to adopt: confirmation needed and stdin is not a terminal', {
      hint: `'${again} --dry-run' shows the plan; '${again} --yes' runs it`,
    });
  }
  const answer = (
    await promptHidden(`Adopt ${volume ? `'${volume}'` : 'the root volume'} now? Type yes`, {
      stdin: process.stdin,
      stderr: process.stderr,
    })
  ).toString('utf8');
  if (answer.trim() !== 'yes') throw new UsageError('Failed to adopt: not confirmed; nothing was changed');
}

export const adoptCommand: CommandBody = {
  builder: (y) =>
    y
      .positional('volume', {
        type: 'string',
        describe: "The LUKS2 volume (default: the source of crypttab's zk_get_key line)",
      })
      .option('remove-old', {
        type: 'boolean',
        default: false,
        describe: "After everything is verified, wipe Zymbit's keyslot and /var/lib/zymbit/key.bin.lock",
      })
      .options(recoveryOptions),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const out = createOutput(g.json);
    const volume = typeof argv.volume === 'string' && argv.volume !== '' ? argv.volume : undefined;
    const escrow = escrowOf(argv);
    const request = { volume, escrow, removeOld: argv['remove-old'] === true, again: givenAdopt() };
    const keyFile = recoveryKeyFileHooks(argv);
    if (!g.dryRun && !g.yes) {
      // Show the plan first; the change needs a yes.
      const planned = await adopt({ ...keyslotDeps(g), root: g.root }, { ...request, dryRun: true });
      if (planned.plan.unchanged) {
        out.data(`unchanged: ${planned.plan.unchanged}`, json(g, planned, null));
        return;
      }
      if (!g.json) out.info(planLines(planned).join('\n'));
      await confirm(volume, request.again);
    }
    let result: AdoptResult;
    try {
      result = await withBootFilesSigned(g, out, 'adopt the boot files', () =>
        withInterruptSignal((signal) =>
          adopt({ ...keyslotDeps(g, signal), root: g.root }, { ...request, dryRun: g.dryRun }, keyFile.hooks),
        ),
      );
    } catch (error) {
      await keyFile.undo();
      throw error;
    }
    if (g.dryRun) {
      const signing = await adoptSigning(g, result);
      const add = (result.plan.unchanged ? [] : result.plan.steps).flatMap((s) =>
        s.kind === 'manifest-in' ? s.adding : [],
      );
      const lines = [
        ...describeSigning(g.root, signing),
        ...(add.length > 0
          ? [
              `supervised boot: would add to the SCM's manifest, before config.txt loads ${add.length === 1 ? 'it' : 'them'}: ${add.join(', ')}`,
            ]
          : []),
      ];
      out.data([...planLines(result), ...lines.map((l) => `  ${l}`)].join('\n'), {
        ...json(g, result, keyFile.file),
        supervisedBoot: { ...signing, add },
      });
      return;
    }
    const summary = result.plan.unchanged
      ? `unchanged: ${result.plan.unchanged}`
      : [`adopted '${result.plan.volume}':`, ...result.done.map((s) => `  done: ${describeStep(s)}`)].join(
          '\n',
        );
    out.data(summary, json(g, result, keyFile.file));
    if (!g.json) for (const n of result.plan.notes) out.info(`note: ${n}`);
    if (result.recoveryKey) {
      await showRecoveryKey(g, argv, result.recoveryKey, result.recoverySlot, keyFile.file);
    }
  },
};

/** What adopting would sign in an SCM's manifest: the rebuilt images and the switched config.txt. */
function adoptSigning(g: GlobalOptions, r: AdoptResult): Promise<SigningPlan> {
  const steps = r.plan.unchanged ? [] : r.plan.steps;
  return planBootFilesSigning(g, 'adopt the boot files', {
    initramfs: steps.some((s) => s.kind === 'rebuild-initramfs'),
    paths: steps.flatMap((s) => (s.kind === 'switch-config-txt' ? [s.path] : [])),
  });
}

function planLines(r: AdoptResult): string[] {
  return [
    `adopt '${r.plan.volume}' (crypttab '${r.plan.name}')${r.plan.unchanged ? `: ${r.plan.unchanged}` : ''}`,
    ...r.plan.steps.map((s, i) => `  ${i + 1}. ${describeStep(s)}`),
    ...r.plan.notes.map((n) => `  note: ${n}`),
  ];
}
