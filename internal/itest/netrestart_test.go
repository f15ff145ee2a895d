package itest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// extHost makes a network namespace behind a veth pair and returns the
// host-side interface name (the uplink) and the namespace.
func extHost(t *testing.T, addr string) (string, string) {
	t.Helper()
	ns := fmt.Sprintf("bwr%d", os.Getpid()%100000)
	hostIf, nsIf := ns+"a", ns+"b"
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", hostIf).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	sh(t, "ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	sh(t, "ip", "link", "set", nsIf, "netns", ns)
	sh(t, "ip", "link", "set", hostIf, "up")
	sh(t, "ip", "-n", ns, "addr", "add", addr, "dev", nsIf)
	sh(t, "ip", "-n", ns, "link", "set", nsIf, "up")
	return hostIf, ns
}

// TestSwitchSurvivesRestart: after kill -9 of the daemon, the next daemon
// re-creates the running VM's switch port and traffic flows again.
func TestSwitchSurvivesRestart(t *testing.T) {
	h := newHost(t)
	uplink, _ := extHost(t, "10.30.0.254/24")
	h.mustCLI(nil, "network", "create", "wan", "--subnet", "10.30.0.0/24", "--uplink", "interface:"+uplink)
	h.netVM("edge", "network=wan,ip=10.30.0.5", probe("ext", "ping -c 1 -W 1 10.30.0.254"))
	h.mustCLI(nil, "vm", "start", "edge")
	h.expectProbe("edge", "ext", "ok")

	h.kill()
	h.startDaemon()
	before := strings.Count(h.consoleLog("edge"), "probe ext ok")
	h.waitFor("probes succeeding after the restart", 60*time.Second, func() bool {
		return strings.Count(h.consoleLog("edge"), "probe ext ok") >= before+3 && h.lastProbe("edge", "ext") == "ok"
	})
	// The policy survived too: the network and its port are back.
	var ports []map[string]any
	h.mustCLI(&ports, "port", "list")
	names := ""
	for _, p := range ports {
		names += fmt.Sprint(p["name"]) + " "
	}
	if !strings.Contains(names, "edge/nic0") || !strings.Contains(names, "uplink/wan") {
		t.Fatalf("ports after restart: %s", names)
	}
}
