#!/bin/sh
# Test-only initramfs hook for the image and boot tiers: the virtual hardware's modules (virtio,
# ext4, dm-crypt, i2c-stub) for MODULES=list, and, when ZKLUKS_TEST_REPO is set, Node with the zkluks
# bundle and i2c-bus so `zkluks device probe` can run inside the guest.
PREREQ=""
prereqs() {
	echo "$PREREQ"
}
case "$1" in
prereqs)
	prereqs
	exit 0
	;;
esac
# shellcheck source=/dev/null
. /usr/share/initramfs-tools/hook-functions

manual_add_modules virtio_pci virtio_blk virtio_console ext4 dm_crypt xts aesni_intel i2c-stub i2c-dev
force_load virtio_console

if [ -n "${ZKLUKS_TEST_REPO:-}" ]; then
	copy_exec "$(command -v node)" /opt/zkluks/node
	mkdir -p "$DESTDIR/opt/zkluks/dist" "$DESTDIR/opt/zkluks/node_modules"
	cp "$ZKLUKS_TEST_REPO"/dist/*.mjs "$DESTDIR/opt/zkluks/dist/"
	for m in i2c-bus bindings file-uri-to-path; do
		cp -a "$ZKLUKS_TEST_REPO/node_modules/$m" "$DESTDIR/opt/zkluks/node_modules/"
	done
fi
exit 0
