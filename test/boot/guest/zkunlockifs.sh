#!/bin/sh
# Test-only zkunlockifs for the QEMU boot tier, with the contract of Zymbit's tool (zkunlockifs FILE
# prints the plaintext) and of the simulator's: on failure one stderr line
# "zkunlockifs: <reason>: <explanation>", exit 1. It forwards the request to `zkluks sim serve` on the
# host through the virtio-serial port named zymkey.sim: UNSEAL <base64> -> OK <base64> | ERR <reason> <message>.
#
# ZKLUKS_SIM_OPAQUE (plain, exit2, silent, signal, hang; a word on the kernel command line, which the
# kernel hands to init's environment) makes a failure opaque, as src/device/sim-opaque.ts makes the
# simulator's own tools fail: the simulator's reason never reaches the keyscript.
file=$1

fail() {
	case ${ZKLUKS_SIM_OPAQUE:-} in
	plain)
		echo "zkunlockifs failed" >&2
		exit 1
		;;
	exit2)
		echo "Error: operation returned -5" >&2
		exit 2
		;;
	silent) exit 1 ;;
	signal) kill -KILL $$ ;;
	hang) exec sleep 2147483647 ;;
	esac
	echo "zkunlockifs: $1: $2" >&2
	exit 1
}

if [ ! -r "$file" ]; then
	fail unknown "cannot read '$file'"
fi
modprobe -q virtio_console 2>/dev/null
port=
i=0
while [ "$i" -lt 50 ]; do
	for p in /sys/class/virtio-ports/*; do
		if [ "$(cat "$p/name" 2>/dev/null)" = zymkey.sim ]; then port=/dev/${p##*/}; fi
	done
	if [ -n "$port" ] && [ -e "$port" ]; then break; fi
	sleep 0.1
	i=$((i + 1))
done
if [ -z "$port" ]; then
	fail unreachable "no virtio-serial port named zymkey.sim"
fi
request=$(base64 -w 0 "$file")
exec 3<>"$port"
printf 'UNSEAL %s\n' "$request" >&3
IFS= read -r reply <&3
exec 3<&-
case $reply in
"OK "*)
	printf '%s' "${reply#OK }" | base64 -d
	;;
"ERR "*)
	rest=${reply#ERR }
	fail "${rest%% *}" "${rest#* }"
	;;
*)
	fail unknown "unexpected reply from the simulator"
	;;
esac
