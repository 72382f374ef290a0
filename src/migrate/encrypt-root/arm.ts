// encrypt-root's executor: runs an EncryptPlan on the running system (or a staged tree). Keys are
// made first and the recovery key reaches the admin (hook) before anything is written; the keys are
// written only sealed by the Zymkey; cmdline.txt, which commits the next boot, is written last.
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../../atomic-write.ts';
import type { ZymkeyPort } from '../../device/port.ts';
import { ZkluksError } from '../../errors.ts';
import { zkluksCommand } from '../../hint.ts';
import type { Runner } from '../../exec.ts';
import { applyPlan as applyInstall, type ApplyResult } from '../../initramfs/apply.ts';
import type { Plan as InstallPlan, Step as InstallStep } from '../../initramfs/plan-install.ts';
import { escrowToAge } from '../../keyslot/escrow.ts';
import { newRecoveryKey } from '../../keyslot/recovery-key.ts';
import { recoveryToken, serializeToken, zymkeyToken, type AgeEscrow } from '../../keyslot/token.ts';
import { newZymkeyKey } from '../../keyslot/zymkey-key.ts';
import { under } from '../../root-path.ts';
import { RECOVERY_SLOT, treeDevice, ZYMKEY_SLOT } from './layout.ts';
import type { EncryptPlan } from './plan.ts';

export interface ArmDeps {
  runner: Runner;
  root: string;
  zymkey: () => ZymkeyPort;
  now?: () => Date;
}

export interface ArmHooks {
  /**
   * The recovery key, before anything is written: the CLI shows it or writes the key file, and may
   * ask the admin to confirm it is stored. Throwing stops the arming with nothing changed.
   */
  deliverRecoveryKey(key: string): Promise<void>;
}

export interface ArmResult {
  recoveryKey: string;
  escrow: AgeEscrow | null;
  images: ApplyResult['images'];
}

function write(path: string, content: string | Buffer, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, content, mode);
}

function installPlan(plan: EncryptPlan, steps: InstallStep[], zkunlockifs: string | null): InstallPlan {
  return {
    operation: 'install',
    volume: { name: plan.name, uuid: plan.uuid, device: plan.device },
    zkunlockifs,
    steps,
    unchanged: [],
    droppedOptions: [],
    warnings: [],
    notes: [],
  };
}

export async function armEncryptRoot(
  deps: ArmDeps,
  plan: EncryptPlan,
  hooks: ArmHooks,
  zkunlockifs: string,
): Promise<ArmResult> {
  const { runner, root } = deps;
  const now = deps.now ?? (() => new Date());
  const port = deps.zymkey();
  const zk = await newZymkeyKey(port);
  const recoveryKey = newRecoveryKey();
  let escrow: AgeEscrow | null = null;
  let images: ApplyResult['images'] = [];
  try {
    if (plan.escrow) escrow = await escrowToAge(runner, plan.escrow, recoveryKey);
    await hooks.deliverRecoveryKey(recoveryKey);
    const bundle = Buffer.concat([zk, Buffer.from(recoveryKey)]);
    let sealedBundle: Buffer;
    try {
      sealedBundle = await port.seal(bundle);
    } finally {
      bundle.fill(0);
    }
    const [sealedKey, info, binding] = [await port.seal(zk), await port.info(), await port.binding()];
    const created = now();
    for (const step of plan.steps) {
      switch (step.kind) {
        case 'generate-keys':
        case 'deliver-recovery-key':
          break;
        case 'write-sealed-keys':
          write(under(root, step.path), sealedBundle, 0o600);
          break;
        case 'write-tokens':
          write(
            under(root, step.zymkey),
            serializeToken(
              zymkeyToken({
                keyslot: ZYMKEY_SLOT,
                sealed: sealedKey,
                backend: port.backend,
                zymkey: { model: info.model, serial: info.serial, binding: binding.mode },
                created,
              }),
            ),
            0o600,
          );
          write(
            under(root, step.recovery),
            serializeToken(recoveryToken({ keyslot: RECOVERY_SLOT, created, ...(escrow ? { escrow } : {}) })),
            0o600,
          );
          break;
        case 'write-file':
          write(under(root, step.path), step.content, step.mode);
          break;
        case 'initramfs-install':
          await applyInstall(installPlan(plan, step.steps, zkunlockifs), { runner, root });
          break;
        case 'symlink': {
          const path = under(root, step.path);
          mkdirSync(dirname(path), { recursive: true });
          rmSync(path, { force: true });
          symlinkSync(step.target, path);
          break;
        }
        case 'update-initramfs':
          images = (
            await applyInstall(
              installPlan(
                plan,
                [{ kind: 'update-initramfs', command: step.command }, { kind: 'verify-images' }],
                zkunlockifs,
              ),
              { runner, root },
            )
          ).images;
          break;
        case 'switch-cmdline':
          write(under(root, step.path), step.content, 0o644);
          break;
      }
    }
  } catch (error) {
    if (error instanceof ZkluksError) throw error;
    throw new ZkluksError(`Failed to arm the encryption of ${plan.device}: ${(error as Error).message}`, {
      hint: `${zkluksCommand(root, 'encrypt-root', '--disarm', ...treeDevice(root, plan.device))} (puts every file back), then ${zkluksCommand(root, 'encrypt-root', '--dry-run', ...treeDevice(root, plan.device))}`,
      cause: error,
    });
  } finally {
    zk.fill(0);
  }
  return { recoveryKey, escrow, images };
}
