// Supervised Boot on the simulated SCM. The module keeps, inside itself, a signed manifest of files in
// the boot partition (paths relative to it, as Zymbit's API takes them) and a policy; at power-on,
// before the Pi may boot, it verifies every file against its signature. On a failure a module in
// developer mode only flashes 4-2 three times and lets the Pi boot; in production it self-destructs
// (policy destroy, and policy none, which Zymbit's SCM firmware does not honour: release notes #126)
// or holds the Pi in reset for good (policy hold-reset: "no recovery possible").
//
// The API mirrors Zymbit's Python calls: add_or_update_supervised_boot_file(filepath, slot=15),
// remove_supervised_boot_file(filepath), get_supervised_boot_file_manifest() (the paths only: the
// signatures never leave the module), set_supervised_boot_policy(policy_id). They go through zkifc,
// so zkifc must run, as for every API call.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { RefusedError, UsageError } from '../errors.ts';
import { zymkeyFailure } from './failures.ts';
import { simSession, type SimSession } from './sim.ts';
import {
  loadSimHost,
  loadSimModule,
  saveSimHost,
  saveSimModule,
  type SimModule,
  type SimScm,
  type SimScmPolicy,
} from './sim-state.ts';

/** The slot Zymbit's API signs with by default (a permanent ed25519 slot since the SCM beta). */
export const SCM_DEFAULT_SLOT = 15;

/** The manifest Zymbit ships on an SCM (Supervised Boot tutorial), 64-bit OS. */
export const SCM_SHIPPED_MANIFEST = [
  'bcm2711-rpi-cm4.dtb',
  'cmdline.txt',
  'config.txt',
  'initrd.img',
  'kernel8.img',
  'start4.elf',
  'zymbit_mac_address',
  'overlays/vc4-kms-v3d.dtbo',
] as const;

/** A manifest path as the API takes it: relative to the boot partition, no '..', no leading '/'. */
export function manifestPath(file: string): string {
  const clean = posix.normalize(file);
  if (file === '' || clean.startsWith('/') || clean === '.' || clean.split('/').includes('..')) {
    throw new UsageError(
      `Failed to name a Supervised Boot file: '${file}' is not a path inside the boot partition (give it relative to /boot, e.g. initrd.img)`,
      { hint: 'zkluks sim scm add initrd.img' },
    );
  }
  return clean;
}

/** SHA-256 (hex) of a file, null when it cannot be read. */
export function fileDigest(path: string): string | null {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch {
    return null;
  }
}

interface ScmSession extends SimSession {
  scm: SimScm;
}

/** An API session with an SCM: any other model refuses the Supervised Boot calls. */
function scmSession(dir: string, action: string): ScmSession {
  const s = simSession(dir, action, 'api');
  const scm = s.module.scm;
  if (scm === null) {
    throw zymkeyFailure('unknown', action, `a ${s.module.model} has no Supervised Boot (SCM only)`);
  }
  return { ...s, scm };
}

/** get_supervised_boot_file_manifest: the paths, never the signatures. */
export function simScmManifest(dir: string): string[] {
  return Object.keys(scmSession(dir, 'read the Supervised Boot manifest').scm.manifest).sort();
}

/** add_or_update_supervised_boot_file: sign the file as it is now. Returns the digest signed. */
export function simScmAddOrUpdate(dir: string, file: string, slot: number = SCM_DEFAULT_SLOT): string {
  const path = manifestPath(file);
  const action = `sign ${path} in the Supervised Boot manifest`;
  if (!Number.isInteger(slot) || slot < 0 || slot > 528) {
    throw zymkeyFailure('unknown', action, `slot ${slot} is not a key slot of the module`);
  }
  const s = scmSession(dir, action);
  const boot = s.host.boot ?? null;
  if (boot === null) {
    throw zymkeyFailure('unknown', action, 'the simulated host has no boot partition set');
  }
  const digest = fileDigest(join(boot, path));
  if (digest === null) throw zymkeyFailure('unknown', action, `${join(boot, path)} cannot be read`);
  s.scm.manifest[path] = digest;
  saveSimModule(dir, s.module);
  return digest;
}

/** remove_supervised_boot_file. An empty manifest turns Supervised Boot off. */
export function simScmRemove(dir: string, file: string): void {
  const path = manifestPath(file);
  const action = `remove ${path} from the Supervised Boot manifest`;
  const s = scmSession(dir, action);
  if (!(path in s.scm.manifest)) throw zymkeyFailure('unknown', action, `${path} is not in the manifest`);
  delete s.scm.manifest[path];
  saveSimModule(dir, s.module);
}

/**
 * set_supervised_boot_policy. Zymbit documents no rule for changing it after the binding is locked;
 * the simulator takes the stricter reading of "the selected configuration is locked and immutable".
 */
export function simScmPolicy(dir: string, policy: SimScmPolicy): void {
  const s = scmSession(dir, 'set the Supervised Boot policy');
  if (s.module.binding.mode === 'production' && s.scm.policy !== policy) {
    throw new RefusedError(
      `Refusing to change the Supervised Boot policy from ${s.scm.policy} to ${policy}: after the binding is locked the configuration is immutable`,
      { hint: 'a production SCM keeps its Supervised Boot policy for good' },
    );
  }
  s.scm.policy = policy;
  saveSimModule(dir, s.module);
}

/** Host side: the directory that is the boot partition the SCM supervises (null: none). */
export function simScmBootDir(dir: string, boot: string | null): void {
  const host = loadSimHost(dir);
  host.boot = boot;
  saveSimHost(dir, host);
}

export interface SupervisedBootOutcome {
  /**
   * not-scm: no Supervised Boot on this model; off: empty manifest; verified: every file matches;
   * simulated: developer mode flashed 4-2 and booted; destroyed: production self-destruct;
   * held: production hold-reset, the Pi does not boot; dead: the module was already dead or held.
   */
  result: 'not-scm' | 'off' | 'verified' | 'simulated' | 'destroyed' | 'held' | 'dead';
  checked: string[];
  failed: { file: string; why: 'changed' | 'missing' }[];
  /** Whether the Pi goes on to boot (and so to the keyscript). */
  boots: boolean;
}

const stamp = (now: Date) => new Date(Math.floor(now.getTime() / 1000) * 1000).toISOString();

/** The files of the manifest that fail verification against the boot partition `boot`. */
export function verifyManifest(
  manifest: Record<string, string>,
  boot: string | null,
): SupervisedBootOutcome['failed'] {
  return Object.entries(manifest)
    .sort(([a], [b]) => a.localeCompare(b))
    .flatMap(([file, signed]): SupervisedBootOutcome['failed'] => {
      const digest = boot === null ? null : fileDigest(join(boot, file));
      if (digest === null) return [{ file, why: 'missing' as const }];
      return digest === signed ? [] : [{ file, why: 'changed' as const }];
    });
}

/**
 * Power-on: the SCM verifies its manifest before the Pi boots. The module does this on its own,
 * with no zkifc and no session from the host.
 */
export function simSupervisedBoot(dir: string, now: Date = new Date()): SupervisedBootOutcome {
  const host = loadSimHost(dir);
  const m: SimModule | null = loadSimModule(dir, host.module);
  const scm = m?.scm ?? null;
  if (m === null || scm === null) return { result: 'not-scm', checked: [], failed: [], boots: true };
  const checked = Object.keys(scm.manifest).sort();
  if (m.dead !== null || (scm.held ?? null) !== null)
    return { result: 'dead', checked: [], failed: [], boots: scm.held == null };
  if (checked.length === 0) return { result: 'off', checked, failed: [], boots: true };
  const failed = verifyManifest(scm.manifest, host.boot ?? null);
  if (failed.length === 0) return { result: 'verified', checked, failed, boots: true };
  if (m.binding.mode === 'developer') return { result: 'simulated', checked, failed, boots: true };
  if (scm.policy === 'hold-reset') {
    scm.held = stamp(now);
    saveSimModule(dir, m);
    return { result: 'held', checked, failed, boots: false };
  }
  m.dead = { why: 'supervised-boot', at: stamp(now), files: failed.map((f) => f.file) };
  m.secret = null;
  saveSimModule(dir, m);
  return { result: 'destroyed', checked, failed, boots: true };
}
