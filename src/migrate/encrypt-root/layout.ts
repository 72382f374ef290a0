// Fixed names of the encrypt-root journey: where the armed boot's files live on the system (and at
// the same paths inside the initramfs), the keyslots and tokens the encrypting boot creates, and the
// room the LUKS2 header takes from the filesystem.
import { shellWord } from '../../hint.ts';

export const ENCRYPT_PATHS = {
  /** Everything the encrypting boot reads; the hook copies it into the initramfs. */
  dir: '/etc/zkluks/encrypt-root',
  /** KEY=VALUE settings of the armed boot (no secrets). */
  planConf: '/etc/zkluks/encrypt-root/plan.conf',
  /** The Zymkey key and the recovery key, sealed by the Zymkey together (only it can open them). */
  sealedKeys: '/etc/zkluks/encrypt-root/keys.sealed',
  zymkeyToken: '/etc/zkluks/encrypt-root/zymkey-token.json',
  recoveryToken: '/etc/zkluks/encrypt-root/recovery-token.json',
  /** fstab and cmdline.txt as they were before arming. */
  origDir: '/etc/zkluks/encrypt-root/orig',
  hook: '/etc/initramfs-tools/hooks/zkluks-encrypt-root',
  /** local-top runs before cryptroot (which declares every other local-top script its prerequisite). */
  bootScript: '/etc/initramfs-tools/scripts/local-top/zkluks-encrypt-root',
  finishUnit: '/etc/systemd/system/zkluks-encrypt-root-finish.service',
  finishUnitLink: '/etc/systemd/system/multi-user.target.wants/zkluks-encrypt-root-finish.service',
  /** Written by the encrypting boot (tmpfs, carried into the booted system). */
  record: '/run/zkluks/encrypt-root.record',
} as const;

/** The keyslot the recovery key gets from `cryptsetup reencrypt --encrypt` (the first way in). */
export const RECOVERY_SLOT = 0;
export const ZYMKEY_SLOT = 1;
export const ZYMKEY_TOKEN_ID = 0;
export const RECOVERY_TOKEN_ID = 1;

/**
 * What the filesystem gives up: `--reduce-device-size`, twice the 16 MiB LUKS2 header, so that
 * cryptsetup can shift the data by the header's size in resilient steps.
 */
export const REDUCE_MIB = 32;
export const MIB = 1024 * 1024;

/** Files the encrypting boot's journey leaves behind until `encrypt-root --finish` removes them. */
export const LEFTOVERS = [
  ENCRYPT_PATHS.planConf,
  ENCRYPT_PATHS.sealedKeys,
  ENCRYPT_PATHS.zymkeyToken,
  ENCRYPT_PATHS.recoveryToken,
  ENCRYPT_PATHS.hook,
  ENCRYPT_PATHS.bootScript,
] as const;

/** `--device PATH` for a system tree, whose device zkluks cannot find on its own; nothing on the running system. */
export function treeDevice(root: string, device: string): string[] {
  return root === '/' || root === '' ? [] : ['--device', shellWord(device)];
}
