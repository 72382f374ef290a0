// encrypt-root's planner: facts + options -> the whole journey as plain data: what arming changes
// on the running system (in order, cmdline.txt last because it is what commits the next boot), what
// the encrypting boot does, and what the first boot afterwards does. Refuses with every preflight
// problem at once. Pure: the planned UUID and the time come in from outside.
import { RefusedError } from '../../errors.ts';
import { BOOT_PATHS } from '../../initramfs/boot-files.ts';
import { planInstall, updateCommand, type Step as InstallStep } from '../../initramfs/plan-install.ts';
import { estimateSeconds, mib, type EncryptFacts } from './facts.ts';
import { renderBootScript, renderFinishUnit, renderHook, renderPlanConf } from './boot-files.ts';
import {
  ENCRYPT_PATHS,
  MIB,
  RECOVERY_SLOT,
  RECOVERY_TOKEN_ID,
  REDUCE_MIB,
  ZYMKEY_SLOT,
  ZYMKEY_TOKEN_ID,
} from './layout.ts';
import { preflight } from './preflight.ts';
import { cmdlineRoot, setCmdlineRoot, setFstabRoot } from './root-files.ts';

export const DEFAULT_MAPPING = 'cryptroot';

export type ArmStep =
  | { kind: 'generate-keys' }
  | { kind: 'deliver-recovery-key'; file: string | null; escrow: string | null }
  | { kind: 'write-sealed-keys'; path: string }
  | { kind: 'write-tokens'; zymkey: string; recovery: string }
  | { kind: 'write-file'; path: string; mode: number; content: string; what: string }
  | { kind: 'initramfs-install'; steps: InstallStep[] }
  | { kind: 'symlink'; path: string; target: string; what: string }
  | { kind: 'update-initramfs'; command: string[] }
  | { kind: 'switch-cmdline'; path: string; content: string; before: string; after: string };

export interface EncryptPlan {
  device: string;
  /** How the encrypting boot finds the partition (PARTUUID=… when known). */
  bootDevice: string;
  plainRoot: string;
  name: string;
  uuid: string;
  deviceBytes: number;
  /** The size the filesystem is shrunk to (the LUKS2 header takes the rest). */
  fsBytes: number;
  estimateSeconds: number | null;
  escrow: string | null;
  recoveryKeyFile: string | null;
  steps: ArmStep[];
  bootSteps: string[];
  firstBootSteps: string[];
  warnings: string[];
}

export interface EncryptOptions {
  name?: string;
  escrow: string | null;
  recoveryKeyFile: string | null;
  noUpdate: boolean;
  /** The zkluks executable the first-boot unit runs. */
  zkluks: string;
  /** The admin's command line without --device, which a fix that ends in a new run repeats. */
  again?: string;
}

export interface Generated {
  uuid: string;
  now: Date;
}

function problemsError(facts: EncryptFacts, again: string | undefined): RefusedError | null {
  const problems = preflight(facts, again);
  if (problems.length === 0) return null;
  const lines = problems.map((p) => `  - ${p.check}: ${p.reason}\n    fix: ${p.fix}`);
  const err = new RefusedError(
    `Refusing to encrypt the root filesystem: ${problems.length === 1 ? 'a preflight check failed' : `${problems.length} preflight checks failed`}:\n${lines.join('\n')}`,
    { hint: problems[0]?.fix },
  );
  return Object.assign(err, { problems });
}

export function formatDuration(seconds: number): string {
  if (seconds < 90) return `${seconds} s`;
  const minutes = Math.round(seconds / 60);
  return minutes < 90 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function planEncryptRoot(facts: EncryptFacts, opts: EncryptOptions, gen: Generated): EncryptPlan {
  const refused = problemsError(facts, opts.again);
  if (refused) throw refused;
  // preflight() guarantees these.
  const device = facts.device as NonNullable<EncryptFacts['device']>;
  const bootDir = facts.bootDir as string;
  const cmdline = facts.cmdline as string;
  const fstab = facts.fstab as string;
  const plainRoot = cmdlineRoot(cmdline) as string;
  const name = opts.name ?? DEFAULT_MAPPING;
  const mapper = `/dev/mapper/${name}`;
  const uuid = gen.uuid.toLowerCase();
  const bootDevice = device.partUuid !== null ? `PARTUUID=${device.partUuid}` : plainRoot;
  const fsBytes = device.bytes - REDUCE_MIB * MIB;
  const warnings: string[] = [];
  if (facts.rate === null)
    warnings.push(`could not measure the device's rate (${facts.rateError ?? 'not measured'})`);
  if (facts.zkunlockifs === null) throw new Error('unreachable: preflight checks zkunlockifs');

  const install = planInstall(
    {
      ...facts.install,
      volume: { name, uuid, device: null, entry: null, hasZymkeyToken: true, headerError: null },
    },
    { name, noUpdate: true },
  );
  warnings.push(...install.warnings);

  const cmdlinePath = `${bootDir}/cmdline.txt`;
  const newCmdline = setCmdlineRoot(cmdline, mapper);
  const steps: ArmStep[] = [
    { kind: 'generate-keys' },
    { kind: 'deliver-recovery-key', file: opts.recoveryKeyFile, escrow: opts.escrow },
    { kind: 'write-sealed-keys', path: ENCRYPT_PATHS.sealedKeys },
    { kind: 'write-tokens', zymkey: ENCRYPT_PATHS.zymkeyToken, recovery: ENCRYPT_PATHS.recoveryToken },
    {
      kind: 'write-file',
      path: ENCRYPT_PATHS.planConf,
      mode: 0o644,
      content: renderPlanConf({
        name,
        uuid,
        device: bootDevice,
        zkunlockifs: facts.zkunlockifs,
        armed: gen.now,
      }),
      what: 'the encrypting boot’s plan',
    },
    { kind: 'initramfs-install', steps: install.steps },
    {
      kind: 'write-file',
      path: ENCRYPT_PATHS.hook,
      mode: 0o755,
      content: renderHook(),
      what: 'initramfs hook',
    },
    {
      kind: 'write-file',
      path: ENCRYPT_PATHS.bootScript,
      mode: 0o755,
      content: renderBootScript(),
      what: 'the encrypting boot script (local-top)',
    },
    {
      kind: 'write-file',
      path: ENCRYPT_PATHS.finishUnit,
      mode: 0o644,
      content: renderFinishUnit(opts.zkluks),
      what: 'first-boot unit',
    },
    {
      kind: 'symlink',
      path: ENCRYPT_PATHS.finishUnitLink,
      target: ENCRYPT_PATHS.finishUnit,
      what: 'enable the first-boot unit',
    },
    {
      kind: 'write-file',
      path: `${ENCRYPT_PATHS.origDir}/fstab`,
      mode: 0o644,
      content: fstab,
      what: 'original fstab',
    },
    {
      kind: 'write-file',
      path: `${ENCRYPT_PATHS.origDir}/cmdline.txt`,
      mode: 0o644,
      content: cmdline,
      what: 'original cmdline.txt',
    },
    {
      kind: 'write-file',
      path: `${cmdlinePath}.zkluks-orig`,
      mode: 0o644,
      content: cmdline,
      what: 'original cmdline.txt on the boot partition (rename it back from any computer to boot the plain root)',
    },
    {
      kind: 'write-file',
      path: '/etc/fstab',
      mode: 0o644,
      content: setFstabRoot(fstab, mapper),
      what: `root line -> ${mapper}`,
    },
  ];
  if (!opts.noUpdate) steps.push({ kind: 'update-initramfs', command: updateCommand(facts.root) });
  steps.push({
    kind: 'switch-cmdline',
    path: cmdlinePath,
    content: newCmdline,
    before: plainRoot,
    after: mapper,
  });

  const estimate = estimateSeconds(device.bytes, facts.rate);
  return {
    device: device.path,
    bootDevice,
    plainRoot,
    name,
    uuid,
    deviceBytes: device.bytes,
    fsBytes,
    estimateSeconds: estimate,
    escrow: opts.escrow,
    recoveryKeyFile: opts.recoveryKeyFile,
    steps,
    bootSteps: [
      `find the plain root ${bootDevice} and unseal the keys with the Zymkey (zkunlockifs)`,
      'e2fsck -f -p: check the filesystem',
      `resize2fs to ${mib(fsBytes)} MiB (the LUKS2 header takes ${REDUCE_MIB} MiB); if anything so far fails, boot the plain root and record why`,
      `cryptsetup reencrypt --encrypt --reduce-device-size ${REDUCE_MIB}M --uuid ${uuid}: keyslot ${RECOVERY_SLOT} = the recovery key; progress on the console${estimate === null ? '' : `; about ${formatDuration(estimate)}`}; after a power cut the next boot resumes`,
      `keyslot ${ZYMKEY_SLOT} = the Zymkey key (priority prefer); tokens ${ZYMKEY_TOKEN_ID} zkluks-zymkey and ${RECOVERY_TOKEN_ID} zkluks-recovery${opts.escrow ? ` (escrowed to ${opts.escrow})` : ''}`,
      `cryptroot unlocks ${name} with the zkluks keyscript and the boot continues from ${mapper}`,
      `record in ${ENCRYPT_PATHS.record}`,
    ],
    firstBootSteps: [
      `zkluks encrypt-root --finish (the unit ${ENCRYPT_PATHS.finishUnit.split('/').pop()}): check ${name} is LUKS2 ${uuid} with both keyslots`,
      `remove ${[ENCRYPT_PATHS.sealedKeys, ENCRYPT_PATHS.planConf, ENCRYPT_PATHS.hook, ENCRYPT_PATHS.bootScript].join(', ')} and the unit`,
      'update-initramfs -u -k all (the image no longer carries the sealed keys)',
      `${BOOT_PATHS.crypttab}, /etc/fstab and cmdline.txt stay switched; the originals stay in ${ENCRYPT_PATHS.origDir}`,
    ],
    warnings,
  };
}

function describeStep(s: ArmStep): string[] {
  switch (s.kind) {
    case 'generate-keys':
      return ['generate the Zymkey key (64 bytes: the Zymkey’s RNG and the host’s) and a recovery key'];
    case 'deliver-recovery-key':
      return [
        `give the recovery key to the admin now: ${s.file ? `written to ${s.file} (0600)` : 'shown once on the terminal'}${s.escrow ? `, and escrowed to ${s.escrow}` : ''}; without --yes, confirm it is stored`,
      ];
    case 'write-sealed-keys':
      return [`write ${s.path} (0600): both keys sealed by the Zymkey; never in plaintext`];
    case 'write-tokens':
      return [`write ${s.zymkey} and ${s.recovery}: the tokens the encrypting boot imports`];
    case 'write-file':
      return [`write ${s.path}: ${s.what}`];
    case 'initramfs-install':
      return s.steps.map((i) =>
        i.kind === 'write-file'
          ? `write ${i.path} (zkluks boot files)`
          : i.kind === 'write-crypttab'
            ? `crypttab: ${i.before ? `${i.before} -> ` : ''}${i.after}`
            : i.kind === 'backup-crypttab'
              ? `keep the original crypttab as ${i.path}`
              : `${i.kind}`,
      );
    case 'symlink':
      return [`link ${s.path} -> ${s.target} (${s.what})`];
    case 'update-initramfs':
      return [`run ${s.command.join(' ')}`];
    case 'switch-cmdline':
      return [`last: ${s.path}: root=${s.before} -> root=${s.after} (this arms the next boot)`];
  }
}

export function describeEncryptPlan(plan: EncryptPlan): string {
  const lines = [
    `encrypt-root: ${plan.device} (${mib(plan.deviceBytes)} MiB) -> LUKS2 ${plan.uuid}, opened as /dev/mapper/${plan.name}`,
    `estimated time at boot: ${plan.estimateSeconds === null ? 'unknown' : formatDuration(plan.estimateSeconds)}`,
    '',
    'now (arming the next boot):',
    ...plan.steps.flatMap(describeStep).map((l, i) => `  ${i + 1}. ${l}`),
    '',
    'at the next boot (in the initramfs):',
    ...plan.bootSteps.map((l, i) => `  ${i + 1}. ${l}`),
    '',
    'at the first boot afterwards:',
    ...plan.firstBootSteps.map((l, i) => `  ${i + 1}. ${l}`),
  ];
  for (const w of plan.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}
