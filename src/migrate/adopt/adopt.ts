// zkluks adopt end to end: read the tree, the header and the Zymkey once; plan what is left; run it.
// Header changes go through the keyslot operations (recovery add, enroll, and a removal plan run by
// the keyslot executor), authorized by the key Zymbit's script sealed in key.bin.lock, which stays in
// memory and reaches cryptsetup on stdin only. Files are written aside and renamed into place.
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../../atomic-write.ts';
import { ZkluksError } from '../../errors.ts';
import { shellWord, systemFile, zkluksCommand } from '../../hint.ts';
import {
  applyPlan as applyInstall,
  imagesToVerify,
  verifyImages,
  type ImageCheck,
} from '../../initramfs/apply.ts';
import { bootImagesFrom } from '../../initramfs/boot-image.ts';
import { sourceUuid } from '../../initramfs/crypttab.ts';
import { findZkunlockifs, gatherInstallFacts } from '../../initramfs/install-facts.ts';
import { planInstall } from '../../initramfs/plan-install.ts';
import { applyPlan as applyKeyslotPlan, type ApplyHooks } from '../../keyslot/apply.ts';
import { readZymbitKey, ZYMBIT_KEY_LOCK } from '../../keyslot/authority-zymbit.ts';
import { testKey } from '../../keyslot/cryptsetup.ts';
import { readHeader } from '../../keyslot/header.ts';
import { settleFirst } from '../../keyslot/operation.ts';
import {
  checkZymkeyTokens,
  enroll,
  recoveryAdd,
  verifyZymkey,
  type KeyslotDeps,
} from '../../keyslot/operations.ts';
import { viewVolume } from '../../keyslot/volume-view.ts';
import { DEFAULT_LOCK_DIR, withVolumeLock } from '../../keyslot/volume-lock.ts';
import { under } from '../../root-path.ts';
import {
  bootPartitionOf,
  signFiles,
  supervisedBootInfo,
  unreadableRefusal,
  zymbitSignCommand,
} from '../../initramfs/supervised-boot.ts';
import {
  configWithoutZymbitLine,
  debianKernelHook,
  MANIFEST_OUT,
  readLayout,
  readManifestOut,
  type Layout,
} from './layout.ts';
import { describeStep, planAdopt, type AdoptPlan, type AdoptStep, type AdoptSupervisedBoot } from './plan.ts';

export interface AdoptDeps extends KeyslotDeps {
  /** The system tree ('/' or a mounted/staged root). */
  root: string;
}

export interface AdoptRequest {
  /** The LUKS volume; default: the source of the root's crypttab line. */
  volume?: string;
  escrow: string | null;
  removeOld: boolean;
  dryRun: boolean;
  /** The command line that runs this adopt again, as hints name it (default: zkluks adopt [--root DIR]). */
  again?: string;
}

export interface AdoptResult {
  plan: AdoptPlan;
  /** Steps done by this run (empty for a dry run). */
  done: AdoptStep[];
  recoveryKey: string | null;
  recoverySlot: number | null;
  zymkeySlot: number | null;
  escrowRecipient: string | null;
  images: ImageCheck[];
}

/** A device the tree's crypttab names is the tree's own under --root when the tree has it. */
export function resolveVolume(root: string, volume: string): string {
  const uuid = sourceUuid(volume);
  const path = uuid ? `/dev/disk/by-uuid/${uuid.toLowerCase()}` : volume;
  if (root !== '/' && path.startsWith('/dev/') && existsSync(under(root, path))) return under(root, path);
  return path;
}

interface Gathered {
  layout: Layout;
  volume: string;
  /** Zymbit's key, when key.bin.lock is present and it opens a slot. */
  zymbitKey: Buffer | undefined;
  oldSlot: number | null;
}

async function gather(deps: AdoptDeps, request: AdoptRequest) {
  const layout = readLayout(deps.root);
  const source = request.volume ?? layout.entry?.source;
  if (!source) {
    throw new ZkluksError(`Failed to adopt: no volume named and ${layout.found[0]}`, {
      hint: zkluksCommand(deps.root, 'adopt', 'VOLUME'),
    });
  }
  const volume = resolveVolume(deps.root, source);
  // A change an earlier run left half-done (its zkluks-pending record) is settled first, so the
  // plan sees the volume as it really is; a dry run only reads.
  const header = request.dryRun
    ? await readHeader(deps.runner, volume)
    : (
        await withVolumeLock(
          volume,
          () => settleFirst(deps, 'recovery-add', volume, false),
          deps.lockDir ?? DEFAULT_LOCK_DIR,
        )
      ).header;
  const view = viewVolume(header);
  let zymbitKey: Buffer | undefined;
  let oldSlot: number | null = null;
  if (layout.lockPresent) {
    const key = await readZymbitKey(deps, under(deps.root, ZYMBIT_KEY_LOCK), volume);
    const tested = await testKey(deps.runner, volume, { bytes: key });
    if (tested.opens) {
      zymbitKey = key;
      oldSlot = tested.slot;
    } else key.fill(0);
  }
  const { checks, keys } = await checkZymkeyTokens(deps, view);
  for (const k of keys.values()) k.fill(0);
  let bootVerified = false;
  if (layout.entryKind === 'zkluks' && !layout.zymbitInitramfsLine) {
    const zk = findZkunlockifs(deps.root);
    const images = imagesToVerify(deps.root);
    if (zk && images.length > 0) {
      const verified = await verifyImages(deps.runner, deps.root, zk, images);
      bootVerified = verified.every((i) => !i.findings.some((f) => f.level === 'error'));
    }
  }
  const supervisedBoot = await gatherSupervisedBoot(deps, layout);
  const state = {
    supervisedBoot,
    layout,
    volume,
    oldSlot,
    slots: header.keyslots.map((k) => k.id),
    hasRecovery: view.recovery.some((r) => r.match !== 'mismatch'),
    zymkeyVerified: checks.some((c) => c.opens),
    hasZymkeyToken: view.zymkey.length > 0,
    bootVerified,
  };
  const gathered: Gathered = { layout, volume, zymbitKey, oldSlot };
  return { state, gathered };
}

/**
 * An SCM's Supervised Boot as adopt needs it: its manifest, config.txt's and the loaded images' names
 * in it, and what an interrupted run took out. Refuses (as every change to boot files does) when an
 * SCM is there but its manifest cannot be read.
 */
async function gatherSupervisedBoot(deps: AdoptDeps, layout: Layout): Promise<AdoptSupervisedBoot | null> {
  const info = await supervisedBootInfo(deps.zymkey());
  if (!info.scm) return null;
  if (info.manifest === null) throw unreadableRefusal('adopt the boot files', info);
  const takenOut = readManifestOut(deps.root);
  if (info.manifest.length === 0 && takenOut.length === 0) return null;
  const boot = bootPartitionOf(deps.root);
  const relative = (path: string) => (path.startsWith(`${boot}/`) ? [path.slice(boot.length + 1)] : []);
  let images: string[] = [];
  if (layout.configTxt !== null && layout.configText !== null) {
    const dir = dirname(layout.configTxt);
    images = bootImagesFrom({
      bootPartition: dir,
      configTxt: layout.zymbitInitramfsLine ? configWithoutZymbitLine(layout.configText) : layout.configText,
      bootFiles: listDir(under(deps.root, dir)),
    }).images.flatMap((i) => relative(i.image));
  }
  return {
    manifest: [...info.manifest].sort(),
    configFile: layout.configTxt === null ? null : (relative(layout.configTxt)[0] ?? null),
    images: [...new Set(images)],
    takenOut,
  };
}

export async function adopt(
  deps: AdoptDeps,
  request: AdoptRequest,
  hooks: ApplyHooks = {},
): Promise<AdoptResult> {
  const lockDir = join(deps.lockDir ?? DEFAULT_LOCK_DIR, 'adopt');
  const { state, gathered } = await gather(deps, request);
  try {
    const plan = planAdopt(state, {
      escrow: request.escrow,
      removeOld: request.removeOld,
      ...(request.again === undefined ? {} : { again: request.again }),
    });
    const result: AdoptResult = {
      plan,
      done: [],
      recoveryKey: null,
      recoverySlot: null,
      zymkeySlot: null,
      escrowRecipient: null,
      images: [],
    };
    if (request.dryRun || plan.unchanged) return result;
    await withVolumeLock(gathered.volume, () => run(deps, plan, gathered, result, hooks), lockDir);
    return result;
  } finally {
    gathered.zymbitKey?.fill(0);
  }
}

function keepCopy(root: string, path: string, copy: string): void {
  const to = under(root, copy);
  if (existsSync(to)) return;
  mkdirSync(dirname(to), { recursive: true, mode: 0o700 });
  // Renamed into place only when complete: a kept copy that exists is whole.
  const tmp = `${to}.tmp`;
  copyFileSync(under(root, path), tmp);
  chmodSync(tmp, 0o600);
  renameSync(tmp, to);
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch {
    return [];
  }
}

function imageErrors(images: ImageCheck[]): string[] {
  return images.flatMap((i) =>
    i.findings.filter((f) => f.level === 'error').map((f) => `${i.image}: ${f.message}`),
  );
}

async function run(
  deps: AdoptDeps,
  plan: AdoptPlan,
  g: Gathered,
  result: AdoptResult,
  hooks: ApplyHooks,
): Promise<void> {
  const root = deps.root;
  try {
    await runSteps(deps, plan, g, result, hooks);
  } catch (error) {
    // A failed or interrupted run puts back what it took out of an SCM's manifest (a killed one
    // leaves the list in MANIFEST_OUT for the next run).
    const out = readManifestOut(root);
    if (out.length > 0) await manifestIn(deps, plan, out).catch(() => undefined);
    throw error;
  }
}

async function runSteps(
  deps: AdoptDeps,
  plan: AdoptPlan,
  g: Gathered,
  result: AdoptResult,
  hooks: ApplyHooks,
): Promise<void> {
  const { runner, root } = deps;
  const volume = g.volume;
  const authority = (): Buffer => {
    if (!g.zymbitKey)
      throw new ZkluksError(`Failed to adopt '${volume}': Zymbit's sealed key is not available`);
    return g.zymbitKey;
  };
  const zkunlockifs = () => {
    const zk = findZkunlockifs(root);
    if (!zk) {
      throw new ZkluksError('Failed to verify the initramfs: zkunlockifs is not installed', {
        hint: 'apt install zksaapps',
      });
    }
    return zk;
  };
  for (const step of plan.steps) {
    if (deps.signal?.aborted) {
      throw new ZkluksError(
        `Failed to adopt '${volume}': interrupted before '${describeStep(step)}'; the Pi boots as before, and '${plan.again}' (run again) finishes the job`,
      );
    }
    switch (step.kind) {
      case 'recovery-add': {
        const r = await recoveryAdd(
          deps,
          volume,
          { unlock: authority(), force: false, escrow: step.escrow, dryRun: false },
          hooks,
        );
        result.recoveryKey = r.applied?.recoveryKey ?? null;
        result.recoverySlot = r.applied?.recoverySlot ?? null;
        result.escrowRecipient = r.applied?.escrowRecipient ?? null;
        break;
      }
      case 'enroll': {
        const r = await enroll(deps, volume, {
          unlock: authority(),
          force: false,
          recoveryKey: false,
          escrow: null,
          dryRun: false,
        });
        result.zymkeySlot = r.applied?.zymkeySlot ?? null;
        break;
      }
      case 'verify-zymkey': {
        const v = await verifyZymkey(deps, volume);
        if (!v.ok) {
          throw new ZkluksError(
            `Failed to adopt '${volume}': the zkluks Zymkey slot does not open: ${v.detail}`,
            {
              hint: zkluksCommand(root, 'verify', shellWord(volume)),
            },
          );
        }
        result.zymkeySlot = v.slot;
        break;
      }
      case 'keep':
        keepCopy(root, step.path, step.copy);
        break;
      case 'install-boot-files': {
        const facts = await gatherInstallFacts({ runner, root, volume, name: step.name });
        // The tree's line names the device as the Pi sees it (/dev/mmcblk0p2): the same volume.
        const entry = g.layout.entry;
        if (entry && facts.volume.entry === null && resolveVolume(root, entry.source) === volume) {
          facts.volume.entry = entry;
        }
        await applyInstall(planInstall(facts, { name: step.name, noUpdate: true }), { runner, root });
        break;
      }
      case 'restore-kernel-hook':
        writeFileAtomic(under(root, step.path), debianKernelHook(), 0o755);
        break;
      case 'rebuild-initramfs': {
        const [file = 'update-initramfs', ...args] = step.command;
        const r = await runner(file, args, { reject: false, timeoutMs: 30 * 60_000 });
        if (r.exitCode !== 0) {
          throw new ZkluksError(
            `Failed to rebuild the initramfs: '${step.command.join(' ')}' exited ${r.exitCode}: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`,
            {
              hint: `${step.command.join(' ')} (run it by hand to see every message); the Pi still boots Zymbit's image; then ${plan.again} (again)`,
            },
          );
        }
        break;
      }
      case 'switch-config-txt': {
        const path = under(root, step.path);
        const text = g.layout.configText ?? '';
        const next = configWithoutZymbitLine(text);
        const dir = dirname(step.path);
        const report = bootImagesFrom({
          bootPartition: dir,
          configTxt: next,
          bootFiles: listDir(under(root, dir)),
        });
        const images = report.images;
        const absent = images.filter((i) => !i.exists).map((i) => i.image);
        if (images.length === 0 || absent.length > 0) {
          throw new ZkluksError(
            `Failed to adopt '${volume}': after the rebuild the firmware would find no image at ${absent.join(', ') || 'any auto_initramfs name'}; ${step.path} still loads Zymbit's initrd.img`,
            {
              hint: `check raspi-firmware placed the images (ls ${systemFile(root, dir)}), then ${plan.again} (again)`,
            },
          );
        }
        const bad = imageErrors(await verifyImages(runner, root, zkunlockifs(), images));
        if (bad.length > 0) {
          throw new ZkluksError(
            `Failed to adopt '${volume}': the new image is not ready (${bad.join('; ')}); ${step.path} still loads Zymbit's initrd.img`,
            { hint: zkluksCommand(root, 'initramfs', 'check') },
          );
        }
        writeFileAtomic(path, next, statSync(path).mode & 0o7777);
        break;
      }
      case 'verify-boot': {
        result.images = await verifyImages(runner, root, zkunlockifs());
        const bad = imageErrors(result.images);
        if (result.images.length === 0 || bad.length > 0) {
          throw new ZkluksError(
            `Failed to verify the initramfs: ${bad.join('; ') || 'no image the firmware loads was found'}`,
            { hint: `${zkluksCommand(root, 'initramfs', 'check')} (lists every finding)` },
          );
        }
        break;
      }
      case 'manifest-out':
        await manifestOut(deps, plan, step.files);
        break;
      case 'manifest-in':
        await manifestIn(deps, plan, step.files);
        break;
      case 'remove-old-slot':
        await removeOldSlot(deps, volume, step.slot);
        break;
      case 'remove-key-bin-lock':
        rmSync(under(root, step.path), { force: true });
        break;
    }
    result.done.push(step);
  }
}

function writeManifestOut(root: string, files: readonly string[]): void {
  const path = under(root, MANIFEST_OUT);
  if (files.length === 0) {
    rmSync(path, { force: true });
    return;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileAtomic(path, `${files.join('\n')}\n`, 0o600);
}

/** Name the files in MANIFEST_OUT, then take each out of the SCM's manifest. */
async function manifestOut(deps: AdoptDeps, plan: AdoptPlan, files: readonly string[]): Promise<void> {
  const port = deps.zymkey();
  if (!port.removeSupervisedBootFile) {
    throw new ZkluksError(
      `Failed to take ${files.join(', ')} out of the SCM's Supervised Boot manifest: this Zymkey backend cannot`,
    );
  }
  writeManifestOut(deps.root, [...new Set([...readManifestOut(deps.root), ...files])]);
  const info = await supervisedBootInfo(port);
  for (const file of files) {
    if (info.manifest !== null && !info.manifest.includes(file)) continue;
    try {
      await port.removeSupervisedBootFile(file);
    } catch (error) {
      throw new ZkluksError(
        `Failed to take ${file} out of the SCM's Supervised Boot manifest before adopt rewrites it: ${(error as Error).message}; it is not rewritten`,
        { hint: `systemctl start zkifc, then ${plan.again} (again)` },
      );
    }
  }
}

/** Sign `files` in the SCM's manifest as they are now (adding those not in it); drop them from MANIFEST_OUT. */
async function manifestIn(deps: AdoptDeps, plan: AdoptPlan, files: readonly string[]): Promise<void> {
  const { signed, failed } = await signFiles(deps.zymkey(), deps.root, files, deps.now?.() ?? new Date());
  writeManifestOut(
    deps.root,
    readManifestOut(deps.root).filter((f) => !signed.includes(f)),
  );
  if (failed.length > 0) {
    // Each file that failed is out of the manifest (taken out, or never in): the SCM does not verify
    // it, so the next boot is not at risk, but the boot is not supervised until it is signed.
    throw new ZkluksError(
      `Failed to sign ${failed.map((f) => `${f.file} (${f.why})`).join(', ')} in the SCM's Supervised Boot manifest: the SCM does not verify ${failed.length === 1 ? 'it' : 'them'} at boot until signed`,
      {
        hint: `systemctl start zkifc, then ${plan.again} (again; it signs ${failed.map((f) => f.file).join(', ')}), or Zymbit's own call: ${zymbitSignCommand(failed[0]?.file ?? 'FILE')}`,
      },
    );
  }
}

/** Wipe Zymbit's keyslot through the keyslot executor, once a recovery key and the zkluks slot are proven. */
async function removeOldSlot(deps: AdoptDeps, volume: string, slot: number): Promise<void> {
  await withVolumeLock(
    volume,
    async () => {
      const header = await readHeader(deps.runner, volume);
      const view = viewVolume(header);
      const recovery = view.recovery.find((r) => r.match !== 'mismatch' && r.slot !== slot);
      const { checks, keys } = await checkZymkeyTokens(deps, view);
      for (const k of keys.values()) k.fill(0);
      const zymkey = checks.find((c) => c.opens && c.slot !== slot);
      if (!recovery || !zymkey) {
        throw new ZkluksError(
          `Failed to adopt '${volume}': Zymbit's keyslot ${slot} is kept, since ${!recovery ? 'no recovery key' : 'no working zkluks Zymkey slot'} would remain`,
          { hint: zkluksCommand(deps.root, 'list', shellWord(volume)) },
        );
      }
      if (!header.keyslots.some((k) => k.id === slot)) return;
      await applyKeyslotPlan(
        {
          operation: 'remove',
          volume,
          unchanged: null,
          generates: [],
          escrowRecipient: null,
          steps: [{ op: 'kill-slot', slot }],
          notes: [],
        },
        header,
        { runner: deps.runner, zymkey: deps.zymkey, signal: deps.signal, tmpfs: deps.tmpfs, now: deps.now },
      );
    },
    deps.lockDir ?? DEFAULT_LOCK_DIR,
  );
}
