#!/bin/busybox sh
# shellcheck shell=dash
# Test-only /sbin/init for the encrypt-root boot tier's root filesystem: proves the root was
# reached, says which device it is mounted from, checks every file against data/SHA256SUMS, prints
# the zkluks boot records carried over in /run, and powers the VM off.
PATH=/bin
busybox mount -t proc proc /proc
busybox mount -t tmpfs tmpfs /tmp
echo
echo "MARKER-ROOT-REACHED"
echo "ROOT-MOUNT $(busybox grep ' / ' /proc/mounts | busybox head -n 1)"
cd / || exit 1
busybox sha256sum -c data/SHA256SUMS >/tmp/sums 2>&1
echo "CHECKSUMS ok=$(busybox grep -c ': OK$' /tmp/sums) failed=$(busybox grep -vc ': OK$' /tmp/sums)"
for f in /run/zkluks/*.record; do
	[ -e "$f" ] || continue
	while IFS= read -r line; do
		echo "BOOTREC ${f##*/}: $line"
	done <"$f"
done
echo "MARKER-END"
busybox sync
busybox poweroff -f
