// zkluks initramfs install|check|remove: put the boot files in place (keyscript, hook, kernel hook,
// crypttab line), verify the image the firmware will load, and take it all out again.
import type { Argv, CommandModule } from 'yargs';
import type { CommandBody } from '../commands.ts';
import { ExitCode, UsageError } from '../../errors.ts';
import { openZymkey } from '../../device/open.ts';
import { createRunner, type Runner } from '../../exec.ts';
import type { GlobalOptions } from '../global-options.ts';
import { rebuildInitramfs } from '../../hint.ts';
import { applyPlan, type ImageCheck } from '../../initramfs/apply.ts';
import { runCheck, type CheckReport } from '../../initramfs/check.ts';
import { ENTRY_STATE_TEXT, type ManifestState } from '../../initramfs/manifest-verdict.ts';
import { formatOptions } from '../../initramfs/crypttab.ts';
import { gatherInstallFacts } from '../../initramfs/install-facts.ts';
import { planInstall, planRemove, type Plan, type Step } from '../../initramfs/plan-install.ts';
import {
  describeSigning,
  guardBootFiles,
  isInitramfsImage,
  signAfterRebuildWarning,
  supervisedBootInfo,
  withSignedBootFiles,
  type SigningPlan,
} from '../../initramfs/supervised-boot.ts';
import { planBootFilesSigning } from '../supervised-boot-guard.ts';
import { globalOptions } from '../global-options.ts';
import { withInterruptSignal } from '../interrupt.ts';
import { givenCommandWithout } from '../given-command.ts';
import { createOutput, type Output } from '../output.ts';

function describeStep(step: Step): string {
  switch (step.kind) {
    case 'backup-crypttab':
      return `back up /etc/crypttab to ${step.path}`;
    case 'write-file':
      return `${step.change} ${step.path} (mode ${step.mode.toString(8)})`;
    case 'write-crypttab':
      return step.action === 'add'
        ? `add to /etc/crypttab: ${step.after}`
        : step.action === 'update'
          ? `change in /etc/crypttab: ${step.before}\n    -> ${step.after}`
          : `restore in /etc/crypttab: ${step.after ?? '(line removed)'}`;
    case 'remove-file':
      return `remove ${step.path}`;
    case 'update-initramfs':
      return `run ${step.command.join(' ')}`;
    case 'verify-images':
      return 'verify the initramfs image(s) the firmware will load (lsinitramfs)';
  }
}

/** The plan without file contents, for --json. */
function planJson(plan: Plan) {
  return {
    ...plan,
    steps: plan.steps.map((s) =>
      'content' in s ? { ...s, content: undefined, bytes: s.content.length } : s,
    ),
  };
}

function printPlan(
  out: Output,
  plan: Plan,
  dryRun: boolean,
  json: boolean,
  extra: object = {},
  more: string[] = [],
): void {
  const lines = [
    `${plan.operation} for '${plan.volume.name}'${plan.volume.uuid ? ` (UUID=${plan.volume.uuid})` : ''}${dryRun ? ' (dry run: nothing changed)' : ''}`,
    ...plan.steps.map((s) => `  ${dryRun ? 'would ' : ''}${describeStep(s)}`),
    ...plan.unchanged.map((p) => `  unchanged ${p}`),
  ];
  if (plan.droppedOptions.length > 0) {
    lines.push(`  dropped crypttab options: ${formatOptions(plan.droppedOptions)}`);
  }
  for (const note of plan.notes) lines.push(`  note: ${note}`);
  lines.push(...more.map((l) => `  ${l}`));
  out.data(lines.join('\n'), { dryRun, plan: planJson(plan), ...extra });
}

function imageLines(images: ImageCheck[], withFindings: boolean): string[] {
  return images.flatMap((i) => [
    `image      ${i.image} (${i.because})${i.kernelVersions.length ? `, kernel ${i.kernelVersions.join(', ')}` : ''}`,
    ...(i.findings.length === 0
      ? ['           ok: keyscript, zkunlockifs, Zymbit state, zkenv.conf and I2C modules inside']
      : withFindings
        ? i.findings.map((f) => `           ${f.level}: ${f.message}`)
        : []),
    ...(i.inside === null
      ? []
      : [
          i.inside.tokenCopies.length > 0
            ? `           token copy: ${i.inside.tokenCopies.join(', ')} (boots skip the header read while the header is unchanged)`
            : '           token copy: none (boots read the LUKS2 header; the hook makes one when it finds the volume on the build system)',
        ]),
  ]);
}

function common<T>(y: Argv<T>) {
  return y
    .positional('volume', {
      type: 'string',
      describe: 'LUKS device, crypttab name or UUID=… (default: the zkluks line, or the only crypttab line)',
    })
    .option('zkunlockifs', {
      type: 'string',
      describe: "Path of zkunlockifs (default: found in Zymbit's places)",
    });
}

/**
 * Apply a plan; on a Pi whose SCM supervises the boot files, sign in its manifest each file the
 * rebuild changed (or refuse first when zkluks could not). Without a rebuild, say what to sign after one.
 */
async function applySupervised(
  out: Output,
  plan: Plan,
  g: GlobalOptions,
  runner: Runner,
): Promise<{ images: ImageCheck[]; signed: string[] }> {
  const port = openZymkey({ backend: g.backend, simState: g.simState, runner, root: g.root });
  const rebuilds = plan.steps.some((s) => s.kind === 'update-initramfs');
  if (!rebuilds) {
    const info = await supervisedBootInfo(port);
    const images = (info.manifest ?? []).filter(isInitramfsImage);
    if (info.scm && images.length > 0) out.warn(signAfterRebuildWarning(g.root, images));
  }
  const guard = rebuilds ? await guardBootFiles(port, g.root, `${plan.operation} the boot files`) : null;
  // A signal stops the plan between steps (and, before the rebuild, puts everything back).
  const { result, signed } = await withInterruptSignal((signal) =>
    withSignedBootFiles(guard, () =>
      applyPlan(plan, { runner, root: g.root, signal, again: givenCommandWithout(['dry-run']) }),
    ),
  );
  if (signed.length > 0 && !g.json) {
    out.info(`supervised boot: signed ${signed.join(', ')} in the SCM's manifest (they changed)`);
  }
  return { images: result.images, signed };
}

/**
 * The plan of a dry run, with what the run would sign in an SCM's Supervised Boot manifest (the
 * images its rebuild may change), or the run's own refusal when the manifest cannot be read.
 */
async function printDryRun(out: Output, plan: Plan, g: GlobalOptions): Promise<void> {
  const rebuilds = plan.steps.some((s) => s.kind === 'update-initramfs');
  const signing: SigningPlan = await planBootFilesSigning(g, `${plan.operation} the boot files`, {
    initramfs: rebuilds,
    paths: [],
    rebuildLater: !rebuilds,
  });
  printPlan(out, plan, true, g.json, { supervisedBoot: signing }, describeSigning(g.root, signing));
}

const install: CommandModule = {
  command: 'install [volume]',
  describe: 'Install the keyscript, hook and crypttab line, rebuild and verify the initramfs',
  builder: (y) =>
    common(y)
      .option('name', { type: 'string', describe: 'crypttab name for a new line (default: cryptroot)' })
      .option('update', {
        type: 'boolean',
        default: true,
        describe:
          'Run update-initramfs -u -k all (under --root: chroot DIR update-initramfs -c -k all; --no-update skips it)',
      })
      .option('timeout', {
        type: 'number',
        describe:
          'Seconds before the keyscript falls back to the passphrase (default 10; /etc/zkluks/boot.conf)',
      }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const out = createOutput(g.json);
    const timeout = argv.timeout as number | undefined;
    if (timeout !== undefined && (!Number.isInteger(timeout) || timeout < 1 || timeout > 600)) {
      throw new UsageError(
        `Failed to read --timeout: '${String(timeout)}' is not a whole number of seconds from 1 to 600`,
        {
          hint: givenCommandWithout(['timeout='], '--timeout', '10'),
        },
      );
    }
    const runner = createRunner();
    const facts = await gatherInstallFacts({
      runner,
      root: g.root,
      volume: argv.volume as string | undefined,
      name: argv.name as string | undefined,
      zkunlockifs: argv.zkunlockifs as string | undefined,
    });
    const plan = planInstall(facts, {
      name: argv.name as string | undefined,
      noUpdate: argv.update === false,
      timeoutSeconds: timeout,
    });
    for (const w of plan.warnings) out.warn(w);
    if (g.dryRun) return printDryRun(out, plan, g);
    const result = await applySupervised(out, plan, g, runner);
    const boot = facts.bootImages;
    if (!g.json) {
      printPlan(out, plan, false, false);
      for (const line of imageLines(result.images, true)) out.info(line);
      if (boot.kind === 'raspberry-pi') out.info(`firmware boot partition: ${boot.bootPartition}`);
      if (facts.console) out.info(facts.console.summary);
      if (plan.steps.every((s) => s.kind !== 'update-initramfs')) {
        out.info(`the initramfs was not rebuilt; run: ${rebuildInitramfs(g.root)}`);
      }
    } else {
      printPlan(out, plan, false, true, {
        images: result.images,
        bootImages: boot,
        console: facts.console,
        supervisedBoot: { signed: result.signed },
      });
    }
  },
};

function manifestLines(state: ManifestState | null): string[] {
  if (state === null || state.status === 'none') return [];
  if (state.status === 'unreadable')
    return [`manifest   the SCM's Supervised Boot manifest cannot be read: ${state.reason}`];
  if (state.entries.length === 0)
    return ["manifest   the SCM's Supervised Boot manifest is empty (Supervised Boot off)"];
  return state.entries.map((e) => `manifest   ${e.path}: ${ENTRY_STATE_TEXT[e.state]}`);
}

function printCheck(out: Output, report: CheckReport): void {
  const human = [
    `volume     ${report.volume.name ?? '-'}${report.volume.uuid ? ` UUID=${report.volume.uuid}` : ''}`,
    `crypttab   ${report.crypttabLine ?? '(no line)'}`,
    `zkunlockifs ${report.zkunlockifs ?? '(not installed)'}`,
    `MODULES    ${report.modules ?? '(default)'}`,
    ...report.files.map((f) => `file       ${f.path}: ${f.state}`),
    ...imageLines(report.images, false),
    ...manifestLines(report.supervisedBoot),
    ...(report.console ? [`prompt     ${report.console.summary}`] : []),
    ...report.findings
      .filter((f) => f.level !== 'info')
      .map((f) => `${f.level}: ${f.message}${f.hint ? `\n  hint: ${f.hint}` : ''}`),
    report.ok ? 'ok' : 'NOT ok: the Zymkey path will not work at the next boot',
  ].join('\n');
  out.data(human, report);
}

const check: CommandModule = {
  command: 'check [volume]',
  describe:
    'Verify crypttab, the boot files and the image the firmware will load (read-only; exit 1 on errors)',
  builder: (y) =>
    common(y).option('image', { type: 'string', describe: 'Check this image (path under --root) instead' }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const runner = createRunner();
    const report = await runCheck({
      runner,
      root: g.root,
      zymkey: openZymkey({ backend: g.backend, simState: g.simState, runner, root: g.root }),
      volume: argv.volume as string | undefined,
      zkunlockifs: argv.zkunlockifs as string | undefined,
      image: argv.image as string | undefined,
    });
    printCheck(createOutput(g.json), report);
    if (!report.ok) process.exitCode = ExitCode.failed;
  },
};

const remove: CommandModule = {
  command: 'remove [volume]',
  describe: 'Put crypttab back as it was, remove the zkluks boot files and rebuild the initramfs',
  builder: (y) =>
    common(y).option('update', {
      type: 'boolean',
      default: true,
      describe:
        'Run update-initramfs -u -k all (under --root: chroot DIR update-initramfs -c -k all; --no-update skips it)',
    }),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const out = createOutput(g.json);
    const runner = createRunner();
    const facts = await gatherInstallFacts({
      runner,
      root: g.root,
      volume: argv.volume as string | undefined,
      zkunlockifs: argv.zkunlockifs as string | undefined,
      onlyOurs: true,
    });
    const plan = planRemove(facts, { noUpdate: argv.update === false });
    for (const w of plan.warnings) out.warn(w);
    if (g.dryRun) return printDryRun(out, plan, g);
    const { signed } = await applySupervised(out, plan, g, runner);
    printPlan(out, plan, false, g.json, { supervisedBoot: { signed } });
  },
};

export const initramfsCommand: CommandBody = {
  builder: (y) =>
    y
      .command([install, check, remove])
      .demandCommand(1, 'Name an initramfs command; see zkluks initramfs --help.'),
  handler: () => undefined,
};
