// encrypt-root's preflight: every reason the running system cannot be armed, each with the fix.
// Pure: facts in, problems out. The planner refuses when any problem is found.
import { inSystem, shellWord, systemFile, zkluksCommand } from '../../hint.ts';
import { parseConfigTxt } from '../../initramfs/boot-image.ts';
import { mib, REQUIRED_PACKAGES, type EncryptFacts } from './facts.ts';
import { MIB, REDUCE_MIB, treeDevice } from './layout.ts';
import { cmdlineRoot } from './root-files.ts';

export type PreflightCheck =
  | 'armed'
  | 'fstab'
  | 'cmdline'
  | 'device'
  | 'already-luks'
  | 'not-ext4'
  | 'partition'
  | 'unclean'
  | 'room'
  | 'packages'
  | 'initramfs'
  | 'zkunlockifs'
  | 'zymkey';

export interface PreflightProblem {
  check: PreflightCheck;
  reason: string;
  fix: string;
}

/** Whether config.txt makes the firmware load an initramfs (auto_initramfs=1 or an initramfs line). */
export function firmwareLoadsInitramfs(configTxt: string): boolean {
  return parseConfigTxt(configTxt).some(
    (l) =>
      (l.key === 'auto_initramfs' && l.value === '1') || (l.key === 'initramfs' && l.value.trim() !== ''),
  );
}

/**
 * Every problem, each with its fix as the admin types it: for a system tree (--root) the tree's
 * files, chroot for its packages, --root and --device for zkluks. `again` is the admin's own
 * command line without --device, which the fixes that end in a new run repeat.
 */
export function preflight(
  facts: EncryptFacts,
  again = zkluksCommand(facts.root, 'encrypt-root'),
): PreflightProblem[] {
  const out: PreflightProblem[] = [];
  const root = facts.root;
  const live = root === '/' || root === '';
  const file = (path: string) => systemFile(root, path);
  const device = facts.device === null ? [] : treeDevice(root, facts.device.path);
  const problem = (check: PreflightCheck, reason: string, fix: string) => out.push({ check, reason, fix });

  if (facts.armed !== null) {
    problem(
      'armed',
      'the next boot is already armed to encrypt the root',
      live
        ? 'reboot to encrypt, or undo the arming with zkluks encrypt-root --disarm'
        : `boot the Pi from this disk to encrypt, or undo the arming with ${zkluksCommand(root, 'encrypt-root', '--disarm', ...device)}`,
    );
  }
  if (facts.fstabRoot === null) {
    problem('fstab', '/etc/fstab has no line for /', `add the root filesystem to ${file('/etc/fstab')}`);
  }
  if (facts.bootDir === null || facts.cmdline === null) {
    problem(
      'cmdline',
      'no cmdline.txt in /boot/firmware or /boot: this is not a Raspberry Pi boot partition',
      `mount the boot partition at ${file('/boot/firmware')}`,
    );
  } else if (cmdlineRoot(facts.cmdline) === null) {
    problem(
      'cmdline',
      `${facts.bootDir}/cmdline.txt has no root=`,
      `add root=PARTUUID=… to ${file(`${facts.bootDir}/cmdline.txt`)}`,
    );
  }

  const d = facts.device;
  if (d === null) {
    problem(
      'device',
      facts.deviceError ?? 'the root device is unknown',
      `name the device or image that holds the root filesystem: ${again} --device DEVICE`,
    );
  } else if (d.type === 'crypto_LUKS') {
    problem(
      'already-luks',
      `${d.path} is already LUKS`,
      `${zkluksCommand(root, 'enroll', shellWord(d.path))} (adds the Zymkey to an encrypted root)`,
    );
  } else if (d.type !== 'ext4' || (facts.fstabRoot !== null && facts.fstabRoot.fstype !== 'ext4')) {
    problem(
      'not-ext4',
      `the root filesystem is ${d.type ?? facts.fstabRoot?.fstype ?? 'unknown'}, not ext4`,
      'encrypt-root converts ext4 roots only; back up, re-create as ext4 and restore',
    );
  }
  if (d !== null && d.kind !== 'partition' && d.kind !== 'file') {
    problem(
      'partition',
      `${d.path} is ${d.kind === 'disk' ? 'a whole disk' : 'not a partition (LVM, RAID or device-mapper)'}`,
      'encrypt-root needs the root on a partition of an SD card, USB or NVMe disk',
    );
  }
  const fs = facts.ext4;
  if (d !== null && d.type === 'ext4' && fs !== null) {
    if (fs.state !== 'clean') {
      problem(
        'unclean',
        `the filesystem on ${d.path} is '${fs.state}'`,
        live
          ? 'touch /forcefsck and reboot (the boot checks and repairs it), then run encrypt-root again'
          : `e2fsck -f -p ${shellWord(d.path)} (with it unmounted), then ${[again, ...device].join(' ')}`,
      );
    }
    const room = d.bytes - REDUCE_MIB * MIB;
    const needs = fs.minBlocks === null ? null : fs.minBlocks * fs.blockSize;
    if (needs === null) {
      problem(
        'room',
        `resize2fs cannot tell how small the filesystem on ${d.path} can be`,
        `resize2fs -P ${d.path}`,
      );
    } else if (needs > room) {
      problem(
        'room',
        `the filesystem needs at least ${mib(needs)} MiB, but only ${mib(Math.max(room, 0))} MiB of ${d.path} remain beside the LUKS2 header's ${REDUCE_MIB} MiB`,
        `free at least ${mib(needs - room) + 1} MiB (${inSystem(root, 'apt-get clean')}, remove files), or grow the partition`,
      );
    }
  }
  const missing = REQUIRED_PACKAGES.filter((p) => facts.packages[p] !== true);
  if (missing.length > 0) {
    problem(
      'packages',
      `not installed: ${missing.join(', ')}`,
      `${inSystem(root, `apt-get install ${missing.join(' ')}`)}, then ${[again, ...device].join(' ')}`,
    );
  }
  if (facts.configTxt !== null && !firmwareLoadsInitramfs(facts.configTxt)) {
    problem(
      'initramfs',
      `the firmware loads no initramfs: ${facts.bootDir}/config.txt has neither auto_initramfs=1 nor an initramfs line`,
      `add auto_initramfs=1 to ${file(`${facts.bootDir}/config.txt`)}`,
    );
  } else if (facts.configTxt === null && facts.bootDir !== null) {
    problem(
      'initramfs',
      `${facts.bootDir}/config.txt is missing`,
      `add auto_initramfs=1 to ${file(`${facts.bootDir}/config.txt`)}`,
    );
  }
  if (facts.zkunlockifs === null) {
    problem(
      'zkunlockifs',
      'zkunlockifs is not installed, so the initramfs could not unseal the keys',
      `${inSystem(root, 'apt-get install zksaapps')} (Zymbit's standalone tools)`,
    );
  }
  if (facts.zymkeyProblem !== null) {
    problem(
      'zymkey',
      `the Zymkey did not seal and unseal a test secret: ${facts.zymkeyProblem}`,
      `${zkluksCommand(root, 'doctor')} (says why the Zymkey does not answer)`,
    );
  }
  return out;
}
