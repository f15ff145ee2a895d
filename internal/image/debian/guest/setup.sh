#!/bin/sh
# Bulwark guest setup for Debian images, run at every boot by
# bulwark-setup.service before the network is up. It applies what the host
# put on the kernel command line (the same keys as the busybox image's
# init): bulwark.hostname, bulwark.ip (address/prefix), bulwark.gw,
# bulwark.dns. Values reach root's command lines, so anything outside a
# conservative character set is ignored.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

valid() {
	case "$1" in
	"" | -* | *[!A-Za-z0-9._:/-]*) return 1 ;;
	esac
	return 0
}

hn=
ipaddr=
gw=
dns=
set -f
for arg in $(cat /proc/cmdline); do
	key=${arg%%=*}
	val=${arg#*=}
	[ "$key" != "$arg" ] || continue
	valid "$val" || continue
	case "$key" in
	bulwark.hostname) [ ${#val} -le 63 ] && hn=$val ;;
	bulwark.ip) case "$val" in */*) ipaddr=$val ;; esac ;;
	bulwark.gw) gw=$val ;;
	bulwark.dns) dns=$val ;;
	esac
done
set +f

if [ -n "$hn" ]; then
	hostname "$hn" || echo "bulwark: hostname $hn failed"
	# /etc/hosts lets sudo and friends resolve the name without DNS.
	printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$hn" >/etc/hosts
	echo "$hn" >/etc/hostname
fi

ip link set lo up
if [ -n "$ipaddr" ]; then
	# The NIC appears when udev has loaded virtio_net; wait up to 10 s.
	i=0
	while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	ip addr flush dev eth0 2>/dev/null
	if ip addr add "$ipaddr" dev eth0 && ip link set eth0 up; then
		if [ -n "$gw" ]; then
			ip route replace default via "$gw" || echo "bulwark: default route via $gw failed"
		fi
	else
		echo "bulwark: eth0 configuration failed"
	fi
fi
if [ -n "$dns" ]; then
	echo "nameserver $dns" >/etc/resolv.conf
fi

# Host keys are per VM: the template ships none, so every VM made from it
# gets its own on first boot.
if [ -x /usr/bin/ssh-keygen ] && ! ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1; then
	ssh-keygen -A >/dev/null && echo "bulwark: generated ssh host keys"
fi

# A root disk made larger than the template (qemu-img resize) is grown to
# its full size; ext4 grows online.
root=$(findmnt -n -o SOURCE /)
case "$root" in
/dev/vd*) resize2fs "$root" >/dev/null 2>&1 || true ;;
esac
exit 0
