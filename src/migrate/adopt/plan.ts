// The adopt plan: from what the tree, the header and the Zymkey say, the steps still to do, in the
// one order that keeps the Pi bootable by the old path or the new one at every point. Pure: the
// facts are gathered in adopt.ts, the steps run in apply.ts. A re-run plans only what is left.
import { RefusedError, ZkluksError } from '../../errors.ts';
import { inSystem, shellWord, zkluksCommand } from '../../hint.ts';
import { debianKernelHookMd5, KERNEL_HOOK, keptCopy, MANIFEST_OUT, type Layout } from './layout.ts';

export type AdoptStep =
  /** `recovery add`, authorized by Zymbit's key: the way in without the Zymkey, before anything else. */
  | { kind: 'recovery-add'; escrow: string | null }
  /** `enroll` (no second recovery key), authorized by Zymbit's key. */
  | { kind: 'enroll' }
  /** The zkluks-zymkey token's key opens its slot (unsealed by the Zymkey, tested by cryptsetup). */
  | { kind: 'verify-zymkey' }
  /** Keep the original of a file before it is changed (root only, never overwritten). */
  | { kind: 'keep'; path: string; copy: string }
  /** `initramfs install --no-update`: the zkluks keyscript, hook and kernel hook, crypttab's line. */
  | { kind: 'install-boot-files'; name: string }
  /** Put the distro's kernel hook back in place of Zymbit's call to update_encr_initrd. */
  | { kind: 'restore-kernel-hook'; path: string }
  /** Build an image for every kernel (the tree's own update-initramfs, through chroot under --root). */
  | { kind: 'rebuild-initramfs'; command: string[] }
  /** Check the images auto_initramfs will load, then drop Zymbit's single-image line from config.txt. */
  | { kind: 'switch-config-txt'; path: string }
  /** The images the firmware loads carry the zkluks keyscript and zkunlockifs. */
  | { kind: 'verify-boot' }
  /**
   * SCM: take files out of the Supervised Boot manifest before adopt rewrites them (named first in
   * ADOPT_DIR, so a killed run puts them back): while out, the SCM does not verify them, so no
   * moment between the rewrite and its signing can make the next boot destroy the keys.
   */
  | { kind: 'manifest-out'; files: string[] }
  /** SCM: sign files in the manifest as they are now; `adding` were not in it before adopt. */
  | { kind: 'manifest-in'; files: string[]; adding: string[] }
  /** --remove-old: wipe the keyslot Zymbit's key opens, then key.bin.lock. */
  | { kind: 'remove-old-slot'; slot: number }
  | { kind: 'remove-key-bin-lock'; path: string };

export interface AdoptState {
  layout: Layout;
  /** The volume as cryptsetup is given it. */
  volume: string;
  /** The keyslot Zymbit's key opens; null when key.bin.lock is gone or opens none (already wiped). */
  oldSlot: number | null;
  /** The other keyslots, for the notes. */
  slots: number[];
  /** A zkluks-recovery token made for its slot. */
  hasRecovery: boolean;
  /** A zkluks-zymkey token whose key the Zymkey unsealed and that opens its slot. */
  zymkeyVerified: boolean;
  /** A zkluks-zymkey token exists (verified or not). */
  hasZymkeyToken: boolean;
  /** The images the firmware loads already carry the zkluks boot files. */
  bootVerified: boolean;
  /** An SCM's Supervised Boot (a manifest that is not empty, or files adopt took out); else null. */
  supervisedBoot?: AdoptSupervisedBoot | null;
}

export interface AdoptSupervisedBoot {
  /** The manifest's files, relative to the boot partition. */
  manifest: string[];
  /** config.txt, relative to the boot partition. */
  configFile: string | null;
  /** The images the firmware loads once config.txt has auto_initramfs=1, relative to the boot partition. */
  images: string[];
  /** Files an interrupted adopt took out of the manifest and did not put back. */
  takenOut: string[];
}

export interface AdoptOptions {
  escrow: string | null;
  removeOld: boolean;
  /** The command line that runs this adopt again (default: zkluks adopt [--root DIR]). */
  again?: string;
}

export interface AdoptPlan {
  volume: string;
  /** The command line that runs this adopt again, as the hints name it. */
  again: string;
  name: string;
  steps: AdoptStep[];
  /** Set when there is nothing to do: why. */
  unchanged: string | null;
  notes: string[];
}

/** Refuse a layout that is neither Zymbit's nor one an earlier adopt run left, naming what was found. */
function recognise(state: AdoptState, again: string): void {
  const l = state.layout;
  const missing: string[] = [];
  if (!l.started) {
    if (l.entryKind !== 'zymbit') missing.push("a crypttab line with Zymbit's zk_get_key keyscript");
    if (!l.lockPresent) missing.push('/var/lib/zymbit/key.bin.lock');
    if (l.kernelHook !== 'zymbit') missing.push(`${KERNEL_HOOK} calling update_encr_initrd`);
  } else if (l.entryKind !== 'zymbit' && l.entryKind !== 'zkluks') {
    missing.push("a crypttab line with Zymbit's or zkluks's keyscript");
  }
  if (missing.length > 0) {
    throw new RefusedError(
      `Refused to adopt: this is not the layout Zymbit's mk_encr_sd_rfs.sh leaves; missing ${missing.join(', ')}. Found: ${l.found.join('; ')}`,
      {
        hint: `${zkluksCommand(l.root, 'doctor')} (explains what this Pi has); ${zkluksCommand(l.root, 'enroll', 'VOLUME')} (for a volume zkluks should take over as it is)`,
      },
    );
  }
  if (l.lockPresent && state.oldSlot === null && !l.started && !state.zymkeyVerified) {
    throw new RefusedError(
      "Refused to adopt: the key sealed in /var/lib/zymbit/key.bin.lock opens no keyslot of the volume, so nothing proves this is the volume Zymbit's script encrypted",
      { hint: `name the volume: ${zkluksCommand(l.root, 'adopt', 'VOLUME')}` },
    );
  }
  if (l.zymbitInitramfsLine && !l.raspiFirmware) {
    throw new RefusedError(
      "Refused to adopt: config.txt loads Zymbit's single initrd.img and raspi-firmware is not installed, so no distro hook would place each kernel's own image for auto_initramfs",
      {
        hint: `${inSystem(l.root, 'apt-get install raspi-firmware')} (Raspberry Pi OS Bookworm and later), then ${again} (again)`,
      },
    );
  }
  if (
    l.kernelHook === 'zymbit' &&
    l.kernelHookDpkgMd5 !== null &&
    l.kernelHookDpkgMd5 !== debianKernelHookMd5()
  ) {
    throw new RefusedError(
      `Refused to adopt: dpkg records initramfs-tools' ${KERNEL_HOOK} with md5 ${l.kernelHookDpkgMd5}, not the version zkluks can put back (${debianKernelHookMd5()})`,
      {
        hint: `restore it first: ${inSystem(l.root, 'apt-get install --reinstall -o Dpkg::Options::=--force-confask initramfs-tools')}, then ${again} (again)`,
      },
    );
  }
}

export function planAdopt(state: AdoptState, opts: AdoptOptions): AdoptPlan {
  const again = opts.again ?? zkluksCommand(state.layout.root, 'adopt');
  recognise(state, again);
  const l = state.layout;
  const name = l.entry?.name ?? 'cryptrfs';
  const steps: AdoptStep[] = [];
  const notes: string[] = [];
  const needAuthority = !state.hasRecovery || !state.zymkeyVerified;
  if (needAuthority && state.oldSlot === null) {
    throw new ZkluksError(
      `Failed to adopt '${state.volume}': ${!state.hasRecovery ? 'a recovery key' : 'the zkluks Zymkey slot'} is still to be added, and no key authorizes it (${l.lockPresent ? "Zymbit's sealed key opens no keyslot" : '/var/lib/zymbit/key.bin.lock is gone'})`,
      {
        // The recovery key first; once it is there, the Zymkey slot is enrolled with it.
        hint: !state.hasRecovery
          ? `${zkluksCommand(l.root, 'recovery', 'add', shellWord(state.volume), '--unlock-key-file', 'FILE', ...(opts.escrow ? ['--escrow', opts.escrow] : []))}, then ${again} (again)`
          : `${zkluksCommand(l.root, 'enroll', shellWord(state.volume), '--unlock-key-file', 'FILE', '--no-recovery-key')} (FILE: the recovery key), then ${again} (again)`,
      },
    );
  }
  if (!state.hasRecovery) steps.push({ kind: 'recovery-add', escrow: opts.escrow });
  else if (opts.escrow)
    notes.push('the volume already has a recovery key; --escrow applies only to a new one');
  if (!state.zymkeyVerified) {
    if (state.hasZymkeyToken) {
      throw new ZkluksError(
        `Failed to adopt '${state.volume}': its zkluks-zymkey token does not open its keyslot now`,
        {
          hint: `${zkluksCommand(l.root, 'verify', shellWord(state.volume))} (says why), then ${zkluksCommand(l.root, 'enroll', '--force', shellWord(state.volume))}`,
        },
      );
    }
    steps.push({ kind: 'enroll' });
  }
  steps.push({ kind: 'verify-zymkey' });
  const keep = (path: string, kept: boolean, copy: string) => {
    if (!kept) steps.push({ kind: 'keep', path, copy });
  };
  // An SCM verifies its manifest's files at every boot and, in production, destroys every key when
  // one changed: a file adopt rewrites is taken out first and signed again once rewritten, and the
  // image the firmware loads after the switch is added, so the SCM goes on verifying the initramfs.
  const sb = state.supervisedBoot ?? null;
  const signed = new Set([...(sb?.manifest ?? []), ...(sb?.takenOut ?? [])]);
  // What a killed run took out goes back first, signed as it is now.
  if (sb && sb.takenOut.length > 0) steps.unshift({ kind: 'manifest-in', files: sb.takenOut, adding: [] });
  const rewrite = (files: string[], change: AdoptStep) => {
    const out = files.filter((f) => signed.has(f));
    if (out.length > 0) steps.push({ kind: 'manifest-out', files: out });
    steps.push(change);
    if (files.length > 0)
      steps.push({ kind: 'manifest-in', files, adding: files.filter((f) => !signed.has(f)) });
  };
  if (l.entryKind === 'zymbit' || !state.bootVerified) {
    keep('/etc/crypttab', l.kept.crypttab, keptCopy('/etc/crypttab'));
    if (l.kernelHook === 'zymbit') keep(KERNEL_HOOK, l.kept.kernelHook, keptCopy(KERNEL_HOOK));
    if (l.zymbitInitramfsLine && l.configTxt) keep(l.configTxt, l.kept.configTxt, keptCopy(l.configTxt));
    steps.push({ kind: 'install-boot-files', name });
    if (l.kernelHook === 'zymbit' || l.kernelHook === 'missing')
      steps.push({ kind: 'restore-kernel-hook', path: KERNEL_HOOK });
    rewrite(sb?.images ?? [], { kind: 'rebuild-initramfs', command: rebuildCommand(l.root) });
    if (l.zymbitInitramfsLine && l.configTxt) {
      const config = sb?.configFile && signed.has(sb.configFile) ? [sb.configFile] : [];
      rewrite(config, { kind: 'switch-config-txt', path: l.configTxt });
    }
    steps.push({ kind: 'verify-boot' });
  } else {
    if (l.kernelHook === 'zymbit') {
      keep(KERNEL_HOOK, l.kept.kernelHook, keptCopy(KERNEL_HOOK));
      steps.push({ kind: 'restore-kernel-hook', path: KERNEL_HOOK });
    }
    // Adopted before zkluks added the image the firmware loads: add it now.
    const missing = (sb?.images ?? []).filter((f) => !signed.has(f));
    if (missing.length > 0) steps.push({ kind: 'manifest-in', files: missing, adding: missing });
  }
  if (opts.removeOld) {
    if (state.oldSlot !== null) steps.push({ kind: 'remove-old-slot', slot: state.oldSlot });
    if (l.lockPresent) steps.push({ kind: 'remove-key-bin-lock', path: '/var/lib/zymbit/key.bin.lock' });
  } else if (state.oldSlot !== null) {
    notes.push(
      `Zymbit's keyslot ${state.oldSlot} and /var/lib/zymbit/key.bin.lock are kept; '${zkluksCommand(l.root, 'adopt', '--remove-old')}' removes them once you have checked the recovery key and rebooted`,
    );
  }
  const onlyChecks = steps.every((s) => s.kind === 'verify-zymkey');
  return {
    volume: state.volume,
    again,
    name,
    steps: onlyChecks ? [] : steps,
    unchanged: onlyChecks ? `'${state.volume}' is adopted: nothing is left to do` : null,
    notes,
  };
}

/** Build every kernel's image, with the tree's own tools (chroot) under --root. */
export function rebuildCommand(root: string): string[] {
  const base = ['update-initramfs', '-c', '-k', 'all'];
  return root === '/' ? base : ['chroot', root, ...base];
}

export function describeStep(s: AdoptStep): string {
  switch (s.kind) {
    case 'recovery-add':
      return `add a recovery key (authorized by Zymbit's sealed key)${s.escrow ? `, escrowed to ${s.escrow}` : ''}`;
    case 'enroll':
      return "enroll a zkluks Zymkey keyslot and token (authorized by Zymbit's sealed key)";
    case 'verify-zymkey':
      return 'verify the zkluks Zymkey keyslot opens (unseal, then cryptsetup --test-passphrase)';
    case 'keep':
      return `keep the original ${s.path} as ${s.copy}`;
    case 'install-boot-files':
      return `install the zkluks keyscript, hooks and crypttab line for '${s.name}' (passphrase prompt as fallback)`;
    case 'restore-kernel-hook':
      return `put the distro's ${s.path} back (in place of the call to update_encr_initrd)`;
    case 'rebuild-initramfs':
      return `run ${s.command.join(' ')}`;
    case 'switch-config-txt':
      return `check each kernel's own image, then replace 'initramfs initrd.img followkernel' in ${s.path} with auto_initramfs=1`;
    case 'verify-boot':
      return 'verify the image(s) the firmware will load carry the zkluks keyscript and zkunlockifs';
    case 'manifest-out':
      return `take ${s.files.join(', ')} out of the SCM's Supervised Boot manifest while adopt rewrites ${s.files.length === 1 ? 'it' : 'them'} (named in ${MANIFEST_OUT} until signed again)`;
    case 'manifest-in': {
      const kept = s.files.filter((f) => !s.adding.includes(f));
      return [
        ...(kept.length > 0
          ? [
              `sign ${kept.join(', ')} in the SCM's Supervised Boot manifest as ${kept.length === 1 ? 'it is' : 'they are'} now`,
            ]
          : []),
        ...(s.adding.length > 0
          ? [
              `add ${s.adding.join(', ')} to the SCM's Supervised Boot manifest, signed as ${s.adding.length === 1 ? 'it is' : 'they are'} now (the image the firmware loads with auto_initramfs=1, which the SCM must verify)`,
            ]
          : []),
      ].join('; ');
    }
    case 'remove-old-slot':
      return `wipe Zymbit's keyslot ${s.slot}`;
    case 'remove-key-bin-lock':
      return `remove ${s.path}`;
  }
}
