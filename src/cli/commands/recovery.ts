// zkluks recovery add|verify|remove|unlock VOLUME: the recovery key — 256 bits in typeable modhex
// groups, shown once or written to a 0600 file, optionally escrowed to an age recipient inside the
// LUKS2 header so the disk can be recovered on any machine with the `age` tool.
import type { CommandModule } from 'yargs';
import type { CommandBody } from '../commands.ts';
import { ExitCode } from '../../errors.ts';
import { shellWord } from '../../hint.ts';
import { promptHidden, readKeyFile } from '../../keyslot/key-input.ts';
import { recoveryAdd, recoveryRemove, unlockEscrow, verifyRecovery } from '../../keyslot/operations.ts';
import { globalOptions } from '../global-options.ts';
import { createOutput } from '../output.ts';
import {
  escrowChoice,
  keyslotDeps,
  optionalUnlockKey,
  promptUnlockKey,
  removalCommand,
  describeRemovals,
  recoveryOptions,
  runDeliveringRecoveryKey,
  unlockKeyOption,
  unlockZymbitKeyOption,
  zymbitUnlockKey,
} from '../keyslot-command.ts';
import { volumeArg, volumeOf } from '../volume-arg.ts';
import { disableCoreDumps } from '../core-dumps.ts';
import { createRunner } from '../../exec.ts';

const add: CommandModule = {
  command: 'add <volume>',
  describe:
    "Add a recovery key (authorized by the Zymkey, --unlock-key-file, Zymbit's key.bin.lock with --unlock-zymbit-key, or a prompt)",
  builder: (y) =>
    volumeArg(y)
      .option('unlock-key-file', unlockKeyOption)
      .option('unlock-zymbit-key', unlockZymbitKeyOption)
      .option('force', { type: 'boolean', default: false, describe: 'Replace an existing recovery key' })
      .options(recoveryOptions),
  handler: async (argv) => {
    const g = globalOptions(argv);
    await disableCoreDumps(createRunner());
    const volume = volumeOf(argv);
    const escrow = escrowChoice(argv);
    const unlock = (await zymbitUnlockKey(argv, g, volume)) ?? (await optionalUnlockKey(argv));
    try {
      await runDeliveringRecoveryKey(
        g,
        argv,
        (deps, hooks) =>
          recoveryAdd(
            deps,
            volume,
            {
              unlock,
              askUnlock: () => promptUnlockKey(volume),
              force: argv.force === true,
              escrow,
              dryRun: g.dryRun,
            },
            hooks,
          ),
        (result) => {
          const a = result.applied;
          return `added a recovery key to '${volume}': keyslot ${a?.recoverySlot}${a?.escrowRecipient ? `, escrowed to ${a.escrowRecipient}` : ''}${describeRemovals(result) ? `; ${describeRemovals(result)}` : ''}`;
        },
      );
    } finally {
      unlock?.fill(0);
    }
  },
};

const verify: CommandModule = {
  command: 'verify <volume>',
  describe:
    'Check a recovery key (typed, from --recovery-key-file, or the escrow with --identity) opens its keyslot',
  builder: (y) =>
    volumeArg(y)
      .option('recovery-key-file', {
        type: 'string',
        nargs: 1, // so that `--recovery-key-file -` takes '-' as its value
        describe: 'Read the recovery key from FILE (- = stdin)',
      })
      .option('identity', {
        type: 'string',
        describe: 'Check the escrowed key, decrypted with this age identity file',
      }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    await disableCoreDumps(createRunner());
    const out = createOutput(g.json);
    const volume = volumeOf(argv);
    const deps = keyslotDeps(g);
    let key: string;
    if (typeof argv.identity === 'string') key = (await unlockEscrow(deps, volume, argv.identity)).key;
    else if (typeof argv['recovery-key-file'] === 'string') {
      key = (await readKeyFile(argv['recovery-key-file'], 'recovery key')).toString('utf8');
    } else {
      key = (
        await promptHidden(
          `Recovery key for '${volume}'`,
          { stdin: process.stdin, stderr: process.stderr },
          `zkluks recovery verify --recovery-key-file FILE ${shellWord(volume)} (- reads stdin)`,
        )
      ).toString('utf8');
    }
    const report = await verifyRecovery(deps, volume, key);
    out.data(report.ok ? `ok: ${report.detail}` : `failed: ${report.detail}`, report);
    if (!report.ok) {
      if (!g.json) out.info(`hint: zkluks recovery add --force '${volume}' (makes a new recovery key)`);
      process.exitCode = ExitCode.failed;
    }
  },
};

const removeCmd: CommandModule = {
  command: 'remove <volume>',
  describe:
    'Wipe the recovery keyslot and its token (refused if no other way in without the Zymkey would remain)',
  ...removalCommand({
    remove: recoveryRemove,
    done: (volume) => `removed the recovery key from '${volume}'`,
  }),
};

const unlock: CommandModule = {
  command: 'unlock <volume>',
  describe: 'Decrypt the escrowed recovery key with an age identity and print it (for cryptsetup open)',
  builder: (y) =>
    volumeArg(y).option('identity', {
      type: 'string',
      demandOption: true,
      describe: 'The age identity file whose recipient the key was escrowed to',
    }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    await disableCoreDumps(createRunner());
    const volume = volumeOf(argv);
    const { key, slot } = await unlockEscrow(keyslotDeps(g), volume, argv.identity as string);
    if (g.json) process.stdout.write(`${JSON.stringify({ volume, slot, recoveryKey: key })}\n`);
    // No newline when piped, so `… | cryptsetup open --key-file - VOLUME NAME` gets the exact key.
    else process.stdout.write(process.stdout.isTTY ? `${key}\n` : key);
  },
};

export const recoveryCommand: CommandBody = {
  builder: (y) =>
    y
      .command([add, verify, removeCmd, unlock])
      .demandCommand(1, 'Name an action: add, verify, remove or unlock.'),
  handler: () => {},
};
