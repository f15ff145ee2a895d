#!/bin/sh
# Bulwark guest readiness and user data for Debian images, run at every boot
# by bulwark-ready.service once multi-user.target is reached (the image's
# services are started). It prints the ready marker hosts wait for, then
# runs user data: a virtio disk whose first line is "#!bulwark-userdata"
# holds a script (the operator's, like a cloud-init config drive), run with
# output on the console. At most 64 KiB is read.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
exec </dev/null >/dev/console 2>&1

echo "bulwark-guest-ready hostname=$(hostname)"

for d in /dev/vd[a-h]; do
	[ -b "$d" ] || continue
	# Skip mounted disks (the root file system).
	findmnt -n -S "$d" >/dev/null 2>&1 && continue
	head -c 65536 "$d" 2>/dev/null | tr -d '\000' >/run/bulwark-userdata
	if [ "$(head -n 1 /run/bulwark-userdata)" = "#!bulwark-userdata" ]; then
		echo "bulwark-userdata start $d"
		sh /run/bulwark-userdata
		echo "bulwark-userdata exit $?"
		break
	fi
done
