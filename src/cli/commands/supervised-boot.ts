// zkluks supervised-boot status|update: the Zymbit SCM's Supervised Boot manifest against the files on
// disk (through zkluks's record of their digests), and signing files again after a deliberate change.
import type { CommandModule } from 'yargs';
import type { CommandBody } from '../commands.ts';
import { openZymkey } from '../../device/open.ts';
import { ExitCode, UsageError, ZkluksError } from '../../errors.ts';
import { createRunner } from '../../exec.ts';
import {
  manifestEntries,
  signFiles,
  supervisedBootInfo,
  unsignedError,
} from '../../initramfs/supervised-boot.ts';
import { ENTRY_STATE_TEXT } from '../../initramfs/manifest-verdict.ts';
import { globalOptions, type GlobalOptions } from '../global-options.ts';
import { createOutput } from '../output.ts';

async function readManifest(g: GlobalOptions): Promise<string[] | null> {
  const port = openZymkey({ backend: g.backend, simState: g.simState, runner: createRunner(), root: g.root });
  const info = await supervisedBootInfo(port);
  if (!info.scm) return null;
  if (info.manifest === null) {
    throw new ZkluksError(`Failed to read the SCM's Supervised Boot manifest: ${info.error ?? 'no answer'}`, {
      exitCode: ExitCode.zymkeyUnavailable,
      hint: 'systemctl start zkifc, then zkluks supervised-boot status',
    });
  }
  return info.manifest;
}

const status: CommandModule = {
  command: 'status',
  describe: 'List the manifest and whether each file still matches (exit 1 when one does not)',
  handler: async (argv) => {
    const g = globalOptions(argv);
    const out = createOutput(g.json);
    const manifest = await readManifest(g);
    if (manifest === null) {
      out.data('no SCM: nothing verifies the boot files before boot', { scm: false, entries: [] });
      return;
    }
    const entries = manifestEntries(g.root, manifest);
    out.data(
      entries.length === 0
        ? 'SCM with an empty manifest: Supervised Boot is off'
        : entries.map((e) => `${e.path}  ${ENTRY_STATE_TEXT[e.state]}`).join('\n'),
      { scm: true, entries },
    );
    if (entries.some((e) => e.state === 'changed' || e.state === 'missing'))
      process.exitCode = ExitCode.failed;
  },
};

const update: CommandModule = {
  command: 'update [files..]',
  describe: 'Sign manifest files as they are now (paths relative to the boot partition), before rebooting',
  builder: (y) =>
    y
      .positional('files', { type: 'string', array: true, describe: 'Manifest files, e.g. initrd.img' })
      .option('changed', {
        type: 'boolean',
        default: false,
        describe: 'Sign every manifest file that changed since zkluks signed or saw it',
      }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const out = createOutput(g.json);
    const named = ((argv.files as unknown[] | undefined) ?? []).map(String);
    if (named.length === 0 && argv.changed !== true) {
      throw new UsageError('Failed to sign: name the manifest files, or --changed', {
        hint: 'zkluks supervised-boot status (lists the manifest)',
      });
    }
    const manifest = await readManifest(g);
    if (manifest === null) {
      throw new ZkluksError('Failed to sign boot files: no SCM supervises the boot on this Pi', {
        exitCode: ExitCode.zymkeyUnavailable,
        hint: 'zkluks device info',
      });
    }
    const unknown = named.filter((f) => !manifest.includes(f));
    if (unknown.length > 0) {
      throw new UsageError(`Failed to sign ${unknown.join(', ')}: not in the SCM's manifest`, {
        hint: 'zkluks supervised-boot status (lists the manifest)',
      });
    }
    const changed =
      argv.changed === true
        ? manifestEntries(g.root, manifest)
            .filter((e) => e.state === 'changed')
            .map((e) => e.file)
        : [];
    const files = [...new Set([...named, ...changed])];
    const port = openZymkey({
      backend: g.backend,
      simState: g.simState,
      runner: createRunner(),
      root: g.root,
    });
    const result = await signFiles(port, g.root, files);
    if (result.failed.length > 0) throw unsignedError(g.root, result.failed);
    out.data(result.signed.length === 0 ? 'nothing to sign' : `signed ${result.signed.join(', ')}`, {
      signed: result.signed,
    });
  },
};

export const supervisedBootCommand: CommandBody = {
  builder: (y) =>
    y
      .command([status, update])
      .demandCommand(1, 'Name a supervised-boot command; see zkluks supervised-boot --help.'),
  handler: () => undefined,
};
