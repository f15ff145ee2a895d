#!/bin/busybox sh
# Bulwark guest init. Runs as PID 1 from the initramfs built by
# internal/image; the host waits for the ready marker printed below.
# Errors are reported but never fatal: if PID 1 exits the kernel panics,
# and a guest with a shell is easier to debug than a dead one.

/bin/busybox --install -s /bin
/bin/busybox --install -s /sbin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
# devtmpfs supplies /dev/null, /dev/ttyS0 and friends; without it background
# jobs and cttyhack fail.
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
exec </dev/console >/dev/console 2>&1

# A transport the machine lacks (virtio_pci on microvm) may fail to load;
# that is expected, so only a one-line note is printed.
while read -r mod; do
	[ -n "$mod" ] || continue
	insmod "/lib/modules/$mod.ko" >/dev/null 2>&1 || echo "bulwark: insmod $mod failed"
done </etc/bulwark-modules

# Values reach a root shell's command lines, so anything outside a
# conservative character set (or that could look like an option) is ignored.
valid() {
	case "$1" in
	"" | -* | *[!A-Za-z0-9._:/-]*) return 1 ;;
	esac
	return 0
}

hn=bulwark-guest
ipaddr=
gw=
hb=
conmode=shell
# No globbing: cmdline words such as "*" must not expand to file names.
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
	bulwark.console) [ "$val" = login ] && conmode=login ;;
	bulwark.heartbeat)
		# At most four digits and no leading zero (ash reads 010 as octal).
		case "$val" in
		[1-9] | [1-9][0-9] | [1-9][0-9][0-9] | [1-9][0-9][0-9][0-9])
			[ "$val" -le 3600 ] && hb=$val ;;
		esac ;;
	esac
done
set +f

hostname "$hn" || echo "bulwark: hostname $hn failed"
printf 'export PATH=/bin:/sbin:/usr/bin:/usr/sbin\nPS1='\''%s# '\''\n' "$hn" >/etc/profile

ip link set lo up
if [ -n "$ipaddr" ]; then
	# Driver probing can lag behind insmod; give eth0 a moment to appear.
	i=0
	while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do
		usleep 100000
		i=$((i + 1))
	done
	if ip addr add "$ipaddr" dev eth0 && ip link set eth0 up; then
		if [ -n "$gw" ]; then
			ip route add default via "$gw" || echo "bulwark: default route via $gw failed"
		fi
	else
		echo "bulwark: eth0 configuration failed"
	fi
fi

# The heartbeat lets the host tell a running guest from a paused one.
if [ -n "$hb" ]; then
	(
		n=0
		while :; do
			sleep "$hb"
			n=$((n + 1))
			echo "bulwark-heartbeat $n" >/dev/console
		done
	) </dev/null >/dev/null 2>&1 &
fi

# Graceful stop: the host presses the ACPI power button (QMP
# system_powerdown); the button driver turns it into an input event that
# acpid maps to PWRF/00000080, which syncs and powers off.
mkdir -p /etc/acpi/PWRF
printf '#!/bin/sh\necho "bulwark-guest-poweroff" >/dev/console\nsync\npoweroff -f\n' >/etc/acpi/PWRF/00000080
chmod 0755 /etc/acpi/PWRF/00000080
mkdir -p /var/log /var/run
acpid -c /etc/acpi -l /var/log/acpid.log -p /var/run/acpid.pid || echo "bulwark: acpid failed"

echo "bulwark-guest-ready hostname=$hn"

# User data: a virtio disk whose first line is "#!bulwark-userdata" holds a
# script (the operator's, like a cloud-init config drive) run once in the
# background with output on the console. At most 64 KiB is read.
for d in /dev/vd[a-h]; do
	[ -b "$d" ] || continue
	head -c 65536 "$d" 2>/dev/null | tr -d '\000' >/run/userdata
	if [ "$(head -n 1 /run/userdata)" = "#!bulwark-userdata" ]; then
		echo "bulwark-userdata start $d"
		(sh /run/userdata; echo "bulwark-userdata exit $?") </dev/null >/dev/console 2>&1 &
		break
	fi
done

# bulwark.console=login puts a login prompt on the console instead of a
# shell. root's password starts locked; user data sets one (for example
# echo "root:$(mkpasswd -m sha512 PASSWORD):1::::::" >/etc/shadow), so no
# password is ever on the kernel command line.
if [ "$conmode" = login ]; then
	echo 'root:!:1::::::' >/etc/shadow
	chmod 0600 /etc/shadow
fi

# setsid + cttyhack give the shell a controlling terminal, which job control
# and Ctrl-C need; the console device itself (/dev/console) cannot be one.
while :; do
	if [ "$conmode" = login ]; then
		setsid cttyhack login
	else
		setsid cttyhack sh -l
	fi
	sleep 1
done
