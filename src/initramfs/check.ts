// `zkluks initramfs check`: read-only. Is the crypttab line right, are the boot files installed and
// current, is zkunlockifs there with Zymbit's state, and does the image the firmware will load carry
// all of it? On a Pi with a Zymbit SCM: does each file of its Supervised Boot manifest still match,
// so the next boot passes the module's verification? Findings are pure functions of the gathered facts.
import type { ZymkeyPort } from '../device/port.ts';
import type { Runner } from '../exec.ts';
import { rebuildInitramfs, zkluksCommand } from '../hint.ts';
import type { BootImageReport } from './boot-image.ts';
import { BOOT_PATHS, INSTALLED_FILES, renderBootFiles } from './boot-files.ts';
import type { PromptConsole } from './console.ts';
import { formatEntry, isZkluksEntry, optionValue } from './crypttab.ts';
import { imagesToVerify, verifyImages, type ImageCheck } from './apply.ts';
import { gatherInstallFacts, type InstallFacts } from './install-facts.ts';
import { manifestVerdicts, readManifestState, type ManifestState } from './manifest-verdict.ts';
import { zymbitSignCommand } from './supervised-boot.ts';

export interface CheckFinding {
  level: 'error' | 'warning' | 'info';
  message: string;
  hint?: string;
}

export interface FileState {
  path: string;
  state: 'current' | 'missing' | 'outdated' | 'present';
}

export interface CheckReport {
  ok: boolean;
  volume: { name: string | null; uuid: string | null; device: string | null };
  crypttabLine: string | null;
  files: FileState[];
  zkunlockifs: string | null;
  modules: string | null;
  bootImages: BootImageReport;
  images: ImageCheck[];
  console: PromptConsole | null;
  /** The SCM's Supervised Boot manifest against the disk; null when no Zymkey port was given. */
  supervisedBoot: ManifestState | null;
  findings: CheckFinding[];
}

export function fileStates(facts: InstallFacts): FileState[] {
  const rendered = new Map(
    renderBootFiles({ zkunlockifs: facts.zkunlockifs ?? '/sbin/zkunlockifs' }).map((f) => [f.path, f]),
  );
  return INSTALLED_FILES.map((path) => {
    const current = facts.installed[path] ?? null;
    const want = rendered.get(path);
    if (current === null) return { path, state: 'missing' };
    if (want?.keepExisting) return { path, state: 'present' };
    return { path, state: current === want?.content ? 'current' : 'outdated' };
  });
}

/** Pure: what is wrong, from the facts and the inspected images. */
export function checkFindings(
  facts: InstallFacts,
  images: ImageCheck[],
  files: FileState[] = fileStates(facts),
): CheckFinding[] {
  const out: CheckFinding[] = [];
  const add = (level: CheckFinding['level'], message: string, hint?: string) =>
    out.push(hint === undefined ? { level, message } : { level, message, hint });
  const install = zkluksCommand(facts.root, 'initramfs', 'install');
  const entry = facts.volume.entry;
  if (entry === null) add('error', 'crypttab has no line for the volume', install);
  else {
    if (!isZkluksEntry(entry))
      add('error', `crypttab line '${entry.name}' does not use the zkluks keyscript`, install);
    if (optionValue(entry, 'keyslot') !== undefined || optionValue(entry, 'key-slot') !== undefined) {
      add(
        'error',
        `crypttab line '${entry.name}' has keyslot=, which stops the passphrase fallback`,
        install,
      );
    }
    if (optionValue(entry, 'initramfs') === undefined) {
      add(
        'warning',
        `crypttab line '${entry.name}' lacks 'initramfs'; only the root device is unlocked early without it`,
        install,
      );
    }
  }
  for (const f of files) {
    if (f.state === 'missing' && f.path !== BOOT_PATHS.bootConf)
      add('error', `${f.path} is missing`, install);
    if (f.state === 'outdated') add('warning', `${f.path} differs from what this zkluks installs`, install);
  }
  if (facts.zkunlockifs === null)
    add('error', 'zkunlockifs is not installed', "apt install zksaapps (Zymbit's standalone tools)");
  if (!facts.zymbitState)
    add(
      'error',
      `${BOOT_PATHS.zymbitState} is missing`,
      "reinstall Zymbit's software: the Zymkey cannot unseal without its state",
    );
  else if (!facts.zkenv)
    add('warning', `${BOOT_PATHS.zkenv} is missing (ZK_GPIO_WAKE_PIN, needed from kernel 6.6 on)`);
  if (facts.volume.hasZymkeyToken === false) {
    add(
      'error',
      'the LUKS2 header has no zkluks-zymkey token',
      `zkluks enroll '${facts.volume.device ?? ''}'`,
    );
  }
  if (facts.modules === 'dep')
    add('info', 'initramfs-tools uses MODULES=dep; the zkluks hook adds the I2C modules itself');
  if (images.length === 0) add('error', 'no initramfs image found', rebuildInitramfs(facts.root));
  for (const img of images) {
    for (const f of img.findings)
      add(f.level, `${img.image}: ${f.message}`, `${install} (rebuilds the image)`);
    const stale = img.kernelVersions.filter((v) => !facts.kernels.includes(v));
    if (stale.length > 0 && facts.kernels.length > 0) {
      add(
        'warning',
        `${img.image} was built for kernel ${stale.join(', ')}, which is not installed`,
        rebuildInitramfs(facts.root),
      );
    }
  }
  if (facts.console) add('info', facts.console.summary);
  return out;
}

export interface CheckOptions {
  runner: Runner;
  root: string;
  volume?: string;
  zkunlockifs?: string;
  /** Check this image (a path under root) instead of the ones the firmware loads. */
  image?: string;
  /** The module, to read an SCM's Supervised Boot manifest (read-only); absent: not checked. */
  zymkey?: ZymkeyPort;
}

/**
 * Pure: the findings of an SCM's manifest state (none without an SCM, nothing for all-matching),
 * and each image the firmware loads that the manifest leaves out, so the SCM never verifies it.
 */
export function supervisedBootFindings(
  root: string,
  state: ManifestState | null,
  boot: BootImageReport | null = null,
): CheckFinding[] {
  if (state === null || state.status === 'none') return [];
  const out: CheckFinding[] = manifestVerdicts(
    root,
    state,
    null,
    zkluksCommand(root, 'initramfs', 'check'),
  ).flatMap((v) =>
    v.severity === 'ok'
      ? []
      : [{ level: v.severity, message: v.summary, ...(v.hint ? { hint: v.hint } : {}) }],
  );
  if (state.status !== 'read' || state.entries.length === 0 || boot?.kind !== 'raspberry-pi') return out;
  const prefix = `${state.bootPartition}/`;
  const inManifest = new Set(state.entries.map((e) => e.file));
  for (const img of boot.images) {
    if (!img.exists || !img.image.startsWith(prefix)) continue;
    const file = img.image.slice(prefix.length);
    if (inManifest.has(file)) continue;
    out.push({
      level: 'warning',
      message: `the firmware loads ${img.image} (${img.because}), which is not in the SCM's Supervised Boot manifest: the SCM does not verify it before boot`,
      hint: `${zymbitSignCommand(file)} (adds it, signed as it is now; zkluks signs it again after each rebuild)`,
    });
  }
  return out;
}

export async function runCheck(opts: CheckOptions): Promise<CheckReport> {
  const facts = await gatherInstallFacts({ ...opts, onlyOurs: true });
  const targets =
    opts.image === undefined
      ? imagesToVerify(opts.root, facts.bootImages)
      : [{ image: opts.image, kernel: null, because: 'named with --image', models: 'all', exists: true }];
  const expected = facts.zkunlockifs ?? opts.zkunlockifs ?? '/sbin/zkunlockifs';
  const images = await verifyImages(opts.runner, opts.root, expected, targets);
  const files = fileStates(facts);
  const supervisedBoot = opts.zymkey ? await readManifestState(opts.zymkey, opts.root) : null;
  const findings = [
    ...checkFindings(facts, images, files),
    ...supervisedBootFindings(opts.root, supervisedBoot, facts.bootImages),
  ];
  return {
    ok: !findings.some((f) => f.level === 'error'),
    volume: {
      name: facts.volume.entry?.name ?? facts.volume.name,
      uuid: facts.volume.uuid,
      device: facts.volume.device,
    },
    crypttabLine: facts.volume.entry === null ? null : formatEntry(facts.volume.entry),
    files,
    zkunlockifs: facts.zkunlockifs,
    modules: facts.modules,
    bootImages: facts.bootImages,
    images,
    console: facts.console,
    supervisedBoot,
    findings,
  };
}
