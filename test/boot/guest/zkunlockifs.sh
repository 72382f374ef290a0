#!/bin/sh
# Test-only zkunlockifs for the QEMU boot tier, with the contract of Zymbit's tool (zkunlockifs FILE
# prints the plaintext; on failure one stderr line "zkunlockifs: <reason>: <explanation>", exit 1).
# It forwards the request to `zkluks sim serve` on the host through the virtio-serial port named
# zymkey.sim: UNSEAL <base64> -> OK <base64> | ERR <reason> <message>.
file=$1
if [ ! -r "$file" ]; then
	echo "zkunlockifs: unknown: cannot read '$file'" >&2
	exit 1
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
	echo "zkunlockifs: unreachable: no virtio-serial port named zymkey.sim" >&2
	exit 1
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
	echo "zkunlockifs: ${rest%% *}: ${rest#* }" >&2
	exit 1
	;;
*)
	echo "zkunlockifs: unknown: unexpected reply from the simulator" >&2
	exit 1
	;;
esac
