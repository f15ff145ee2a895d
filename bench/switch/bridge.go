//go:build linux

package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// Namespaces of the bridge path. Their names are fixed so that a run killed
// hard (SIGKILL) is cleaned up by the next one.
const (
	nsBridge = "bwbench-br" // brbench and the host ends of the veths
	nsVM1    = "bwbench-n1" // v1, the sender's "VM"
	nsVM2    = "bwbench-n2" // v2, the receiver's "VM"
	nsSwitch = "bwbench-sw" // Bulwark legs with their own max_dgram_qlen
)

var ourNamespaces = []string{nsBridge, nsVM1, nsVM2, nsSwitch}

func sh(ctx context.Context, stdin string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func nsExec(ctx context.Context, ns string, args ...string) error {
	return sh(ctx, "", "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// cleanupNamespaces deletes our namespaces; deleting a namespace deletes
// its veths, its bridge and its nftables tables with it.
func cleanupNamespaces() {
	for _, ns := range ourNamespaces {
		exec.Command("ip", "netns", "del", ns).Run() // fails harmlessly when absent
	}
}

// setupBridge builds ns1 --veth-- [brbench in nsBridge] --veth-- ns2, with
// the endpoints' MACs on the veths, static FDB entries (Bulwark's ports have
// static MACs too), no IP addresses (the receiving stack drops the frames
// early) and IPv6 off everywhere (no stray traffic).
func setupBridge(ctx context.Context) error {
	for _, ns := range []string{nsBridge, nsVM1, nsVM2} {
		if err := sh(ctx, "", "ip", "netns", "add", ns); err != nil {
			return err
		}
		for _, k := range []string{"all", "default"} {
			if err := nsExec(ctx, ns, "sysctl", "-qw", "net.ipv6.conf."+k+".disable_ipv6=1"); err != nil {
				return err
			}
		}
	}
	steps := [][]string{
		{"-n", nsBridge, "link", "add", "brbench", "type", "bridge", "stp_state", "0"},
		{"-n", nsBridge, "link", "add", "v1b", "type", "veth", "peer", "name", "v1", "netns", nsVM1},
		{"-n", nsBridge, "link", "add", "v2b", "type", "veth", "peer", "name", "v2", "netns", nsVM2},
		{"-n", nsBridge, "link", "set", "v1b", "master", "brbench", "up"},
		{"-n", nsBridge, "link", "set", "v2b", "master", "brbench", "up"},
		{"-n", nsBridge, "link", "set", "brbench", "up"},
		{"-n", nsVM1, "link", "set", "v1", "address", macString(mac1), "up"},
		{"-n", nsVM2, "link", "set", "v2", "address", macString(mac2), "up"},
	}
	for _, s := range steps {
		if err := sh(ctx, "", "ip", s...); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		mac [6]byte
		dev string
	}{{mac1, "v1b"}, {mac2, "v2b"}} {
		if err := sh(ctx, "", "bridge", "-n", nsBridge, "fdb", "replace", macString(f.mac), "dev", f.dev, "master", "static"); err != nil {
			return err
		}
	}
	// Wait for both bridge ports to forward.
	for range 50 {
		out, _ := exec.CommandContext(ctx, "bridge", "-n", nsBridge, "link", "show").Output()
		if strings.Count(string(out), "state forwarding") == 2 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("bridge ports did not reach the forwarding state")
}

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// bridgeLeg measures the bridge path with the stateful (br_netfilter + ip
// family, conntrack) or stateless (bridge family) nftables rule set.
func bridgeLeg(ctx context.Context, dur time.Duration, rules int, stateful bool) (legResult, error) {
	res := legResult{Path: "Linux bridge + nftables, stateless (bridge family, allow rule first)"}
	call := "0"
	if stateful {
		res.Path = "Linux bridge + nftables, stateful (br_netfilter + ip family, ct)"
		call = "1"
	}
	if err := nsExec(ctx, nsBridge, "nft", "flush", "ruleset"); err != nil {
		return res, err
	}
	if err := nsExec(ctx, nsBridge, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables="+call); err != nil {
		return res, err
	}
	if err := sh(ctx, nftRuleset(rules, stateful), "ip", "netns", "exec", nsBridge, "nft", "-f", "-"); err != nil {
		return res, err
	}
	recvArgs := []string{"-if", "v2"}
	if stateful {
		recvArgs = append(recvArgs, "-reply")
	}
	rcv, err := startReceiver(ctx, nsVM2, recvArgs...)
	if err != nil {
		return res, err
	}
	defer rcv.kill()
	leg, rr, err := measure(ctx, rcv, nsVM1, []string{"-if", "v1"}, dur)
	if err != nil {
		return res, err
	}
	leg.Path = res.Path
	leg.Notes = append(leg.Notes, fmt.Sprintf("receiver socket drops (PACKET_STATISTICS) %d", rr.KernelDrops))
	family := "bridge"
	if stateful {
		family = "ip"
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", nsBridge, "nft", "list", "chain", family, "bwbench", "forward_filter").Output()
	if err == nil {
		re := regexp.MustCompile(`^\s*(.*?)\s*counter packets (\d+)`)
		for _, l := range strings.Split(string(out), "\n") {
			if m := re.FindStringSubmatch(l); m != nil {
				leg.Notes = append(leg.Notes, fmt.Sprintf("nft %q: %s packets", m[1], m[2]))
			}
		}
	}
	return leg, nil
}
