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
# HTTPS listener for remote CLIs and the web console (https://$LISTEN/ui/).
LISTEN=${BULWARK_LISTEN:-127.0.0.1:8443}

# Switch ports are Unix datagram sockets; systemd hosts queue 512 datagrams
# per socket, the bare kernel only 10, which drops bursts.
[ "$(cat /proc/sys/net/unix/max_dgram_qlen 2>/dev/null || echo 512)" -ge 512 ] ||
	sysctl -q -w net.unix.max_dgram_qlen=512 || true

# step prints a step's heading and how long the previous one took.
DEMO_T0=$(date +%s.%N) STEP_T0=$DEMO_T0 STEP_NAME=
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step() {
	[ -z "$STEP_NAME" ] || echo "   ($STEP_NAME: $(since "$STEP_T0") s)"
	STEP_NAME=${1%%[:(]*} STEP_T0=$(date +%s.%N)
	STEP_NAME=${STEP_NAME% }
	echo "== $1"
}

step "building bulwark"
go build -ldflags "-X main.commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" -o "$BIN" ./cmd/bulwark

step "building the guest image (reproducible; digests below)"
"$BIN" image build --out "$STATE/images/default"

step "building the Debian 12 server image (mmdebstrap from Debian's archive; reused while the archive is unchanged)"
echo "    (the first build downloads ~100 MiB and takes 1-3 minutes; log: $STATE/images/debian-12.build.log)"
"$BIN" image build --distro debian --name debian-12 --packages nginx --images "$STATE/images" 2>"$STATE/images/debian-12.build.log" |
	grep -E "^(cached|seconds|version|kernel_sha256|initrd_sha256|disk |disk_sha256|installed|cache_key) " ||
	{ tail -n 20 "$STATE/images/debian-12.build.log"; exit 1; }
"$BIN" image verify debian-12 --images "$STATE/images" | tr '\n' ' ' && echo

if "$BIN" vm list >/dev/null 2>&1; then
	step "daemon already running on $BULWARK_SOCKET"
else
	step "starting the daemon (log: $LOG) on a software TPM (swtpm; production hosts use --tpm device)"
	mkdir -p "$(dirname "$LOG")" "$RUN/swtpm"
	TPM_SOCK="$RUN/swtpm/swtpm.sock"
	if ! pgrep -f "swtpm socket.*$TPM_SOCK" >/dev/null; then
		mkdir -p -m 0700 "$STATE/swtpm"
		swtpm socket --tpm2 --tpmstate dir="$STATE/swtpm" --server type=unixio,path="$TPM_SOCK" \
			--ctrl type=unixio,path="$RUN/swtpm/ctrl.sock" --flags not-need-init,startup-clear --daemon
	fi
	setsid "$BIN" serve --state-dir "$STATE" --run-dir "$RUN" --socket "$BULWARK_SOCKET" --listen "$LISTEN" \
		--tpm "swtpm:$TPM_SOCK" >>"$LOG" 2>&1 </dev/null &
	for _ in $(seq 1 100); do "$BIN" vm list >/dev/null 2>&1 && break; sleep 0.1; done
	"$BIN" vm list >/dev/null
	# A verifier from an earlier run judges this daemon at once: a rebuilt
	# binary is a new PCR 11 digest it does not know, and the daemon would
	# refuse VM starts as untrusted. Refresh the demo's golden values first
	# (trust on first use, as in the attestation step below).
	if "$BIN" verifier --verifier-socket /run/bulwark-verifier/verifier.sock host list >/dev/null 2>&1; then
		echo "    (a new daemon binary: refreshing the demo verifier's golden values)"
		"$BIN" attest golden --version "$(date +%s)" --boot "demo=$STATE/images/default/vmlinuz,$STATE/images/default/initrd.img" >/var/lib/bulwark-verifier/policy.json &&
			"$BIN" verifier --verifier-socket /run/bulwark-verifier/verifier.sock policy set /var/lib/bulwark-verifier/policy.json >/dev/null &&
			"$BIN" verifier --verifier-socket /run/bulwark-verifier/verifier.sock poll demo-host >/dev/null || true
	fi
fi

IMG="$STATE/images/default"
step "demo network and firewall policy"
"$BIN" network show demo >/dev/null 2>&1 ||
	"$BIN" network create demo --subnet 10.10.0.0/24 --gateway 10.10.0.1 >/dev/null
for g in web db; do "$BIN" sg show "$g" >/dev/null 2>&1 || "$BIN" sg create "$g" >/dev/null; done
# web may reach db on tcp/5432; nothing else crosses the groups (default:
# ingress only from members of the same group, egress allowed).
"$BIN" sg show db -o json | grep -q '"id": "postgres"' ||
	"$BIN" sg rule add db --id postgres --direction ingress --action allow --protocol tcp --port 5432 \
		--remote-group web --description "web tier to postgres" >/dev/null
"$BIN" sg show db

# Guest programs come on a user-data disk (config-drive style).
userdata() { # name script
	local f="$STATE/images/$1.userdata"
	printf '#!bulwark-userdata\n%s\n' "$2" >"$f"
	truncate -s 4096 "$f"
	echo "$f"
}
DB_SCRIPT='nc -ll -p 5432 -e /bin/echo "postgres says hello" &'
WEB_SCRIPT='sleep 5 # let demo-db start its listener
while :; do
  if nc -w 2 10.10.0.20 5432 </dev/null >/dev/null 2>&1; then t=allowed; else t=blocked; fi
  if ping -c 1 -W 2 10.10.0.20 >/dev/null 2>&1; then p=allowed; else p=blocked; fi
  echo "demo-check web->db tcp/5432 $t, ping $p"; sleep 10
done &'

demo_vm() { # name ip group script
	local name=$1 ip=$2 group=$3 script=$4
	if ! "$BIN" vm show "$name" >/dev/null 2>&1; then
		"$BIN" vm create "$name" --vcpus 1 --memory 256 --kernel "$IMG/vmlinuz" --initrd "$IMG/initrd.img" \
			--cmdline "bulwark.hostname=$name bulwark.ip=$ip/24 bulwark.gw=10.10.0.1" \
			--nic "network=demo,ip=$ip,group=$group" --disk "$(userdata "$name" "$script"):ro" \
			--monitor-interval 30s >/dev/null
	fi
	case $("$BIN" vm show "$name" -o json | sed -n 's/^  "state": "\(.*\)",$/\1/p') in
	running | paused) ;;
	*) "$BIN" vm start "$name" >/dev/null ;;
	esac
}
step "demo VMs"
demo_vm demo-db 10.10.0.20 db "$DB_SCRIPT"
demo_vm demo-web 10.10.0.10 web "$WEB_SCRIPT"
for name in demo-web demo-db; do
	for _ in $(seq 1 300); do
		"$BIN" vm log "$name" | grep -q "bulwark-guest-ready" && break
		sleep 0.2
	done
done
for _ in $(seq 1 100); do "$BIN" vm log demo-web | grep -q "demo-check" && break; sleep 0.3; done
"$BIN" vm list
echo
for name in demo-web demo-db; do
	echo "--- $name serial console (last lines)"
	"$BIN" vm log "$name" --bytes 4000 | grep -a -E "bulwark-guest-ready|demo-check" | tail -n 2
done
echo
echo "--- switch ports (counters, drops by reason)"
"$BIN" port list
echo "--- firewall log (last events)"
"$BIN" fw log --bytes 1200 | tail -n 3
"$BIN" vm show demo-web | grep -E "^(accel|pid|uid|run_dir|nic0):"

echo
step "a Debian server VM: nginx in group www, which admits tcp/80 from web only"
"$BIN" sg show www >/dev/null 2>&1 || "$BIN" sg create www >/dev/null
"$BIN" sg show www -o json | grep -q '"id": "http"' ||
	"$BIN" sg rule add www --id http --direction ingress --action allow --protocol tcp --port 80 \
		--remote-group web --description "web tier to nginx" >/dev/null
if ! "$BIN" vm show demo-deb >/dev/null 2>&1; then
	# Kernel, initrd and command line from the image (checked against its
	# manifest at every start); the root disk is a thin qcow2 volume
	# demo-deb-root on the image's shared, read-only base volume.
	"$BIN" vm create demo-deb --image debian-12 --disk size=4G --vcpus 1 --memory 512 \
		--cmdline "bulwark.hostname=demo-deb bulwark.ip=10.10.0.30/24 bulwark.gw=10.10.0.1" \
		--nic "network=demo,ip=10.10.0.30,group=www" \
		--disk "$(userdata demo-deb 'echo "hello from $(hostname): Debian $(cat /etc/debian_version), nginx" >/var/www/html/index.html')":ro >/dev/null
	"$BIN" volume list | grep -E "NAME|debian-12|demo-deb" | sed 's/^/    /'
fi
case $("$BIN" vm show demo-deb -o json | sed -n 's/^  "state": "\(.*\)",$/\1/p') in
running | paused) ;;
*) "$BIN" vm start demo-deb >/dev/null ;;
esac
DEB_T0=$(date +%s.%N)
echo "    demo-deb is booting (systemd under TCG takes a while); the demo goes on and comes back to it"

echo
step "least privilege: an auditor who can read everything and change nothing"
"$BIN" user list -o json | grep -q '"name": "auditor"' || {
	"$BIN" user create auditor >/dev/null
	"$BIN" perm grant --user auditor --role SecurityAuditor --path / >/dev/null
}
AUDITOR_TOKEN=$("$BIN" token create auditor --ttl 24h --description demo)
case $AUDITOR_TOKEN in
bwk_*)
	echo "--- as auditor: bulwark audit verify"
	BULWARK_TOKEN=$AUDITOR_TOKEN "$BIN" audit verify
	echo "--- as auditor: bulwark vm stop demo-web (refused, and recorded)"
	BULWARK_TOKEN=$AUDITOR_TOKEN "$BIN" vm stop demo-web || true
	"$BIN" audit list --user auditor --limit 2   # newest first
	;;
*) echo "could not create the auditor's token" >&2 ;;
esac

echo
step "no escalation, need to know: a helpdesk user who manages users and runs one VM"
if ! "$BIN" user list -o json | grep -q '"name": "helpdesk"'; then
	"$BIN" user create helpdesk >/dev/null
	"$BIN" role create usermgr >/dev/null
	"$BIN" role add usermgr User.Manage >/dev/null
	"$BIN" perm grant --user helpdesk --role usermgr --path /users >/dev/null
	"$BIN" perm grant --user helpdesk --role VMOperator --path /vms/demo-web >/dev/null
fi
HELPDESK_TOKEN=$("$BIN" token create helpdesk --ttl 24h --description demo)
case $HELPDESK_TOKEN in
bwk_*)
	echo "--- as helpdesk: bulwark whoami --path /vms/demo-web"
	BULWARK_TOKEN=$HELPDESK_TOKEN "$BIN" whoami --path /vms/demo-web
	echo "--- as helpdesk: bulwark vm list (only the VMs it may see)"
	BULWARK_TOKEN=$HELPDESK_TOKEN "$BIN" vm list
	echo "--- as helpdesk: a token for the auditor, who holds more (refused: it would act as the auditor)"
	BULWARK_TOKEN=$HELPDESK_TOKEN "$BIN" token create auditor 2>&1 | cut -c1-220 || true
	echo "--- as helpdesk: itself into a new group (refused)"
	BULWARK_TOKEN=$HELPDESK_TOKEN "$BIN" user groups helpdesk admins 2>&1 | cut -c1-220 || true
	;;
*) echo "could not create the helpdesk token" >&2 ;;
esac

echo
step "secure console: one user at a time, pasted input refused, every session recorded"
if ! "$BIN" user list -o json | grep -q '"name": "operator"'; then
	"$BIN" user create operator >/dev/null
	"$BIN" perm grant --user operator --role VMOperator --path /vms >/dev/null
	OP_PASSWORD=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
	printf '%s\n' "$OP_PASSWORD" | "$BIN" user passwd operator --password-stdin >/dev/null
	echo "$OP_PASSWORD" >"$STATE/demo-operator-password" && chmod 0600 "$STATE/demo-operator-password"
fi
OP_TOKEN=$("$BIN" token create operator --ttl 24h --description demo)
# A person typing, one key at a time, with a pause between keys.
type_slowly() {
	local s=$1 i
	for ((i = 0; i < ${#s}; i++)); do printf '%s' "${s:i:1}"; sleep 0.12; done
	printf '\r'
}
echo "--- operator types a command on demo-web's console"
type_slowly 'echo typed-on-$(hostname)' | BULWARK_TOKEN=$OP_TOKEN "$BIN" console demo-web --linger 2s 2>&1 |
	tr -d '\r' | grep -a -E "^\[bulwark|^typed-on" || true
echo "--- operator pastes (bracketed paste): refused, the guest never sees it"
printf '\e[200~cat /etc/shadow\e[201~\r' | BULWARK_TOKEN=$OP_TOKEN "$BIN" console demo-web --linger 1s 2>&1 |
	tr -d '\r' | grep -a "refused" || true
echo "--- operator holds demo-db's console; root is refused, then takes it over (VM.Console.Takeover)"
(sleep 6 | BULWARK_TOKEN=$OP_TOKEN "$BIN" console demo-db --linger 0s >/dev/null 2>"$STATE/demo-operator-console.err" || true) &
holder=$!
sleep 2
"$BIN" console demo-db </dev/null 2>&1 | tr -d '\r' | grep -a "held by" || true
sleep 0.1 | "$BIN" console demo-db --force --linger 1s >/dev/null 2>&1 || true
wait "$holder"
echo "    the operator was told: $(tr -d '\r' <"$STATE/demo-operator-console.err" | grep -a "session ended" | tail -n 1)"
echo "--- recordings (asciicast v2: bulwark console recording ID -f x.cast; asciinema play x.cast)"
"$BIN" console recordings | tail -n 4
echo "--- console events in the audit log"
"$BIN" audit list --object /vms/demo-db --limit 40 | grep -a console | head -n 4   # newest first

echo
step "demo-web fetches the Debian VM's page through the switch and the firewall"
for _ in $(seq 1 1500); do "$BIN" vm log demo-deb | grep -q "bulwark-guest-ready" && break; sleep 0.2; done
echo "    demo-deb ready (services started) $(since "$DEB_T0") s after its start was requested; its serial console:"
for _ in $(seq 1 50); do "$BIN" vm log demo-deb --bytes 200 | grep -q "login: " && break; sleep 0.2; done
"$BIN" vm log demo-deb --bytes 3000 | tr -d '\r' | grep -a -E "bulwark-guest-ready|login:" | tail -n 2 | sed 's/^/    /' || true
type_slowly 'wget -q -O - http://10.10.0.30/' | "$BIN" console demo-web --linger 4s 2>&1 |
	tr -d '\r' | grep -a "^hello from" | sed 's/^/    demo-web got: /' || echo "    (no answer from demo-deb yet; try: bulwark console demo-web)"

echo
step "IPS at every vNIC: Suricata rules inline between the demo VMs; demo-web's traffic mirrored to a pcap"
"$BIN" ips rules load scripts/demo-ips.rules | sed 's/^/    /'
ET=$(for d in ../shared/data/et-open /work/shared/data/et-open; do [ -d "$d" ] && echo "$d" && break; done)
if [ -n "$ET" ] && ! "$BIN" ips rules list -o json | grep -q '"emerging-web_server.rules"'; then
	echo "    loading every ET Open file from $ET (unsupported keywords are skipped and counted):"
	"$BIN" ips rules load --classification "$ET/classification.config" "$ET"/*.rules >/dev/null
	"$BIN" ips rules stats | sed 's/^/    /' | cut -c1-200
fi
"$BIN" ips mode demo block --overload fail-closed >/dev/null
"$BIN" mirror list -o json | grep -q '"demo-tap"' ||
	"$BIN" mirror create demo-tap --network demo --source demo-web --to pcap --max-bytes 8388608 >/dev/null
echo "--- demo-web asks demo-deb's nginx for /etc/passwd: the IPS drops the request before nginx sees it"
type_slowly 'timeout 6 wget -q -O - "http://10.10.0.30/view?file=/etc/passwd" || echo "demo-web: request failed"' | "$BIN" console demo-web --linger 7s 2>&1 |
	tr -d '\r' | grep -a -E "^(demo-web: request failed|root:)" | sed 's/^/    /' || true
echo "--- the alert, in Suricata's EVE JSON with the VMs, ports and groups (bulwark ips alerts)"
"$BIN" ips alerts --sid 9800001 | tail -n 1 | sed 's/^/    /'
echo "--- mirror sessions (bulwark mirror list); the pcap opens in tshark/wireshark"
"$BIN" mirror list
echo
step "introspection: demo-web seen from outside (separate monitor process, read-only guest RAM)"
"$BIN" vmi info demo-web || true
# (outputs are captured first: head closing a pipe would stop the script)
ps_out=$("$BIN" vmi ps demo-web || true)
printf '%s\n' "$ps_out" | sed -n 1p
printf '%s\n' "$ps_out" | grep -a -v '\[' | tail -n 6
echo "--- checks: hidden processes and modules, syscall table, IDT, kernel text and rodata"
"$BIN" vmi check demo-web || true
echo "--- sys_call_table, first entries (named from the kernel's own kallsyms)"
sc_out=$("$BIN" vmi syscalls demo-web || true)
printf '%s\n' "$sc_out" | sed -n 1,4p
echo "--- hook points (kprobes, ftrace, netfilter, LSM), each handler's owner; eBPF programs"
hk_out=$("$BIN" vmi hooks demo-web || true)
printf '%s\n' "$hk_out" | grep -a -v " lsm " | head -n 8
"$BIN" vmi bpf demo-web 2>&1 | head -n 4 || true
echo "--- response policy: a syscall-table hook on demo-web is answered with a memory dump and a network quarantine"
printf '%s\n' '{"global": {"*": ["record"]}, "vms": {"demo-web": {"syscall_hook": ["dump", "isolate"], "hidden_task": ["dump", "isolate"], "kernel_text_modified": ["dump", "pause"]}}}' |
	"$BIN" monitor response set - >/dev/null && "$BIN" monitor response show | sed 's/^/    /'
echo "--- the monitor runs as its own uid:"
mon=$(pgrep -f ' monitor --cache ' | head -n 1 || true)
[ -n "$mon" ] && ps -o user:12,pid,args -p "$mon" || true

echo
step "containment: every VMM is jailed (own namespaces, read-only root, no capabilities, seccomp allow list, cgroup)"
qpid=$("$BIN" -o json vm show demo-web | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' | head -n 1)
if [ -n "$qpid" ] && [ -d "/proc/$qpid" ]; then
	grep -E '^(Uid|NSpid|CapEff|CapBnd|NoNewPrivs|Seccomp):' "/proc/$qpid/status" | sed 's/^/    /'
	echo "    namespaces differing from the host's: $(for n in mnt pid net ipc uts cgroup; do [ "$(readlink /proc/$qpid/ns/$n)" != "$(readlink /proc/self/ns/$n)" ] && printf '%s ' "$n"; done)"
	echo "    what the VMM sees as /: $(ls /proc/$qpid/root/ | tr '\n' ' ')"
	echo "    cgroup: $(grep -E ':(pids|memory):|^0::' /proc/$qpid/cgroup | tr '\n' ' ')"
	echo "    run directory (root's alone): $(stat -c '%A %U' "$RUN/vms/demo-web" 2>/dev/null || true)"
fi
echo
step "measured launch: the hypervisor layer in PCR 11, every VM start in PCR 12, replayed from the TCG event log"
"$BIN" attest pcrs || true
"$BIN" attest log 2>/dev/null | tail -n 6 | cut -c1-160 || true

step "resource pools: reservations, limits and shares; a VM starts only when its reservation fits"
"$BIN" pool show demo >/dev/null 2>&1 ||
	"$BIN" pool create demo --cpu-reservation 500m --cpu-limit 1200m --memory-reservation 512 >/dev/null
# demo-web moves into the pool while it runs, with a guaranteed 300m and high shares.
"$BIN" vm set demo-web --pool demo --cpu-reservation 300m --cpu-shares high >/dev/null 2>&1 || true
"$BIN" vm show demo-hog >/dev/null 2>&1 ||
	"$BIN" vm create demo-hog --vcpus 2 --memory 128 --kernel "$IMG/vmlinuz" --initrd "$IMG/initrd.img" \
		--pool demo --cpu-reservation 400m >/dev/null
echo "--- demo-hog asks for 400m in pool demo, where demo-web holds 300m of 500m: refused, naming who holds it"
"$BIN" vm start demo-hog 2>&1 | sed 's/^/    /' || true
"$BIN" vm delete demo-hog >/dev/null 2>&1 || true
"$BIN" pool show demo | cut -c1-150
step "remote attestation: a verifier (its own service, store and audit log) binds this host's AK to its EK, then polls quotes every 2 s"
VSTATE=/var/lib/bulwark-verifier
VSOCK=/run/bulwark-verifier/verifier.sock
VLOG=/var/log/bulwark-verifier.log
mkdir -p -m 0700 "$VSTATE"
# The verifier's identity on this daemon holds attestation rights only.
"$BIN" role list -o json | grep -q '"Name": "attestor"' || {
	"$BIN" role create attestor >/dev/null
	"$BIN" role add attestor Attestation.Read >/dev/null
	"$BIN" role add attestor Attestation.Config >/dev/null
}
"$BIN" user list -o json | grep -q '"name": "verifier"' || {
	"$BIN" user create verifier >/dev/null
	"$BIN" perm grant --user verifier --role attestor --path /attestation >/dev/null
}
(umask 077 && "$BIN" token create verifier --ttl 720h --description "demo verifier" >"$VSTATE/daemon.token")
if ! "$BIN" verifier --verifier-socket "$VSOCK" host list >/dev/null 2>&1; then
	setsid "$BIN" verifier serve --state "$VSTATE" --verifier-socket "$VSOCK" >>"$VLOG" 2>&1 </dev/null &
	for _ in $(seq 1 100); do "$BIN" verifier --verifier-socket "$VSOCK" host list >/dev/null 2>&1 && break; sleep 0.1; done
fi
# Golden values: this host's PCR 11 (trust on first use, fine for a demo
# on a fresh machine), the image registry, and the demo's boot files.
"$BIN" attest golden --version "$(date +%s)" --boot "demo=$IMG/vmlinuz,$IMG/initrd.img" >"$VSTATE/policy.json"
"$BIN" verifier --verifier-socket "$VSOCK" policy set "$VSTATE/policy.json"
"$BIN" verifier --verifier-socket "$VSOCK" host add demo-host --url "unix:$BULWARK_SOCKET" \
	--token-file "$VSTATE/daemon.token" --replace-keys >/dev/null
echo "--- verifier poll demo-host: the host's measured launch, each VM's boot artefacts and running kernel, one report"
"$BIN" verifier --verifier-socket "$VSOCK" poll demo-host || true
echo "--- what the daemon holds (it refuses VM starts while the verdict is untrusted), and its runtime code checks"
"$BIN" attest status | cut -c1-160 || true
echo "--- host protections (bulwark host check)"
"$BIN" host check || true

echo "   ($STEP_NAME: $(since "$STEP_T0") s)"
echo "== demo took $(since "$DEMO_T0") s"

cat <<TXT

Bulwark is running.
  export BULWARK_SOCKET=$BULWARK_SOCKET
  $BIN vm list                 # VMs, state, accelerator
  $BIN vm show demo-web        # definition, pid, uid it runs as, why KVM/TCG
  $BIN vm log demo-web         # serial console log (the guest checks its firewall every 10 s)
  $BIN sg show db; $BIN port list; $BIN fw log; $BIN fw hits
  $BIN sg rule remove db postgres   # watch demo-web's check flip to blocked
  $BIN vm pause|resume|stop|start demo-web
  $BIN audit list; $BIN audit verify; $BIN perm list; $BIN role list
  $BIN console demo-web        # the serial console (Ctrl-] detaches); one user at a time, recorded
  $BIN console recordings; $BIN console sessions demo-web; $BIN console policy demo-web --help
  $BIN vmi ps|pids|modules|syscalls|idt|check demo-web; $BIN events   # introspection (scans every 30 s)
  $BIN vmi hooks|bpf demo-web; $BIN monitor response show; $BIN monitor quarantine   # introspection round two (docs/introspection.md)
  $BIN ips status; $BIN ips alerts; $BIN ips rules list --hits; $BIN mirror list   # IPS and mirroring (docs/ips.md)
  $BIN host check              # which host protections are on; docs/jail.md explains each VMM's jail
  $BIN pool list; $BIN pool show demo; $BIN vm set demo-web --cpu-limit 250m   # resource pools (docs/pools.md)
  $BIN attest status|quote|log|pcrs; $BIN verifier --verifier-socket $VSOCK status   # attestation (docs/attestation.md)
  $BIN image list; $BIN image show debian-12; $BIN image verify debian-12   # images: digests, provenance (docs/images.md)
  $BIN console demo-deb        # the Debian VM's login prompt (root is locked: add a key or password through user data)
  Web console: https://$LISTEN/ui/  user "operator", password in $STATE/demo-operator-password
               (certificate from Bulwark's CA: $STATE/tls/ca.crt)
  BULWARK_TOKEN=$AUDITOR_TOKEN $BIN vm list     # the demo auditor's token (24 h, read-only)
  curl --unix-socket $BULWARK_SOCKET http://bulwark/api/v1/vms
  curl --unix-socket $BULWARK_SOCKET http://bulwark/metrics
Daemon log: $LOG. Stop the daemon with: pkill -TERM -f 'bulwark serve' (VMs keep running and are re-attached on the next start).
TXT
