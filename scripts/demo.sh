#!/usr/bin/env bash
# The main job: installs what is missing, builds bulwark, builds the guest
# image, starts the daemon and a small demo host (two Linux VMs), then
# prints how to reach it. Run as root on Debian 12. Safe to run again.
set -euo pipefail
BULWARK_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$BULWARK_ROOT"
. scripts/deps.sh
bulwark_deps

STATE=${BULWARK_STATE_DIR:-/var/lib/bulwark}
RUN=${BULWARK_RUN_DIR:-/run/bulwark}
export BULWARK_SOCKET=${BULWARK_SOCKET:-$RUN/bulwark.sock}
LOG=${BULWARK_LOG:-/var/log/bulwark.log}
BIN="$BULWARK_ROOT/bin/bulwark"

echo "== building bulwark"
go build -ldflags "-X main.commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" -o "$BIN" ./cmd/bulwark

echo "== building the guest image (reproducible; digests below)"
"$BIN" image build --out "$STATE/images/default"

if "$BIN" vm list >/dev/null 2>&1; then
	echo "== daemon already running on $BULWARK_SOCKET"
else
	echo "== starting the daemon (log: $LOG)"
	mkdir -p "$(dirname "$LOG")"
	setsid "$BIN" serve --state-dir "$STATE" --run-dir "$RUN" --socket "$BULWARK_SOCKET" >>"$LOG" 2>&1 </dev/null &
	for _ in $(seq 1 100); do "$BIN" vm list >/dev/null 2>&1 && break; sleep 0.1; done
	"$BIN" vm list >/dev/null
fi

IMG="$STATE/images/default"
demo_vm() { # name ip
	local name=$1 ip=$2
	if ! "$BIN" vm show "$name" >/dev/null 2>&1; then
		"$BIN" vm create "$name" --vcpus 1 --memory 256 --kernel "$IMG/vmlinuz" --initrd "$IMG/initrd.img" \
			--cmdline "bulwark.hostname=$name bulwark.ip=$ip/24 bulwark.heartbeat=10" --nic "network=demo" >/dev/null
	fi
	case $("$BIN" vm show "$name" -o json | sed -n 's/^  "state": "\(.*\)",$/\1/p') in
	running | paused) ;;
	*) "$BIN" vm start "$name" >/dev/null ;;
	esac
}
echo "== demo VMs"
demo_vm demo-web 10.10.0.10
demo_vm demo-db 10.10.0.20
for name in demo-web demo-db; do
	for _ in $(seq 1 300); do
		"$BIN" vm log "$name" | grep -q "bulwark-guest-ready" && break
		sleep 0.2
	done
done
"$BIN" vm list
echo
for name in demo-web demo-db; do
	echo "--- $name serial console (last lines)"
	"$BIN" vm log "$name" --bytes 2000 | grep -a -E "bulwark-guest-ready|Linux version|heartbeat" | tail -n 3
done
"$BIN" vm show demo-web | grep -E "^(accel|pid|uid|run_dir):"

cat <<TXT

Bulwark is running.
  export BULWARK_SOCKET=$BULWARK_SOCKET
  $BIN vm list                 # VMs, state, accelerator
  $BIN vm show demo-web        # definition, pid, uid it runs as, why KVM/TCG
  $BIN vm log demo-web         # serial console log
  $BIN vm pause|resume|stop|start demo-web
  curl --unix-socket $BULWARK_SOCKET http://bulwark/api/v1/vms
  curl --unix-socket $BULWARK_SOCKET http://bulwark/metrics
Daemon log: $LOG. Stop the daemon with: pkill -TERM -f 'bulwark serve' (VMs keep running and are re-attached on the next start).
TXT
