package itest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	uplink, ns := extHost(t, "10.30.0.254/24")
	// The external host listens; the VM keeps one TCP connection open to it.
	recv := filepath.Join(h.dir, "ext-received")
	out, err := os.Create(recv)
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command("ip", "netns", "exec", ns, "busybox", "nc", "-l", "-p", "7000")
	srv.Stdout = out
	// busybox nc closes the connection when its stdin ends: keep it open.
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.Stdin = stdinR
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait(); out.Close(); stdinW.Close(); stdinR.Close() })
	ticks := func() int {
		b, _ := os.ReadFile(recv)
		return lastTickIn(string(b))
	}

	h.mustCLI(nil, "network", "create", "wan", "--subnet", "10.30.0.0/24", "--uplink", "interface:"+uplink)
	h.netVM("edge", "network=wan,ip=10.30.0.5", probe("ext", "ping -c 1 -W 1 10.30.0.254")+
		"sleep 2; (while :; do (i=0; while :; do i=$((i+1)); echo \"tick $i\"; sleep 1; done) | nc 10.30.0.254 7000; echo nc-exit; sleep 1; done) &\n")
	h.mustCLI(nil, "vm", "start", "edge")
	h.expectProbe("edge", "ext", "ok")
	h.waitFor("ticks over TCP to the external host", 60*time.Second, func() bool { return ticks() >= 2 })

	h.kill()
	h.startDaemon()
	before := strings.Count(h.consoleLog("edge"), "probe ext ok")
	h.waitFor("probes succeeding after the restart", 60*time.Second, func() bool {
		return strings.Count(h.consoleLog("edge"), "probe ext ok") >= before+3 && h.lastProbe("edge", "ext") == "ok"
	})
	// The TCP connection opened before the restart carries data again: the
	// new daemon picks it up mid-stream (egress is allowed).
	at := ticks()
	h.waitFor("the pre-restart TCP connection to carry data again", 60*time.Second, func() bool { return ticks() >= at+3 })
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

func lastTickIn(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		var k int
		if _, err := fmt.Sscanf(strings.TrimSpace(l), "tick %d", &k); err == nil && k > n {
			n = k
		}
	}
	return n
}
