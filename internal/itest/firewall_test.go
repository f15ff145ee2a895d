package itest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw"
)

// userdata writes a script disk the guest image runs after boot.
func (h *host) userdata(name, script string) string {
	h.t.Helper()
	p := filepath.Join(h.dir, name+".userdata")
	body := "#!bulwark-userdata\n" + script + "\n"
	if len(body) > 65536 {
		h.t.Fatal("user data too long")
	}
	b := make([]byte, (len(body)+4095)/4096*4096)
	copy(b, body)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// netVM creates a VM on a switch network with a user-data script.
func (h *host) netVM(name, nic, script string) {
	h.t.Helper()
	h.mustCLI(nil, "vm", "create", name, "--kernel", filepath.Join(imgDir, "vmlinuz"),
		"--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", "192",
		"--cmdline", "bulwark.hostname="+name+" bulwark.ip="+ipOf(nic)+"/24",
		"--nic", nic, "--disk", h.userdata(name, script)+":ro")
}

func ipOf(nic string) string {
	for _, kv := range strings.Split(nic, ",") {
		if v, ok := strings.CutPrefix(kv, "ip="); ok {
			return v
		}
	}
	return ""
}

// probe is a guest loop printing "probe NAME ok|fail" every ~2 s. Each
// try is bounded by timeout(1): busybox nc's -w bounds only the connect, so
// a probe connection whose close was cut by a rule change (its FIN dropped
// as revoked) would otherwise hang the loop, and the last result printed
// would stand for ever (a CI run saw "ok" for two minutes after a rule
// removal that way).
func probe(name, cmd string) string {
	if !strings.HasPrefix(cmd, "timeout ") {
		cmd = "timeout 8 " + cmd
	}
	return fmt.Sprintf("(while :; do if %s >/dev/null 2>&1; then echo \"probe %s ok\"; else echo \"probe %s fail\"; fi; sleep 1; done) &\n", cmd, name, name)
}

var probeRE = regexp.MustCompile(`probe (\S+) (ok|fail)`)

// lastProbe returns the latest result of a probe on a VM's console.
func (h *host) lastProbe(vmName, probeName string) string {
	res := ""
	for _, m := range probeRE.FindAllStringSubmatch(h.consoleLog(vmName), -1) {
		if m[1] == probeName {
			res = m[2]
		}
	}
	return res
}

// expectProbe waits until a probe's latest result is want, then requires it
// to stay so for a few more results (no flapping).
func (h *host) expectProbe(vmName, probeName, want string) {
	h.t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for h.lastProbe(vmName, probeName) != want {
		if time.Now().After(deadline) {
			// The probe's own recent results first: the whole-console dump
			// below may be cut by a CI log's size limit.
			var recent []string
			for _, m := range probeRE.FindAllStringSubmatch(h.consoleLog(vmName), -1) {
				if m[1] == probeName {
					recent = append(recent, m[2])
				}
			}
			if len(recent) > 10 {
				recent = recent[len(recent)-10:]
			}
			h.t.Fatalf("timed out after 2m waiting for probe %s on %s to be %s; its last results: %v\ndaemon log:\n%s\nconsole logs:\n%s",
				probeName, vmName, want, recent, h.logBuf, h.allConsoles())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *host) ports() []netsw.PortStatus {
	h.t.Helper()
	var ps []netsw.PortStatus
	if err := h.c.Do(context.Background(), "GET", "/api/v1/ports", nil, &ps); err != nil {
		h.t.Fatal(err)
	}
	return ps
}

func (h *host) portDrops(name string) map[string]uint64 {
	for _, p := range h.ports() {
		if p.Name == name {
			return p.Drops
		}
	}
	h.t.Fatalf("no port %s", name)
	return nil
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestFirewall: three VMs in groups web and db on one network (plus an
// attacker and an external host behind an uplink), real guests, real
// traffic through the switch.
func TestFirewall(t *testing.T) {
	h := newHost(t)
	// External host: a network namespace behind a veth pair whose host end
	// is the network's uplink.
	hostIf, ns := extHost(t, "10.20.0.254/24")

	h.mustCLI(nil, "network", "create", "lab", "--subnet", "10.20.0.0/24", "--uplink", "interface:"+hostIf)
	h.mustCLI(nil, "sg", "create", "web")
	h.mustCLI(nil, "sg", "create", "db")
	h.mustCLI(nil, "sg", "rule", "add", "db", "--id", "pg", "--direction", "ingress", "--action", "allow",
		"--protocol", "tcp", "--port", "5432", "--remote-group", "web")
	// Bad rules are refused with a message.
	for _, bad := range [][]string{
		{"--protocol", "tcp", "--port", "70000"},
		{"--remote-cidr", "10.0.0/8"},
		{"--remote-group", "nosuch"},
	} {
		if _, stderr, err := h.cli(append([]string{"sg", "rule", "add", "web"}, bad...)...); err == nil || stderr == "" {
			t.Errorf("rule %v accepted (%q)", bad, stderr)
		}
	}

	h.netVM("db1", "network=lab,ip=10.20.0.21,group=db,mac=52:54:00:20:00:21",
		"echo 'while read l; do echo \"db-got $l\" >/dev/console; done' >/run/srv.sh\n"+
			"nc -ll -p 5432 -e /bin/sh /run/srv.sh &\n"+
			probe("db-web", "nc -w 2 10.20.0.11 80 </dev/null"))
	h.netVM("web1", "network=lab,ip=10.20.0.11,group=web,mac=52:54:00:20:00:11",
		"nc -ll -p 80 -e /bin/echo hi &\n"+
			"sleep 3\n"+
			"(while :; do (i=0; while :; do i=$((i+1)); echo \"tick $i\"; sleep 1; done) | nc 10.20.0.21 5432; sleep 1; done) &\n"+
			probe("web-db-tcp", "nc -w 2 10.20.0.21 5432 </dev/null")+
			probe("web-db-icmp", "ping -c 1 -W 2 10.20.0.21")+
			probe("web-web-icmp", "ping -c 1 -W 2 10.20.0.12")+
			probe("web-ext-icmp", "ping -c 1 -W 2 10.20.0.254")+
			"(while :; do echo \"neigh $(ip neigh show 10.20.0.12)\"; sleep 2; done) &\n")
	h.netVM("web2", "network=lab,ip=10.20.0.12,group=web,mac=52:54:00:20:00:12", "")
	// The attacker: same group as web, tries ARP poisoning, IP and MAC spoofing.
	h.netVM("evil", "network=lab,ip=10.20.0.31,group=web,mac=52:54:00:20:00:31",
		"sleep 8\n"+
			"ip addr add 10.20.0.12/32 dev eth0\n"+ // claim web2's address
			"arping -U -c 5 -s 10.20.0.12 -I eth0 10.20.0.12\n"+
			"arping -A -c 5 -s 10.20.0.12 -I eth0 10.20.0.11\n"+
			"ip addr del 10.20.0.12/32 dev eth0\n"+
			"echo evil-arp-done\n"+
			"ping -c 1 -W 2 10.20.0.11\n"+ // learn web1's MAC honestly first
			"ip addr add 10.20.0.99/24 dev eth0\n"+
			"ping -c 3 -W 1 -I 10.20.0.99 10.20.0.11\n"+
			"echo evil-ip-done\n"+
			"ip link set eth0 down; ip link set eth0 address 52:54:00:66:66:66; ip link set eth0 up\n"+
			"ping -c 3 -W 1 10.20.0.11\n"+
			"echo evil-mac-done\n")
	for _, name := range []string{"db1", "web1", "web2", "evil"} {
		h.mustCLI(nil, "vm", "start", name)
	}

	// web → db tcp/5432 allowed, replies pass; ping across groups denied;
	// ping within a group allowed; db → web denied; VM → external allowed.
	h.expectProbe("web1", "web-db-tcp", "ok")
	h.expectProbe("web1", "web-web-icmp", "ok")
	h.expectProbe("web1", "web-ext-icmp", "ok")
	h.expectProbe("web1", "web-db-icmp", "fail")
	h.expectProbe("db1", "db-web", "fail")
	h.waitFor("the long-lived web→db connection to carry data", 60*time.Second, func() bool {
		return lastTick(h.consoleLog("db1")) > 2
	})

	// Anti-spoofing.
	h.waitConsole("evil", "evil-mac-done", 1)
	drops := h.portDrops("evil/nic0")
	for _, r := range []string{"spoofed_arp", "spoofed_ip", "spoofed_mac"} {
		if drops[r] == 0 {
			t.Errorf("evil's port dropped no %s frames: %v", r, drops)
		}
	}
	if strings.Contains(h.consoleLog("web1"), "52:54:00:20:00:31") {
		t.Errorf("web1's ARP table was poisoned with evil's MAC:\n%s", grepLines(h.consoleLog("web1"), "neigh"))
	}

	// Reverse direction through the uplink is blocked by web's ingress default,
	// opened by a rule, and blocked again when the rule goes.
	extPing := func() bool {
		return exec.Command("ip", "netns", "exec", ns, "busybox", "ping", "-c", "1", "-W", "2", "10.20.0.11").Run() == nil
	}
	if extPing() {
		t.Error("external host reached web1 without a rule")
	}
	h.mustCLI(nil, "sg", "rule", "add", "web", "--id", "ext", "--direction", "ingress", "--protocol", "icmp", "--remote-cidr", "10.20.0.254/32")
	h.waitFor("external ping allowed by rule", 30*time.Second, extPing)
	h.mustCLI(nil, "sg", "rule", "add", "web", "--id", "block", "--position", "0", "--direction", "ingress",
		"--action", "drop", "--remote-cidr", "10.20.0.254/32")
	if extPing() {
		t.Error("drop rule ahead of the allow did not block the external host")
	}

	// Changing a rule live cuts the established flow it no longer allows.
	before := lastTick(h.consoleLog("db1"))
	h.mustCLI(nil, "sg", "rule", "remove", "db", "pg")
	h.expectProbe("web1", "web-db-tcp", "fail")
	cut := lastTick(h.consoleLog("db1"))
	time.Sleep(4 * time.Second)
	if after := lastTick(h.consoleLog("db1")); after != cut {
		t.Errorf("established connection still carries data after its rule was removed: tick %d -> %d (before %d)", cut, after, before)
	}
	if d := h.portDrops("web1/nic0"); d["fw_revoked"] == 0 {
		t.Errorf("no revoked-flow drops counted on web1: %v", d)
	}
	h.mustCLI(nil, "sg", "rule", "add", "db", "--id", "pg", "--direction", "ingress", "--protocol", "tcp", "--port", "5432", "--remote-group", "web")
	h.expectProbe("web1", "web-db-tcp", "ok")

	// Visibility: rule hits and firewall log lines with the rule id.
	var hits []map[string]any
	h.mustCLI(&hits, "fw", "hits")
	found := false
	for _, x := range hits {
		if x["group"] == "db" && x["rule_id"] == "pg" {
			if n, _ := x["hits"].(float64); n > 0 {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("rule db/pg has no hits: %v", hits)
	}
	logOut, _, err := h.cli("fw", "log")
	if err != nil || !strings.Contains(logOut, `"rule":"pg"`) {
		t.Errorf("firewall log lacks rule pg: %v\n%s", err, logOut)
	}
	for _, line := range strings.Split(strings.TrimSpace(logOut), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) != nil {
			t.Fatalf("firewall log line is not JSON: %q", line)
		}
	}
}

var tickRE = regexp.MustCompile(`db-got tick (\d+)`)

func lastTick(log string) int {
	n := 0
	for _, m := range tickRE.FindAllStringSubmatch(log, -1) {
		var k int
		fmt.Sscan(m[1], &k)
		if k > n {
			n = k
		}
	}
	return n
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
