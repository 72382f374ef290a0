// Every zkluks command: its name and one-line description here and nowhere else; everything else
// (options, handler and what they import) in its module under ./commands/, loaded only when that
// command runs. So `zkluks --help` and `--version` load no command, and `zkluks list` loads only list.
import type { CommandModule } from 'yargs';

/** What a command's module holds: its options and handler. Its name and description are its entry's. */
export type CommandBody = Required<Pick<CommandModule, 'builder' | 'handler'>>;

export interface CommandEntry {
  /** The yargs command string; its first word is the command's name. */
  command: string;
  describe: string;
  load: () => Promise<CommandBody>;
}

/** An entry and its loaded module: the whole command as yargs takes it. */
export async function loadCommand(entry: CommandEntry): Promise<CommandModule> {
  return { ...(await entry.load()), command: entry.command, describe: entry.describe };
}

export const commands: CommandEntry[] = [
  {
    command: 'device <command>',
    describe: 'Ask the Zymkey: info, I2C probe, random bytes, seal and unseal',
    load: async () => (await import('./commands/device.ts')).deviceCommand,
  },
  {
    command: 'sim <command>',
    describe: 'The software Zymkey: create, inspect, tamper with, serve',
    load: async () => (await import('./commands/sim.ts')).simCommand,
  },
  {
    command: 'doctor [volume]',
    describe: 'Explain what is wrong with the Zymkey unlock, what it means for the data, and what to do',
    load: async () => (await import('./commands/doctor.ts')).doctorCommand,
  },
  {
    command: 'initramfs <command>',
    describe: 'Boot files: install, check or remove the keyscript, hook and crypttab line',
    load: async () => (await import('./commands/initramfs.ts')).initramfsCommand,
  },
  {
    command: 'supervised-boot <command>',
    describe: 'Zymbit SCM Supervised Boot: the manifest against the files on disk; sign changed files',
    load: async () => (await import('./commands/supervised-boot.ts')).supervisedBootCommand,
  },
  {
    command: 'enroll <volume>',
    describe: 'Seal a new key with the Zymkey into its own keyslot (priority prefer), beside a recovery key',
    load: async () => (await import('./commands/enroll.ts')).enrollCommand,
  },
  {
    command: 'list <volume>',
    describe:
      'List the keyslots of a LUKS2 volume: kind (zymkey/recovery/other token/pending/unknown), KDF, priority, token',
    load: async () => (await import('./commands/list.ts')).listCommand,
  },
  {
    command: 'verify <volume>',
    describe:
      'Check that the Zymkey-sealed key opens its keyslot (exit 0), or say why not (4: Zymkey unavailable)',
    load: async () => (await import('./commands/verify.ts')).verifyCommand,
  },
  {
    command: 'rotate <volume>',
    describe: 'Replace the Zymkey key: new key and keyslot, verified, then the old keyslot and token wiped',
    load: async () => (await import('./commands/rotate.ts')).rotateCommand,
  },
  {
    command: 'remove <volume>',
    describe: 'Wipe the Zymkey keyslot and its token (refused if no other way in would remain)',
    load: async () => (await import('./commands/remove.ts')).removeCommand,
  },
  {
    command: 'recovery <action>',
    describe: 'Recovery key: add, verify, remove, or unlock (decrypt the age escrow)',
    load: async () => (await import('./commands/recovery.ts')).recoveryCommand,
  },
  {
    command: 'repair <volume>',
    describe:
      'Settle a keyslot change an interruption left recorded in the header: roll it back, or finish it once its new keys were delivered',
    load: async () => (await import('./commands/repair.ts')).repairCommand,
  },
  {
    command: 'adopt [volume]',
    describe:
      "Take a Pi encrypted by Zymbit's mk_encr_sd_rfs.sh to zkluks: recovery key first, zkluks slot, keyscript with prompt fallback",
    load: async () => (await import('./commands/adopt.ts')).adoptCommand,
  },
  {
    command: 'encrypt-root',
    describe:
      'Encrypt the plain ext4 root in place at the next boot (LUKS2, Zymkey + recovery key), resumable after a power cut',
    load: async () => (await import('./commands/encrypt-root.ts')).encryptRootCommand,
  },
];

/** Options that take a value, so that their value is not mistaken for the command's name. */
const VALUE_OPTIONS = new Set(['--root', '--backend', '--sim-state']);

/** The name of the command `args` run (the first word that is not a global option), if any. */
export function commandName(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') return args[i + 1];
    if (VALUE_OPTIONS.has(arg)) i++;
    else if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}

/**
 * The commands for yargs: the one `args` run in full, loaded now; the others by name and description
 * only, which is all `--help` and the unknown-command suggestions need.
 */
export async function commandsFor(
  args: readonly string[],
  table: readonly CommandEntry[] = commands,
): Promise<CommandModule[]> {
  const name = commandName(args);
  return Promise.all(
    table.map(async (entry): Promise<CommandModule> => {
      if (entry.command.split(' ')[0] !== name)
        return { command: entry.command, describe: entry.describe, handler: () => undefined };
      return loadCommand(entry);
    }),
  );
}
