//go:build linux

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// bulwarkLeg measures an in-process switch: two VM ports in group "web" on
// one network, a sender helper writing to port 1's socket as QEMU would, and
// a receiver helper bound to port 2's peer socket. It runs in the caller's
// network namespace (which decides net.unix.max_dgram_qlen).
func bulwarkLeg(ctx context.Context, dur time.Duration, rules int) (legResult, error) {
	res := legResult{Path: "Bulwark netsw"}
	dir, err := os.MkdirTemp("", "bwbench-sw-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	sock1, peer1 := filepath.Join(dir, "port1.sock"), filepath.Join(dir, "vm1.sock")
	sock2, peer2 := filepath.Join(dir, "port2.sock"), filepath.Join(dir, "vm2.sock")

	sw := netsw.New(slog.New(slog.DiscardHandler), nil)
	defer sw.Close()
	nw := netsw.Network{Name: "bench", Subnet: "10.0.0.0/24"}
	nw.Normalize()
	if err := nw.Validate(); err != nil {
		return res, err
	}
	if err := sw.AddNetwork(nw); err != nil {
		return res, err
	}
	if err := sw.SetFirewall(bulwarkGroups(rules), nil); err != nil {
		return res, err
	}
	rcv, err := startReceiver(ctx, "", "-unix-bind", peer2)
	if err != nil {
		return res, err
	}
	defer rcv.kill()
	for i, p := range []struct {
		mac        packet.MAC
		ip         netip.Addr
		sock, peer string
	}{{packet.MAC(mac1), ip1, sock1, peer1}, {packet.MAC(mac2), ip2, sock2, peer2}} {
		if _, err := sw.AttachVMPort(netsw.VMPortSpec{VM: fmt.Sprintf("vm%d", i+1), Network: "bench", MAC: p.mac,
			IPs: []netip.Addr{p.ip}, Groups: []string{"web"}, Socket: p.sock, Peer: p.peer, UID: -1}); err != nil {
			return res, err
		}
	}
	leg, _, err := measure(ctx, rcv, "", []string{"-unix-bind", peer1, "-unix-connect", sock1}, dur)
	if err != nil {
		return res, err
	}
	leg.Path = res.Path
	for _, st := range sw.Ports() {
		n := fmt.Sprintf("%s: rx %d, tx %d, tx dropped (receiver queue full) %d", st.Name, st.RxFrames, st.TxFrames, st.TxFull)
		if len(st.Drops) > 0 {
			var ds []string
			for k, v := range st.Drops {
				ds = append(ds, fmt.Sprintf("%s %d", k, v))
			}
			sort.Strings(ds)
			n += ", pipeline drops: " + strings.Join(ds, ", ")
		}
		leg.Notes = append(leg.Notes, n)
	}
	if b, err := os.ReadFile("/proc/sys/net/unix/max_dgram_qlen"); err == nil {
		q := strings.TrimSpace(string(b))
		leg.Path = fmt.Sprintf("Bulwark netsw (max_dgram_qlen %s)", q)
		leg.Notes = append(leg.Notes, "net.unix.max_dgram_qlen = "+q)
	}
	return leg, nil
}

// helperBulwark runs bulwarkLeg (used to run it inside a namespace with its
// own net.unix.max_dgram_qlen) and prints its result.
func helperBulwark(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("_bulwark", flag.ExitOnError)
	dur := fs.Duration("duration", 5*time.Second, "")
	rules := fs.Int("rules", 1000, "")
	fs.Parse(args)
	leg, err := bulwarkLeg(ctx, *dur, *rules)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bulwark leg:", err)
		return 1
	}
	b, _ := json.Marshal(leg)
	fmt.Printf("result %s\n", b)
	return 0
}
