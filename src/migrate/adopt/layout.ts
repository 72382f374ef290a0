// What `zkluks adopt` reads from the system tree: the marks Zymbit's mk_encr_sd_rfs.sh leaves (the
// crypttab line with the zk_get_key keyscript, /var/lib/zymbit/key.bin.lock, the distro's kernel hook
// replaced by a call to update_encr_initrd, config.txt's single `initramfs initrd.img` line), the
// copies adopt keeps of the files it changes, and how far an earlier run got. Files only: the
// volume's header and the Zymkey are asked in adopt.ts.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { BOOT_PATHS } from '../../initramfs/boot-files.ts';
import { parseConfigTxt } from '../../initramfs/boot-image.ts';
import {
  entries,
  isZkluksEntry,
  optionValue,
  parseCrypttab,
  type CrypttabEntry,
} from '../../initramfs/crypttab.ts';
import { ZYMBIT_KEY_LOCK } from '../../keyslot/authority-zymbit.ts';
import { under } from '../../root-path.ts';
import { readText } from '../../read-text.ts';

/** The distro's kernel hook that Zymbit's script overwrites (a conffile of initramfs-tools). */
export const KERNEL_HOOK = '/etc/kernel/postinst.d/initramfs-tools';
/**
 * Debian's file, byte for byte (initramfs-tools 0.142, bookworm), and its md5 as dpkg records it.
 * It is initramfs-tools' work under GPL-2+, so it ships as its own file beside the code (dist/ carries
 * it, the package's copyright names it) and is read when adopt needs it, never compiled into zkluks.
 */
export const DEBIAN_KERNEL_HOOK_FILE = 'debian-initramfs-tools.postinst';
let debianHook: string | undefined;
export function debianKernelHook(): string {
  debianHook ??= readFileSync(new URL(`./${DEBIAN_KERNEL_HOOK_FILE}`, import.meta.url), 'utf8');
  return debianHook;
}
export function debianKernelHookMd5(): string {
  return createHash('md5').update(debianKernelHook()).digest('hex');
}
/** Where adopt keeps the originals of the files it changes (root only). */
export const ADOPT_DIR = '/var/lib/zkluks/adopt';
/** raspi-firmware's hook that places each rebuilt image where auto_initramfs=1 loads it (Bookworm on). */
export const RASPI_FIRMWARE_HOOK = '/etc/initramfs/post-update.d/z50-raspi-firmware';
export const ZYMBIT_INITRAMFS_HOOK = '/etc/initramfs-tools/hooks/zymkey_cryptfs_cfg';

// The list of files adopt took out of an SCM's manifest lives with the rest of Supervised Boot, where
// `initramfs check` and the doctor read it too.
export { MANIFEST_OUT, readManifestOut } from '../../initramfs/supervised-boot.ts';

export function keptCopy(path: string): string {
  return `${ADOPT_DIR}/${path.replace(/^\//, '').replace(/\//g, '_')}`;
}

export type KernelHookState = 'zymbit' | 'distro' | 'other' | 'missing';

export interface Layout {
  root: string;
  /** The root's crypttab line: Zymbit's (zk_get_key) or, after a switch, zkluks's. */
  entry: CrypttabEntry | null;
  entryKind: 'zymbit' | 'zkluks' | 'other' | 'missing';
  /** key.bin.lock under the root exists. */
  lockPresent: boolean;
  kernelHook: KernelHookState;
  /** The md5 dpkg recorded for the kernel hook (Conffiles of initramfs-tools); null when unknown. */
  kernelHookDpkgMd5: string | null;
  raspiFirmware: boolean;
  /** The boot partition's config.txt, as a path under the root. */
  configTxt: string | null;
  configText: string | null;
  /** config.txt has Zymbit's `initramfs initrd.img followkernel` line (a single image for every kernel). */
  zymbitInitramfsLine: boolean;
  /** Copies adopt kept: present once an earlier run switched the file. */
  kept: { crypttab: boolean; kernelHook: boolean; configTxt: boolean };
  /** An earlier adopt run switched something (kept copies exist). */
  started: boolean;
  /** What was found, one line each, for a refusal or the plan. */
  found: string[];
}

/** The md5 dpkg recorded for a conffile, from the tree's /var/lib/dpkg/status. */
export function dpkgConffileMd5(status: string | null, path: string): string | null {
  if (status === null) return null;
  const line = status.split('\n').find((l) => l.trim().startsWith(`${path} `));
  return line?.trim().split(/\s+/)[1] ?? null;
}

export function isZymbitEntry(e: CrypttabEntry): boolean {
  return /\/zk_get_key$/.test(optionValue(e, 'keyscript') ?? '');
}

/** The root's line: Zymbit's zk_get_key line, else a zkluks line, else the one named `name`. */
function rootEntry(list: CrypttabEntry[], name?: string): CrypttabEntry | null {
  if (name) return list.find((e) => e.name === name) ?? null;
  return (
    list.find(isZymbitEntry) ?? list.find(isZkluksEntry) ?? (list.length === 1 ? (list[0] ?? null) : null)
  );
}

export function readLayout(root: string, name?: string): Layout {
  const crypttabText = readText(under(root, BOOT_PATHS.crypttab));
  const list = crypttabText === null ? [] : entries(parseCrypttab(crypttabText));
  const entry = rootEntry(list, name);
  const entryKind =
    entry === null ? 'missing' : isZymbitEntry(entry) ? 'zymbit' : isZkluksEntry(entry) ? 'zkluks' : 'other';
  const hookText = readText(under(root, KERNEL_HOOK));
  const kernelHook: KernelHookState =
    hookText === null
      ? 'missing'
      : /update_encr_initrd/.test(hookText)
        ? 'zymbit'
        : hookText === debianKernelHook()
          ? 'distro'
          : 'other';
  const configTxt =
    ['/boot/firmware/config.txt', '/boot/config.txt'].find((p) => existsSync(under(root, p))) ?? null;
  const configText = configTxt === null ? null : readText(under(root, configTxt));
  const zymbitInitramfsLine =
    configText !== null &&
    parseConfigTxt(configText).some((l) => l.key === 'initramfs' && /^initrd\.img(\s|$)/.test(l.value));
  const kept = {
    crypttab: existsSync(under(root, keptCopy(BOOT_PATHS.crypttab))),
    kernelHook: existsSync(under(root, keptCopy(KERNEL_HOOK))),
    configTxt: configTxt !== null && existsSync(under(root, keptCopy(configTxt))),
  };
  const lockPresent = existsSync(under(root, ZYMBIT_KEY_LOCK));
  const found = [
    entry === null
      ? `${BOOT_PATHS.crypttab}: ${crypttabText === null ? 'missing' : `no root line among ${list.map((e) => e.name).join(', ') || 'no entries'}`}`
      : `${BOOT_PATHS.crypttab}: '${entry.name}' with keyscript ${optionValue(entry, 'keyscript') ?? '(none)'}`,
    `${ZYMBIT_KEY_LOCK}: ${lockPresent ? 'present' : 'missing'}`,
    `${KERNEL_HOOK}: ${kernelHook === 'zymbit' ? 'calls update_encr_initrd' : kernelHook === 'distro' ? "the distro's" : kernelHook}`,
    `${configTxt ?? 'config.txt'}: ${configText === null ? 'missing' : zymbitInitramfsLine ? "'initramfs initrd.img followkernel'" : 'no initrd.img line'}`,
  ];
  return {
    root,
    entry,
    entryKind,
    lockPresent,
    kernelHook,
    kernelHookDpkgMd5: dpkgConffileMd5(readText(under(root, '/var/lib/dpkg/status')), KERNEL_HOOK),
    raspiFirmware: existsSync(under(root, RASPI_FIRMWARE_HOOK)),
    configTxt,
    configText,
    zymbitInitramfsLine,
    kept,
    started: kept.crypttab || kept.kernelHook || kept.configTxt,
    found,
  };
}

/**
 * config.txt without Zymbit's single-image line: `auto_initramfs=1` takes its place (same section), so
 * the firmware loads the image raspi-firmware places for each kernel.
 */
export function configWithoutZymbitLine(text: string): string {
  const auto = parseConfigTxt(text).some((l) => l.key === 'auto_initramfs' && l.value === '1');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (/^initramfs\s+initrd\.img(\s|$)/.test(line.replace(/#.*$/, '').trim())) {
      if (!auto && !out.includes('auto_initramfs=1')) out.push('auto_initramfs=1');
      continue;
    }
    out.push(line);
  }
  return out.join('\n');
}
