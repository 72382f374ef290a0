// The files `zkluks initramfs install` puts on the system, rendered from the templates, and the
// fixed paths and defaults every other part (check, doctor, tests) refers to.
import { ZkluksError } from '../errors.ts';
import { ZKLUKS_KEYSCRIPT } from './crypttab.ts';
import { render } from './render.ts';
import { readTemplate } from './templates.ts';

export const BOOT_PATHS = {
  /** The keyscript; crypttab names it, and cryptroot copies it into the image at the same path. */
  keyscript: ZKLUKS_KEYSCRIPT,
  hook: '/etc/initramfs-tools/hooks/zkluks',
  kernelPostinst: '/etc/kernel/postinst.d/zz-zkluks',
  /** KEY=VALUE settings read by the keyscript (ZKLUKS_TIMEOUT, ZKLUKS_BUS_WAIT); the hook copies it. */
  bootConf: '/etc/zkluks/boot.conf',
  /** crypttab as it was before the first `initramfs install`, for `initramfs remove`. */
  crypttabBackup: '/etc/zkluks/crypttab.orig',
  crypttab: '/etc/crypttab',
  /** Boot records: <name>.record, one per crypttab name (tmpfs, carried into the booted system). */
  runDir: '/run/zkluks',
  /** The keyscript's private (0700) scratch directory for the sealed and unsealed key, in the initramfs's own root. */
  workDir: '/.zkluks',
  /**
   * In the image only: the hook's copy of each volume's token (<name>.sealed, <name>.copy with the
   * header checksum it was read under), used at boot while the header still carries that checksum.
   */
  tokenCopyDir: '/etc/zkluks/tokens',
  zymbitState: '/var/lib/zymbit',
  zkenv: '/var/lib/zymbit/zkenv.conf',
  /** Digests of the SCM's Supervised Boot manifest files, as zkluks signed or first saw them. */
  supervisedBootRecord: '/var/lib/zkluks/supervised-boot.json',
} as const;

/** The files `initramfs install` writes (crypttab aside), in the order it writes them. */
export const INSTALLED_FILES = [
  BOOT_PATHS.keyscript,
  BOOT_PATHS.hook,
  BOOT_PATHS.kernelPostinst,
  BOOT_PATHS.bootConf,
] as const;

export const TOKEN_TYPE = 'zkluks-zymkey';
/** Seconds from the keyscript's start until it falls back to the passphrase prompt. */
export const DEFAULT_TIMEOUT_S = 10;
/** Seconds, within the timeout, to wait for an I2C bus to appear. */
export const DEFAULT_BUS_WAIT_S = 5;

/** i2c-dev and the bus controllers: Raspberry Pi 0–4 (bcm2835, legacy bcm2708), Pi 5 / RP1 (designware). */
export const I2C_MODULES = [
  'i2c-dev',
  'i2c-bcm2835',
  'i2c-bcm2708',
  'i2c-designware-platform',
  'i2c-designware-core',
] as const;

/** Where Zymbit's zksaapps package may have put zkunlockifs, most likely first. */
export const ZKUNLOCKIFS_CANDIDATES = [
  '/sbin/zkunlockifs',
  '/usr/sbin/zkunlockifs',
  '/usr/bin/zkunlockifs',
  '/usr/local/sbin/zkunlockifs',
  '/usr/local/bin/zkunlockifs',
] as const;

const ZYMBIT_LIB_DIRS = '/usr/lib /usr/local/lib /usr/lib/*-linux-gnu*';

export interface BootFile {
  /** Absolute path on the system (join it to the root). */
  path: string;
  mode: number;
  content: string;
  /** Written only when absent, so an admin's edits survive a reinstall. */
  keepExisting?: boolean;
}

export interface BootFileOptions {
  /** zkunlockifs on the system the initramfs is built on (and at the same path inside it). */
  zkunlockifs: string;
  /** Where the hook copies Zymbit's state from (default /var/lib/zymbit). */
  zymbitState?: string;
  timeoutSeconds?: number;
  busWaitSeconds?: number;
  /** Directory of kernel images and initramfs files (default /boot). */
  bootDir?: string;
}

const SAFE_VALUE = /^[A-Za-z0-9_./ *:+=,-]*$/;

function checked(vars: Record<string, string>): Record<string, string> {
  for (const [name, value] of Object.entries(vars)) {
    if (!SAFE_VALUE.test(value)) {
      throw new ZkluksError(
        `Failed to render the boot files: '${value}' (for ${name}) is not a plain path or word`,
      );
    }
  }
  return vars;
}

export function keyscriptVars(opts: BootFileOptions): Record<string, string> {
  return checked({
    ZKUNLOCKIFS: opts.zkunlockifs,
    RUN_DIR: BOOT_PATHS.runDir,
    WORK_DIR: BOOT_PATHS.workDir,
    TOKEN_COPY_DIR: BOOT_PATHS.tokenCopyDir,
    BOOT_CONF: BOOT_PATHS.bootConf,
    ZKENV: BOOT_PATHS.zkenv,
    TOKEN_TYPE,
    I2C_MODULES: I2C_MODULES.join(' '),
    DEFAULT_TIMEOUT: String(opts.timeoutSeconds ?? DEFAULT_TIMEOUT_S),
    DEFAULT_BUS_WAIT: String(opts.busWaitSeconds ?? DEFAULT_BUS_WAIT_S),
  });
}

export function hookVars(opts: BootFileOptions): Record<string, string> {
  return checked({
    ZKUNLOCKIFS: opts.zkunlockifs,
    ZYMBIT_STATE: opts.zymbitState ?? BOOT_PATHS.zymbitState,
    BOOT_CONF: BOOT_PATHS.bootConf,
    KEYSCRIPT: BOOT_PATHS.keyscript,
    I2C_MODULES: I2C_MODULES.join(' '),
    ZYMBIT_LIB_DIRS,
    WORK_DIR: BOOT_PATHS.workDir,
    TOKEN_COPY_DIR: BOOT_PATHS.tokenCopyDir,
  });
}

export function kernelPostinstVars(opts: BootFileOptions): Record<string, string> {
  return checked({
    BOOT_DIR: opts.bootDir ?? '/boot',
    KEYSCRIPT: BOOT_PATHS.keyscript,
    SB_RECORD: BOOT_PATHS.supervisedBootRecord,
    ZKUNLOCKIFS: opts.zkunlockifs,
  });
}

export function renderBootConf(
  opts: Pick<BootFileOptions, 'timeoutSeconds' | 'busWaitSeconds'> = {},
): string {
  return [
    '# zkluks boot settings, read by the keyscript in the initramfs.',
    '# After a change run: update-initramfs -u -k all',
    '#',
    '# Seconds from the keyscript start until it gives up on the Zymkey and asks for the passphrase.',
    `ZKLUKS_TIMEOUT=${opts.timeoutSeconds ?? DEFAULT_TIMEOUT_S}`,
    '# Seconds (within ZKLUKS_TIMEOUT) to wait for the I2C bus to appear.',
    `ZKLUKS_BUS_WAIT=${opts.busWaitSeconds ?? DEFAULT_BUS_WAIT_S}`,
    '',
  ].join('\n');
}

/** Every file `initramfs install` writes, rendered. */
export function renderBootFiles(opts: BootFileOptions): BootFile[] {
  return [
    {
      path: BOOT_PATHS.keyscript,
      mode: 0o755,
      // The timeout reaches the keyscript through boot.conf; its built-in default stays fixed.
      content: render(
        readTemplate('keyscript'),
        keyscriptVars({ zkunlockifs: opts.zkunlockifs }),
        'the keyscript',
      ),
    },
    { path: BOOT_PATHS.hook, mode: 0o755, content: render(readTemplate('hook'), hookVars(opts), 'the hook') },
    {
      path: BOOT_PATHS.kernelPostinst,
      mode: 0o755,
      content: render(readTemplate('kernel-postinst'), kernelPostinstVars(opts), 'the kernel hook'),
    },
    { path: BOOT_PATHS.bootConf, mode: 0o644, content: renderBootConf(opts), keepExisting: true },
  ];
}
