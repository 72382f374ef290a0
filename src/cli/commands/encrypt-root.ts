// zkluks encrypt-root: plan the in-place encryption of a plain ext4 root and arm the next boot to
// do it (the initramfs encrypts, resumable after a power cut); --finish tidies up on the first boot
// of the encrypted root; --disarm puts the plain boot back before the encryption began.
import { randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import type { CommandBody } from '../commands.ts';
import { RefusedError, UsageError } from '../../errors.ts';
import { createRunner } from '../../exec.ts';
import { removeRecoveryKeyFile, writeRecoveryKeyFile } from '../../keyslot/key-input.ts';
import { armEncryptRoot } from '../../migrate/encrypt-root/arm.ts';
import { gatherEncryptFacts } from '../../migrate/encrypt-root/facts.ts';
import { disarmEncryptRoot, finishEncryptRoot } from '../../migrate/encrypt-root/finish.ts';
import { describeEncryptPlan, formatDuration, planEncryptRoot } from '../../migrate/encrypt-root/plan.ts';
import { globalOptions } from '../global-options.ts';
import { givenCommandWithout } from '../given-command.ts';
import { escrowOf, recoveryOptions, showRecoveryKey, zymkeyOpener } from '../keyslot-command.ts';
import { createOutput } from '../output.ts';
import { describeSigning } from '../../initramfs/supervised-boot.ts';
import { planBootFilesSigning, warnSignAfterRebuild, withBootFilesSigned } from '../supervised-boot-guard.ts';

/** How the first-boot unit runs this zkluks: the same Node and the same bundle as now. */
function zkluksExecutable(): string {
  try {
    return `${process.execPath} ${realpathSync(process.argv[1] ?? '/usr/bin/zkluks')}`;
  } catch {
    return '/usr/bin/zkluks';
  }
}

/** Asks that the recovery key is stored; the hints repeat the admin's own command line. */
async function confirmStored(file: string | null): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new UsageError('Failed to confirm that the recovery key is stored: stdin is not a terminal', {
      hint: `${givenCommandWithout(['yes'], '--yes', ...(file ? [] : ['--recovery-key-file', 'FILE']))} (for scripts)`,
    });
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question('Type "stored" once the recovery key is kept safe: ');
    if (answer.trim().toLowerCase() !== 'stored') {
      throw new RefusedError('Refusing to arm the encryption: the recovery key was not confirmed as stored', {
        hint: `run it again (a new recovery key is made each time): ${givenCommandWithout([])}`,
      });
    }
  } finally {
    rl.close();
  }
}

export const encryptRootCommand: CommandBody = {
  builder: (y) =>
    y
      .options(recoveryOptions)
      .option('device', {
        type: 'string',
        describe: 'The device (or image) holding the root filesystem (default: what is mounted on /)',
      })
      .option('name', { type: 'string', describe: 'Name of the mapping (default cryptroot)' })
      .option('update', {
        type: 'boolean',
        default: true,
        describe: 'Rebuild the initramfs (--no-update: leave it to the caller)',
      })
      .option('finish', {
        type: 'boolean',
        default: false,
        describe: 'On the encrypted root: remove what the encrypting boot needed and rebuild the initramfs',
      })
      .option('disarm', {
        type: 'boolean',
        default: false,
        describe:
          'Before the encryption began: put fstab, crypttab and cmdline.txt back and rebuild the initramfs',
      }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const out = createOutput(g.json);
    const runner = createRunner();
    const zymkey = zymkeyOpener(g, runner);
    const noUpdate = argv.update === false;
    if (argv.finish === true && argv.disarm === true) {
      throw new UsageError('Failed to read the options: --finish and --disarm exclude each other', {
        hint: 'zkluks encrypt-root --help',
      });
    }
    if (argv.finish === true || argv.disarm === true) {
      const run = argv.finish === true ? finishEncryptRoot : disarmEncryptRoot;
      const result = await withBootFilesSigned(g, out, 'change the boot files', () =>
        run(
          { runner, root: g.root },
          { noUpdate, dryRun: g.dryRun, ...(typeof argv.device === 'string' ? { device: argv.device } : {}) },
        ),
      );
      if (g.dryRun) {
        const paths = [...result.restored, ...result.removed];
        const signing = await planBootFilesSigning(g, 'change the boot files', {
          initramfs: result.updateInitramfs !== null,
          paths,
          rebuildLater: noUpdate && paths.length > 0,
        });
        out.data([...result.lines, ...describeSigning(g.root, signing).map((l) => `  ${l}`)].join('\n'), {
          ...result,
          supervisedBoot: signing,
        });
        return;
      }
      out.data(result.lines.join('\n'), result);
      if (noUpdate && result.changed) await warnSignAfterRebuild(g, out, 'change the boot files');
      return;
    }
    const escrow = escrowOf(argv);
    const file = typeof argv['recovery-key-file'] === 'string' ? argv['recovery-key-file'] : null;
    const facts = await gatherEncryptFacts({
      runner,
      root: g.root,
      zymkey,
      ...(typeof argv.device === 'string' ? { device: argv.device } : {}),
    });
    const plan = planEncryptRoot(
      facts,
      {
        ...(typeof argv.name === 'string' ? { name: argv.name } : {}),
        escrow,
        recoveryKeyFile: file,
        noUpdate,
        zkluks: zkluksExecutable(),
        again: givenCommandWithout(['device=']),
      },
      { uuid: randomUUID(), now: new Date() },
    );
    if (g.dryRun) {
      const signing = await planBootFilesSigning(g, 'arm the encryption of the root', {
        initramfs: plan.steps.some((s) => s.kind === 'update-initramfs'),
        paths: plan.steps.flatMap((s) =>
          s.kind === 'switch-cmdline' || s.kind === 'write-file' || s.kind === 'symlink' ? [s.path] : [],
        ),
        rebuildLater: noUpdate,
      });
      out.data([describeEncryptPlan(plan), ...describeSigning(g.root, signing)].join('\n'), {
        dryRun: true,
        plan,
        supervisedBoot: signing,
      });
      return;
    }
    let written = false;
    try {
      const result = await withBootFilesSigned(g, out, 'arm the encryption of the root', () =>
        armEncryptRoot(
          { runner, root: g.root, zymkey },
          plan,
          {
            deliverRecoveryKey: async (key) => {
              if (file) {
                await writeRecoveryKeyFile(file, key);
                written = true;
              }
              await showRecoveryKey(g, argv, key, 0, file);
              if (!g.yes) await confirmStored(file);
            },
          },
          facts.zkunlockifs as string,
        ),
      );
      const time = plan.estimateSeconds === null ? '' : ` (about ${formatDuration(plan.estimateSeconds)})`;
      out.data(
        `armed: the next boot encrypts ${plan.device} in place${time} as LUKS2 ${plan.uuid}; reboot when ready. Do not switch off while it runs; after a power cut it resumes.`,
        {
          armed: true,
          device: plan.device,
          uuid: plan.uuid,
          name: plan.name,
          estimateSeconds: plan.estimateSeconds,
          escrowRecipient: result.escrow?.recipient ?? null,
          recoveryKeyFile: file,
          recoverySlot: 0,
          zymkeySlot: 1,
        },
      );
      for (const w of plan.warnings) out.warn(w);
      if (noUpdate) await warnSignAfterRebuild(g, out, 'arm the encryption of the root');
    } catch (error) {
      if (written && file) await removeRecoveryKeyFile(file);
      throw error;
    }
  },
};
