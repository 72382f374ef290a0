// A Pi as Zymbit's mk_encr_sd_rfs.sh leaves it, built for real under a temp dir: 512 random bytes from
// the (simulated) module, sealed by zklockifs to /var/lib/zymbit/key.bin.lock, a LUKS2 image formatted
// with that key on stdin as its one and only keyslot (argon2id like cryptsetup's default, at the
// smallest cost so tests stay fast), and the staged system tree: crypttab with the zk_get_key
// keyscript, Zymbit's keyscript, initramfs hook, update_encr_initrd and the distro kernel hook it
// replaced, the I2C modules, config.txt and cmdline.txt as the script writes them.
import { execa } from 'execa';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runSimTool } from '../../src/device/sim-tools.ts';
import { simInit, simZkifc } from '../../src/device/sim-control.ts';
import type { SimModel } from '../../src/device/sim-state.ts';
import { zkluks } from '../helpers/cli.ts';

export const KERNEL = '6.6.51+rpt-rpi-v8';

export const ZYMBIT_CRYPTTAB =
  'cryptrfs  /dev/mmcblk0p2  /etc/cryptroot/key.bin  luks,keyscript=/lib/cryptsetup/scripts/zk_get_key,tries=100,timeout=30s\n';

/** Zymbit's keyscript (the SCM build's, without the MAC part): it ignores $1 and retries forever. */
export const ZK_GET_KEY = `#!/bin/sh
# zk_get_key (Zymbit zksaapps)
while [ ! -d /var/lib/zymbit ]; do sleep 1; done
export $(cat /var/lib/zymbit/zkenv.conf)
/sbin/zkunlockifs /var/lib/zymbit/key.bin.lock
`;

export const ZYMBIT_HOOK = `#!/bin/sh
PREREQ=""
prereqs() { echo "$PREREQ"; }
case $1 in prereqs) prereqs; exit 0;; esac
. /usr/share/initramfs-tools/hook-functions
mkdir -p $DESTDIR/var/lib/zymbit
cp -prf /var/lib/zymbit/* $DESTDIR/var/lib/zymbit
copy_exec /sbin/zkunlockifs /sbin
`;

export const ZYMBIT_POSTINST = `#!/bin/sh -e
# Zymbit: rebuild the one initrd.img for encrypted root
/usr/sbin/update_encr_initrd "$1"
`;

export const UPDATE_ENCR_INITRD = `#!/bin/bash
mount /dev/mmcblk0p1 /mnt/tmpboot
update-initramfs -v -c -k "$1" -b /mnt/tmpboot
mv /mnt/tmpboot/initrd.img-"$1" /mnt/tmpboot/initrd.img
`;

/**
 * Stands in for `chroot ROOT update-initramfs -c -k all` on a staged tree (a staged tree has no
 * userland to chroot into): builds each kernel's image from the tree's files as initramfs-tools'
 * hooks would — cryptsetup-initramfs (the root's crypttab line, the keyscript it names, askpass,
 * cryptsetup), /etc/initramfs-tools/modules, Zymbit's hook and zkluks's hook when installed — and
 * places it as raspi-firmware's post-update hook does. The QEMU tier builds real images.
 */
export const CHROOT_SHIM = `#!/bin/sh
set -eu
root=$1; shift
[ "$1" = update-initramfs ] || { echo "chroot shim: only update-initramfs" >&2; exit 1; }
for moddir in "$root"/lib/modules/*/; do
  ver=$(basename "$moddir")
  stage=$(mktemp -d)
  mkdir -p "$stage/cryptroot" "$stage/usr/lib/cryptsetup" "$stage/usr/sbin" "$stage/lib/modules/$ver"
  grep -v '^#' "$root/etc/crypttab" > "$stage/cryptroot/crypttab"
  ks=$(sed -n 's/.*keyscript=\\([^,]*\\).*/\\1/p' "$root/etc/crypttab" | head -n 1)
  if [ -n "$ks" ]; then mkdir -p "$stage$(dirname "$ks")"; cp "$root$ks" "$stage$ks"; fi
  echo askpass > "$stage/usr/lib/cryptsetup/askpass"
  echo cryptsetup > "$stage/usr/sbin/cryptsetup"
  : > "$stage/lib/modules/$ver/modules.dep"
  for m in $(grep -v '^#' "$root/etc/initramfs-tools/modules" 2>/dev/null) i2c-dev; do
    mkdir -p "$stage/lib/modules/$ver/kernel/drivers/i2c"
    echo module > "$stage/lib/modules/$ver/kernel/drivers/i2c/$m.ko.xz"
  done
  if [ -e "$root/etc/initramfs-tools/hooks/zymkey_cryptfs_cfg" ] || [ -e "$root/etc/initramfs-tools/hooks/zkluks" ]; then
    mkdir -p "$stage/var/lib/zymbit" "$stage/sbin"
    cp -pr "$root/var/lib/zymbit/." "$stage/var/lib/zymbit/"
    cp "$root/sbin/zkunlockifs" "$stage/sbin/zkunlockifs"
  fi
  if [ -e "$root/etc/initramfs-tools/hooks/zkluks" ] && [ -e "$root/etc/zkluks/boot.conf" ]; then
    mkdir -p "$stage/etc/zkluks"; cp "$root/etc/zkluks/boot.conf" "$stage/etc/zkluks/boot.conf"
  fi
  echo '#!/bin/sh' > "$stage/init"
  (cd "$stage" && find . | cpio -o -H newc --quiet | gzip -9n) > "$root/boot/initrd.img-$ver.new"
  mv "$root/boot/initrd.img-$ver.new" "$root/boot/initrd.img-$ver"
  rm -rf "$stage"
  if [ -e "$root/etc/initramfs/post-update.d/z50-raspi-firmware" ]; then
    cp "$root/boot/initrd.img-$ver" "$root/boot/firmware/initramfs8.new"
    mv "$root/boot/firmware/initramfs8.new" "$root/boot/firmware/initramfs8"
  fi
done
`;

export interface ZymbitPi {
  dir: string;
  root: string;
  simState: string;
  /** The LUKS2 image; also <root>/dev/mmcblk0p2 (a symlink), the source crypttab names. */
  volume: string;
  uuid: string;
  /** <root>/var/lib/zymbit/key.bin.lock */
  lock: string;
  /** The 512-byte key, for assertions only (the Pi itself never keeps it). */
  key: Buffer;
  env: Record<string, string>;
  /** Directory of the chroot shim, first on the PATH zkluks runs with. */
  bin: string;
  file(path: string, content: string | Buffer, mode?: number): void;
  read(path: string): string;
  exists(path: string): boolean;
  /** Run the zkluks bundle against the simulator (with the chroot shim first on PATH). */
  zkluks(args: string[], input?: string, env?: Record<string, string>): ReturnType<typeof zkluks>;
  /** A copy of the whole Pi (image, tree, simulated module) in a new directory. */
  clone(): Promise<ZymbitPi>;
  cleanup(): void;
}

async function run(file: string, args: string[], input: Buffer | string = '') {
  const r = await execa(file, args, { input, reject: false, encoding: 'buffer' });
  if (r.exitCode !== 0) throw new Error(`${file} ${args.join(' ')}: ${Buffer.from(r.stderr).toString()}`);
  return Buffer.from(r.stdout).toString();
}

async function simTool(tool: string, args: string[], state: string): Promise<Buffer> {
  const r = await runSimTool(tool, args, state);
  if (r.exitCode !== 0) throw new Error(r.stderr);
  return r.stdout;
}

export interface ZymbitPiOptions {
  /** `false` gives the volume and the sealed key only (the volume tier). */
  tree?: boolean;
  /** A directory whose files become the volume's ext4 root filesystem (the QEMU tier boots it). */
  rootfs?: string;
  /** The simulated module's model (default: the simulator's, a ZYMKEY4i). */
  model?: SimModel;
}

/** The cheapest argon2id keyslot: the kind cryptsetup's default makes, at the lowest cost. */
const ARGON2ID = ['--pbkdf', 'argon2id', '--pbkdf-memory', '32', '--pbkdf-force-iterations', '4'];

/**
 * A volume holding `rootfs` as ext4, its one keyslot holding `key`. The script formats the partition
 * and copies the running root in; `cryptsetup reencrypt --encrypt` on an ext4 image leaves the same
 * header, without device-mapper on the host.
 */
async function encryptedRootfs(volume: string, rootfs: string, key: Buffer): Promise<void> {
  await run('truncate', ['-s', '48M', volume]);
  await run('mkfs.ext4', ['-q', '-F', '-L', 'rootfs', '-d', rootfs, volume, '32M']);
  const plain = mkdtempSync('/dev/shm/zkluks-zymbit-key-');
  try {
    writeFileSync(join(plain, 'key.bin'), key, { mode: 0o600 });
    await run('cryptsetup', [
      'reencrypt',
      '--encrypt',
      '-q',
      '--type',
      'luks2',
      ...ARGON2ID,
      '--key-file',
      join(plain, 'key.bin'),
      '--reduce-device-size',
      '16M',
      volume,
    ]);
  } finally {
    rmSync(plain, { recursive: true, force: true });
  }
}

/** Build the Pi. */
export async function buildZymbitPi(options: ZymbitPiOptions = {}): Promise<ZymbitPi> {
  const dir = mkdtempSync(join(tmpdir(), 'zkluks-zymbit-'));
  const root = join(dir, 'root');
  const simState = join(dir, 'sim');
  const volume = join(dir, 'disk.img');
  const file = (path: string, content: string | Buffer, mode = 0o644) => {
    const p = join(root, path);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
    chmodSync(p, mode);
  };
  simInit(simState, options.model === undefined ? {} : { model: options.model });
  // Zymbit's script runs the standalone tools with zkifc stopped, as the module requires.
  simZkifc(simState, 'stopped');
  // Phase 2 of mk_encr_sd_rfs.sh: zkgrifs 512 > /run/key.bin; zklockifs /run/key.bin > key.bin.lock.
  const key = await simTool('zkgrifs', ['512'], simState);
  const plain = mkdtempSync('/dev/shm/zkluks-zymbit-key-');
  try {
    writeFileSync(join(plain, 'key.bin'), key, { mode: 0o600 });
    file(
      '/var/lib/zymbit/key.bin.lock',
      await simTool('zklockifs', [join(plain, 'key.bin')], simState),
      0o644,
    );
  } finally {
    rmSync(plain, { recursive: true, force: true });
    // and starts it again afterwards (the Python API, which zkluks asks for info, needs it).
    simZkifc(simState, 'running');
  }
  if (options.rootfs === undefined) {
    await run('truncate', ['-s', '32M', volume]);
    // cryptsetup -q -v luksFormat <part> - (the default LUKS2 argon2id slot, at the cheapest cost).
    await run('cryptsetup', ['-q', 'luksFormat', '--type', 'luks2', ...ARGON2ID, volume, '-'], key);
  } else {
    await encryptedRootfs(volume, options.rootfs, key);
  }
  const uuid = (await run('cryptsetup', ['luksUUID', volume])).trim();
  file('/var/lib/zymbit/zkenv.conf', 'ZK_GPIO_WAKE_PIN=516\n');
  if (options.tree !== false) {
    mkdirSync(join(root, 'dev'), { recursive: true });
    // Relative links, so a copy of the whole directory is a Pi of its own.
    symlinkSync('../../disk.img', join(root, 'dev/mmcblk0p2'));
    mkdirSync(join(root, 'dev/disk/by-uuid'), { recursive: true });
    symlinkSync('../../../../disk.img', join(root, `dev/disk/by-uuid/${uuid}`));
    file('/etc/crypttab', ZYMBIT_CRYPTTAB);
    file('/etc/fstab', '/dev/mapper/cryptrfs / ext4 defaults,noatime 0 1\n');
    file('/lib/cryptsetup/scripts/zk_get_key', ZK_GET_KEY, 0o755);
    file('/etc/initramfs-tools/hooks/zymkey_cryptfs_cfg', ZYMBIT_HOOK, 0o755);
    file('/etc/initramfs-tools/modules', '# modules\ni2c-dev\ni2c-bcm2835\ni2c-bcm2708\nlan78xx\n');
    file('/etc/initramfs-tools/initramfs.conf', 'MODULES=most\nBUSYBOX=auto\nCOMPRESS=gzip\n');
    file('/etc/kernel/postinst.d/initramfs-tools', ZYMBIT_POSTINST, 0o755);
    file('/usr/sbin/update_encr_initrd', UPDATE_ENCR_INITRD, 0o755);
    file('/sbin/zkunlockifs', '#!/bin/sh\n', 0o755);
    file(
      '/boot/firmware/config.txt',
      '[all]\ndtparam=i2c_arm=on\narm_64bit=1\ninitramfs initrd.img followkernel\n',
    );
    file(
      '/boot/firmware/cmdline.txt',
      'console=serial0,115200 console=tty1 fsck.repair=yes rootwait root=/dev/mapper/cryptrfs cryptdevice=/dev/mmcblk0p2:cryptrfs rng_core.default_quality=1000\n',
    );
    file('/boot/firmware/kernel8.img', 'kernel');
    file(`/lib/modules/${KERNEL}/modules.dep`, '');
    file(`/boot/vmlinuz-${KERNEL}`, 'kernel');
    file('/etc/initramfs/post-update.d/z50-raspi-firmware', '#!/bin/sh\n# raspi-firmware\n', 0o755);
    file(
      '/var/lib/dpkg/status',
      'Package: cryptsetup-initramfs\nStatus: install ok installed\n\nPackage: initramfs-tools\nStatus: install ok installed\nConffiles:\n /etc/kernel/postinst.d/initramfs-tools c1cb0e052a2cdeef4f3257585c83c58d\n',
    );
  }
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'chroot'), CHROOT_SHIM, { mode: 0o755 });
  if (options.tree !== false) {
    // update_encr_initrd: one image, built with Zymbit's crypttab line, as /boot/firmware/initrd.img.
    await run(join(bin, 'chroot'), [root, 'update-initramfs', '-c', '-k', KERNEL]);
    renameSync(join(root, `boot/initrd.img-${KERNEL}`), join(root, 'boot/firmware/initrd.img'));
    rmSync(join(root, 'boot/firmware/initramfs8'), { force: true });
  }
  return piAt(dir, uuid, key);
}

function piAt(dir: string, uuid: string, key: Buffer): ZymbitPi {
  const root = join(dir, 'root');
  const simState = join(dir, 'sim');
  const bin = join(dir, 'bin');
  const file = (path: string, content: string | Buffer, mode = 0o644) => {
    const p = join(root, path);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
    chmodSync(p, mode);
  };
  const env = {
    ZKLUKS_BACKEND: 'sim',
    ZKLUKS_SIM_STATE: simState,
    NO_COLOR: '1',
    PATH: `${bin}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
  };
  return {
    dir,
    root,
    simState,
    volume: join(dir, 'disk.img'),
    uuid,
    lock: join(root, '/var/lib/zymbit/key.bin.lock'),
    key,
    env,
    bin,
    file,
    read: (path) => readFileSync(join(root, path), 'utf8'),
    exists: (path) => existsSync(join(root, path)),
    zkluks: (args, input, extraEnv = {}) => zkluks(args, { env: { ...env, ...extraEnv }, input }),
    clone: async () => {
      const to = mkdtempSync(join(tmpdir(), 'zkluks-zymbit-'));
      await run('cp', ['-a', '--sparse=always', `${dir}/.`, to]);
      return piAt(to, uuid, key);
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
