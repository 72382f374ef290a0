#!/bin/sh
# Test-only boot script (init-premount, before cryptroot): puts an i2c-stub bus in place so the
# keyscript finds an I2C bus; with zkluks_test=probe on the kernel command line it instead runs
# `zkluks device probe --json` three times (no i2c-dev; i2c-stub at 0x50; i2c-stub at 0x30) and powers off.
# With zkluks_test_timeout=N it first sets ZKLUKS_TIMEOUT=N in the image's zkluks boot.conf, as an
# admin would before update-initramfs, so one image serves boots with a short time bound too.
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

probe() {
	echo "ZKLUKS-PROBE $1 $(/opt/zkluks/node /opt/zkluks/dist/zkluks.mjs device probe --json 2>/dev/null | tr -d '\n')"
}

cmdline=" $(cat /proc/cmdline) "
case $cmdline in
*" zkluks_test_timeout="*)
	timeout=${cmdline##*" zkluks_test_timeout="}
	sed -i "s/^ZKLUKS_TIMEOUT=.*/ZKLUKS_TIMEOUT=${timeout%% *}/" /etc/zkluks/boot.conf
	;;
esac

case $cmdline in
*" zkluks_test=probe "*)
	# The zkluks hook force-loads i2c-dev; take it out for the first probe.
	rmmod i2c_dev 2>/dev/null
	modprobe i2c-stub chip_addr=0x50
	probe no-i2c-dev
	modprobe i2c-dev
	probe stub-at-0x50
	rmmod i2c-stub
	modprobe i2c-stub chip_addr=0x30
	probe stub-at-0x30
	echo ZKLUKS-PROBE-DONE
	poweroff -f
	;;
*)
	modprobe i2c-stub chip_addr=0x50
	;;
esac
