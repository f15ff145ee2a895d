//go:build linux

// Command switch is Bulwark's end-to-end switching benchmark. In one run it
// moves the same 64-byte UDP frames (Ethernet + IPv4 + UDP, 22 bytes of
// payload) from one "VM" to another through
//
//   - Bulwark: an in-process netsw.Switch with two VM ports (Unix datagram
//     sockets, one frame per datagram, as QEMU uses them), both in security
//     group "web" whose ingress rules are -rules non-matching rules and then
//     "allow UDP from 10.0.0.1"; and
//   - the in-kernel peer: a Linux bridge (brbench) between two network
//     namespaces over veth pairs, filtered by nftables with the same rules
//     (stateful: br_netfilter + conntrack, established/related first), and,
//     unless -stateless=false, a stateless bridge-family variant.
//
// The sender and receiver are this binary re-executed as helpers (inside
// "ip netns exec" for the bridge) that write and read raw frames: on the
// port's Unix socket for Bulwark, on an AF_PACKET socket on the veth for the
// bridge. It reports frames/s delivered, loss and the ratio as Markdown.
//
// It is a benchmark, not a test: it reports numbers and never fails on them.
// It needs root, ip(8), bridge(8) and nft(8). Namespaces bwbench-* are
// created and deleted (also on error or SIGINT/SIGTERM).
//
//	go run ./bench/switch
//	go run ./bench/switch -duration 3s -unix-qlen 128,512 -json /tmp/sw.json
//
// See bench/switch/RESULTS.md for results and caveats.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/host"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "_send":
			os.Exit(helperSend(os.Args[2:]))
		case "_recv":
			os.Exit(helperRecv(os.Args[2:]))
		case "_bulwark":
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			os.Exit(helperBulwark(ctx, os.Args[2:]))
		}
	}
	os.Exit(run())
}

func run() int {
	dur := flag.Duration("duration", 5*time.Second, "sending time of each path")
	rules := flag.Int("rules", 1000, "non-matching firewall rules on both paths")
	stateless := flag.Bool("stateless", true, "also measure the bridge with a stateless bridge-family rule set")
	qlens := flag.String("unix-qlen", "512", "comma-separated net.unix.max_dgram_qlen values: also measure Bulwark in a private namespace with each (\"\" for none; 512 is what systemd sets)")
	nrounds := flag.Int("rounds", 1, "measure every path this many times, interleaved, and report the totals")
	jsonOut := flag.String("json", "", "also write the results as JSON to this file")
	flag.Parse()
	if *nrounds < 1 {
		*nrounds = 1
	}

	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "switch benchmark: needs root (network namespaces, nftables)")
		return 2
	}
	for _, tool := range []string{"ip", "bridge", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "switch benchmark: %s not found (apt-get install -y iproute2 nftables)\n", tool)
			return 2
		}
	}
	var extraQlen []int
	for _, f := range strings.Split(*qlens, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "switch benchmark: bad -unix-qlen %q\n", f)
			return 2
		}
		extraQlen = append(extraQlen, n)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cleanupNamespaces() // leftovers of a run that was killed hard
	defer cleanupNamespaces()

	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "switch benchmark: %s: %v\n", what, err)
		return 1
	}
	start := time.Now()
	// Each round measures every path once, so that changing load from
	// elsewhere on the machine falls on all of them more evenly.
	var rounds [][]legResult
	for round := range *nrounds {
		var legs []legResult
		leg, err := bulwarkLeg(ctx, *dur, *rules)
		if err != nil {
			return fail("bulwark", err)
		}
		legs = append(legs, leg)
		for _, q := range extraQlen {
			leg, err := bulwarkInNamespace(ctx, *dur, *rules, q)
			if err != nil {
				return fail("bulwark (private namespace)", err)
			}
			legs = append(legs, leg)
		}
		// A fresh bridge each round: no conntrack entry survives from the last.
		cleanupNamespaces()
		if err := setupBridge(ctx); err != nil {
			return fail("bridge setup", err)
		}
		leg, err = bridgeLeg(ctx, *dur, *rules, true)
		if err != nil {
			return fail("bridge (stateful)", err)
		}
		legs = append(legs, leg)
		if *stateless {
			leg, err := bridgeLeg(ctx, *dur, *rules, false)
			if err != nil {
				return fail("bridge (stateless)", err)
			}
			legs = append(legs, leg)
		}
		rounds = append(rounds, legs)
		fmt.Fprintf(os.Stderr, "round %d/%d done\n", round+1, *nrounds)
	}
	legs := aggregate(rounds)
	report(legs, len(rounds), *dur, *rules, time.Since(start))
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rounds, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fail("json", err)
		}
	}
	return 0
}

// bulwarkInNamespace runs the Bulwark leg in a fresh namespace whose
// net.unix.max_dgram_qlen (the per-socket datagram queue limit) is qlen.
func bulwarkInNamespace(ctx context.Context, dur time.Duration, rules, qlen int) (legResult, error) {
	var res legResult
	if err := sh(ctx, "", "ip", "netns", "add", nsSwitch); err != nil {
		return res, err
	}
	defer exec.Command("ip", "netns", "del", nsSwitch).Run()
	if err := nsExec(ctx, nsSwitch, "sysctl", "-qw", fmt.Sprintf("net.unix.max_dgram_qlen=%d", qlen)); err != nil {
		return res, err
	}
	cmd, err := helperCmd(ctx, nsSwitch, "_bulwark", "-duration", dur.String(), "-rules", strconv.Itoa(rules))
	if err != nil {
		return res, err
	}
	out, err := cmd.Output()
	if err != nil {
		return res, err
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "result ") {
			if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "result ")), &res); err != nil {
				return res, err
			}
			res.Path = fmt.Sprintf("Bulwark netsw (max_dgram_qlen %d)", qlen)
			return res, nil
		}
	}
	return res, fmt.Errorf("no result from the namespaced Bulwark leg")
}

func nproc() string {
	if out, err := exec.Command("nproc").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return strconv.Itoa(runtime.NumCPU())
}

// aggregate sums each path's counts over the rounds; its rate is then the
// mean over the rounds, and rates lists each round's.
func aggregate(rounds [][]legResult) []aggLeg {
	var out []aggLeg
	for i := range rounds[0] {
		a := aggLeg{legResult: legResult{Path: rounds[0][i].Path}}
		for k, legs := range rounds {
			l := legs[i]
			a.Sent += l.Sent
			a.SendErrs += l.SendErrs
			a.Delivered += l.Delivered
			a.Elapsed += l.Elapsed
			a.rates = append(a.rates, l.rate())
			for _, n := range l.Notes {
				if len(rounds) > 1 {
					n = fmt.Sprintf("round %d: %s", k+1, n)
				}
				a.Notes = append(a.Notes, n)
			}
		}
		out = append(out, a)
	}
	return out
}

type aggLeg struct {
	legResult
	rates []float64 // per round
}

func (a aggLeg) spread() string {
	if len(a.rates) < 2 {
		return ""
	}
	lo, hi := slices.Min(a.rates), slices.Max(a.rates)
	return fmt.Sprintf(" (%.0f–%.0f)", lo, hi)
}

func report(legs []aggLeg, rounds int, dur time.Duration, rules int, total time.Duration) {
	fmt.Printf("## Switch benchmark: 64-byte UDP frames, one flow, %v per path, %d round(s), %d non-matching rules\n\n", dur, rounds, rules)
	fmt.Printf("CPU: %s; nproc: %s; kernel: %s; GOMAXPROCS %d; %s; load average at the end: %s\n\n",
		orUnknown(host.CPUModel()), nproc(), orUnknown(host.Kernel()), runtime.GOMAXPROCS(0), runtime.Version(), orUnknown(host.Loadavg()))
	col := "frames/s delivered"
	if rounds > 1 {
		col += " (mean; min–max of rounds)"
	}
	fmt.Printf("| path | sent | delivered | %s | loss %% |\n", col)
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, l := range legs {
		fmt.Printf("| %s | %d | %d | %.0f%s | %.2f |\n", l.Path, l.Sent, l.Delivered, l.rate(), l.spread(), l.lossPct())
	}
	fmt.Println()
	var bw, br []aggLeg
	for _, l := range legs {
		if strings.HasPrefix(l.Path, "Bulwark") {
			bw = append(bw, l)
		} else {
			br = append(br, l)
		}
	}
	fmt.Println("Ratio of delivered frames/s, Bulwark / bridge:")
	fmt.Println()
	fmt.Print("| Bulwark \\ bridge |")
	for _, b := range br {
		fmt.Printf(" %s |", b.Path)
	}
	fmt.Print("\n|---|" + strings.Repeat("---:|", len(br)) + "\n")
	for _, a := range bw {
		fmt.Printf("| %s |", a.Path)
		for _, b := range br {
			if b.rate() > 0 {
				fmt.Printf(" %.2f× |", a.rate()/b.rate())
			} else {
				fmt.Print(" - |")
			}
		}
		fmt.Println()
	}
	fmt.Println()
	fmt.Println("Details:")
	for _, l := range legs {
		fmt.Printf("- %s (sending %.2fs in all, send errors %d)\n", l.Path, l.Elapsed.Seconds(), l.SendErrs)
		for _, n := range l.Notes {
			fmt.Printf("  - %s\n", n)
		}
	}
	fmt.Printf("\nTotal run time %.1fs.\n", total.Seconds())
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
