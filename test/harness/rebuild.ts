// The rebuild in a staged tree for the crash harness: a `chroot` stand-in that takes
// `chroot ROOT update-initramfs -c -k all` (a staged tree has no userland to chroot into) and, for each
// /boot/initrd.img-<version> of the tree, packs a new image from the tree's files as initramfs-tools'
// hooks would: cryptsetup-initramfs copies the crypttab lines (read through the tree's links) and each
// keyscript they name, askpass and cryptsetup; the zkluks hook, when installed and executable, adds
// the keyscript, zkunlockifs, the Zymbit state, boot.conf and i2c-dev. Like update-initramfs it writes
// `<image>.new` and renames it over the image, one kernel after the other.
//
// The images are gzip'd newc cpio archives; `lsinitramfs` beside it lists them (gzip and cpio alone,
// for speed; the image tier runs the real mkinitramfs and lsinitramfs).
//
// ZKLUKS_REBUILD_KILL makes it die by SIGKILL part-way: `write` with half of the first `.new`
// written, `between` once the first image is replaced and before the next one.
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const STANDIN = `#!/bin/sh
set -eu
root=$1; shift
[ "\${1:-}" = update-initramfs ] || { echo "chroot stand-in: only update-initramfs" >&2; exit 1; }
# /etc/crypttab as the system sees it: every link followed inside the tree.
p=/etc/crypttab; hops=0
while [ -L "$root$p" ] && [ "$hops" -lt 40 ]; do
  t=$(readlink "$root$p")
  case $t in /*) p=$t ;; *) p=\${p%/*}/$t ;; esac
  hops=$((hops + 1))
done
tab=$root$p
[ -f "$tab" ] || tab=/dev/null
hook=$root/etc/initramfs-tools/hooks/zkluks
stage=$(mktemp -d)
trap 'rm -rf "$stage" "$stage.cpio"' EXIT
mkdir -p "$stage/cryptroot"
# cryptsetup-initramfs: the crypttab lines, the keyscript each names, askpass and cryptsetup.
sed -e 's/\\r$//' -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' "$tab" >"$stage/cryptroot/crypttab"
if [ -s "$stage/cryptroot/crypttab" ]; then
  mkdir -p "$stage/usr/lib/cryptsetup" "$stage/usr/sbin"
  echo askpass >"$stage/usr/lib/cryptsetup/askpass"
  echo cryptsetup >"$stage/usr/sbin/cryptsetup"
fi
for ks in $(sed -n 's/.*keyscript=\\([^,[:space:]]*\\).*/\\1/p' "$stage/cryptroot/crypttab"); do
  if [ -f "$root$ks" ]; then
    mkdir -p "$stage\${ks%/*}"; cp "$root$ks" "$stage$ks"
  else
    echo "cryptsetup: WARNING: $ks: invalid value for 'keyscript' option, skipping" >&2
  fi
done
# The zkluks hook, when installed: the keyscript, zkunlockifs, the Zymbit state, boot.conf, i2c-dev.
zk=
if [ -x "$hook" ]; then
  zk=1
  ks=$(sed -n "s/^KEYSCRIPT='\\(.*\\)'$/\\1/p" "$hook")
  un=$(sed -n "s/^ZKUNLOCKIFS='\\(.*\\)'$/\\1/p" "$hook")
  if [ -f "$root$ks" ] && [ ! -e "$stage$ks" ]; then mkdir -p "$stage\${ks%/*}"; cp "$root$ks" "$stage$ks"; fi
  mkdir -p "$stage\${un%/*}" "$stage/var/lib/zymbit"
  cp "$root$un" "$stage$un"
  cp -pR "$root/var/lib/zymbit/." "$stage/var/lib/zymbit/"
  if [ -f "$root/etc/zkluks/boot.conf" ]; then mkdir -p "$stage/etc/zkluks"; cp "$root/etc/zkluks/boot.conf" "$stage/etc/zkluks/"; fi
fi
echo '#!/bin/sh' >"$stage/init"
kill_at=\${ZKLUKS_REBUILD_KILL:-}
first=1
for img in "$root"/boot/initrd.img-*; do
  [ -f "$img" ] || continue
  case $img in *.new | *.bak) continue ;; esac
  ver=\${img##*/initrd.img-}
  rm -rf "$stage/usr/lib/modules"
  mkdir -p "$stage/usr/lib/modules/$ver"
  if [ -n "$zk" ]; then
    mkdir -p "$stage/usr/lib/modules/$ver/kernel/drivers/i2c"
    echo module >"$stage/usr/lib/modules/$ver/kernel/drivers/i2c/i2c-dev.ko"
  fi
  (cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1n) >"$stage.cpio"
  if [ "$first" = 1 ] && [ "$kill_at" = write ]; then
    size=$(wc -c <"$stage.cpio")
    head -c $((size / 2)) "$stage.cpio" >"$img.new"
    kill -KILL $$
  fi
  cp "$stage.cpio" "$img.new"
  mv -f "$img.new" "$img"
  if [ "$first" = 1 ] && [ "$kill_at" = between ]; then kill -KILL $$; fi
  first=0
done
`;

/** lsinitramfs for the images the stand-in packs (gzip, newc): what it lists, and fails on a cut one. */
const LIST = `#!/bin/sh
gzip -dc "$1" | cpio -t --quiet
`;

/** Write the stand-ins as `<dir>/chroot` and `<dir>/lsinitramfs`; returns their paths. */
export async function writeRebuildStandins(dir: string): Promise<{ chroot: string; lsinitramfs: string }> {
  const out = { chroot: join(dir, 'chroot'), lsinitramfs: join(dir, 'lsinitramfs') };
  await writeFile(out.chroot, STANDIN);
  await writeFile(out.lsinitramfs, LIST);
  await chmod(out.chroot, 0o755);
  await chmod(out.lsinitramfs, 0o755);
  return out;
}
