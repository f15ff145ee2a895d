// Command pools is the noisy-neighbour experiment of resource pools
// (issue 14), in one run on one private daemon:
//
//  1. the victim alone: one vCPU with a 1000m CPU reservation and normal
//     shares, running a counting loop in the guest;
//  2. beside an unconstrained attacker: two vCPUs spinning, normal shares,
//     no limit, in the root pool;
//  3. beside the same attacker moved, live, into pool "noisy" with a CPU
//     limit (500m by default).
//
// For each phase it reports the victim's throughput (the guest loop's
// iterations per second, from its console) and its host CPU (millicores
// from its cgroup's accounting), both also as ratios to phase 1 and the
// CPU as a share of the reservation, and the attacker's CPU; in phase 3
// the attacker's CPU against the pool's limit. The goal: the
// victim keeps at least 0.9 of its guaranteed share in phase 3, and the
// attacker stays within 5 % of its limit.
//
// Guests run under QEMU (TCG where there is no KVM), where a busy vCPU
// costs about one host core; the defaults suit a 2-core host (the root
// pool then has 1500m after the host's 500m reserve). It needs root (the
// daemon runs each QEMU as its own uid in its own cgroup), QEMU, and
// cgroups with the cpu and cpuacct controllers (v1) or cpu (v2).
//
// It is a benchmark, not a test: it exits non-zero only when something
// broke, never because of a number.
//
//	go run ./bench/pools
//	go run ./bench/pools -phase 20s -warmup 5s -json /tmp/pools.json
//	go run ./bench/pools -phase 2s -warmup 1s     # smoke run (CI)
//
// See docs/benchmarks.md ("Noisy neighbour") for the figures and caveats.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/benchrun"
	"github.com/bulwark-project/bulwark/bench/internal/host"
)

type config struct {
	phase, warmup  time.Duration
	reservation    int64 // victim's CPU reservation, millicores
	attackerVCPUs  int
	limit          int64 // pool noisy's CPU limit, millicores
	chunk          int   // iterations between two reports of the victim's loop
	memMiB         int
	bin, img       string
	qemuBin        string
	jsonOut        string
	keep           bool
	baseShares     int64 // cpu.shares of the daemon's base group; 0: the kernel's default
	bootTimeout    time.Duration
	sampleInterval time.Duration
}

func main() {
	os.Exit(run())
}

func run() int {
	var cfg config
	flag.DurationVar(&cfg.phase, "phase", 20*time.Second, "measured time of each phase")
	flag.DurationVar(&cfg.warmup, "warmup", 5*time.Second, "unmeasured time at the start of each phase (boot settled, caps applied)")
	flag.Int64Var(&cfg.reservation, "reservation", 1000, "the victim's CPU reservation, millicores")
	flag.IntVar(&cfg.attackerVCPUs, "attacker-vcpus", 2, "the attacker's vCPUs, each spinning")
	flag.Int64Var(&cfg.limit, "limit", 500, "CPU limit of pool noisy in phase 3, millicores")
	flag.IntVar(&cfg.chunk, "chunk", 2000, "iterations of the victim's loop between two console reports")
	flag.IntVar(&cfg.memMiB, "memory", 128, "guest memory in MiB (both VMs)")
	flag.StringVar(&cfg.bin, "bin", "", "use this bulwark binary instead of building ./cmd/bulwark")
	flag.StringVar(&cfg.img, "img", "", "use this directory's vmlinuz and initrd.img instead of running `bulwark image build`")
	flag.StringVar(&cfg.qemuBin, "qemu", "qemu-system-x86_64", "QEMU binary")
	flag.StringVar(&cfg.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (binary, image, daemon state and logs)")
	flag.DurationVar(&cfg.bootTimeout, "boot-timeout", 90*time.Second, "give up on a guest that has not started its loop after this long")
	flag.DurationVar(&cfg.sampleInterval, "sample", time.Second, "interval of the per-second CPU samples within a phase")
	flag.Int64Var(&cfg.baseShares, "base-shares", 0, "set the cpu.shares (v1; v2: cpu.weight = shares×100/1024) of the daemon's cgroup base, "+
		"the VMs' weight against the rest of the host at the top level (0: leave the kernel's default, 1024 or 100)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "pools: unexpected arguments %q\n", flag.Args())
		return 2
	}
	if cfg.phase < 500*time.Millisecond || cfg.warmup < 0 || cfg.sampleInterval <= 0 || cfg.sampleInterval > cfg.phase {
		fmt.Fprintln(os.Stderr, "pools: -phase must be ≥ 500ms, -warmup ≥ 0, 0 < -sample ≤ -phase")
		return 2
	}
	if cfg.reservation < 1 || cfg.reservation > 1000 || cfg.limit < 1 || cfg.attackerVCPUs < 1 || cfg.attackerVCPUs > 16 ||
		cfg.chunk < 1 || cfg.chunk > 10_000_000 || cfg.memMiB < 64 || (cfg.baseShares != 0 && (cfg.baseShares < 2 || cfg.baseShares > 262144)) {
		fmt.Fprintln(os.Stderr, "pools: want 1 ≤ -reservation ≤ 1000 (the victim has one vCPU), -limit ≥ 1, 1 ≤ -attacker-vcpus ≤ 16, 1 ≤ -chunk ≤ 10000000, -memory ≥ 64, -base-shares 0 or 2..262144")
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "pools: must run as root (the daemon runs each QEMU as its own uid in its own cgroup)")
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench(ctx, cfg)
	if res != nil {
		res.summarize()
		fmt.Print(markdown(res))
		if cfg.jsonOut != "" {
			if werr := writeJSON(cfg.jsonOut, res); werr != nil {
				err = errors.Join(err, werr)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pools:", err)
		return 1
	}
	return 0
}

// bench prepares the binary, the image and the daemon, runs the three
// phases and tears everything down.
func bench(ctx context.Context, cfg config) (res *result, err error) {
	qemuPath, err := exec.LookPath(cfg.qemuBin)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	root, err := os.MkdirTemp("", "bulwark-bench-pools-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if cfg.keep {
			fmt.Fprintf(os.Stderr, "pools: kept %s\n", root)
			return
		}
		os.RemoveAll(root)
	}()
	// VM uids must be able to traverse to the user-data disks below.
	if err := os.Chmod(root, 0o711); err != nil {
		return nil, err
	}
	bin, source := cfg.bin, "prebuilt "+cfg.bin
	if bin == "" {
		bin = filepath.Join(root, "bulwark")
		if err := step("build bulwark", func() (err error) {
			source, err = benchrun.BuildBulwark(ctx, bin)
			return err
		}); err != nil {
			return nil, err
		}
	}
	img := cfg.img
	if img == "" {
		img = filepath.Join(root, "img")
		if err := step("build guest image", func() error {
			return benchrun.RunQuiet(ctx, bin, "image", "build", "--out", img)
		}); err != nil {
			return nil, err
		}
	}

	res = &result{
		Date:   time.Now().UTC().Format(time.RFC3339),
		Source: source,
		Machine: machine{NProc: runtime.NumCPU(), CPUModel: host.CPUModel(), Kernel: host.Kernel(),
			QEMU: host.QEMU(qemuPath), Go: runtime.Version(), LoadavgBefore: host.Loadavg()},
		Config: resultConfig{PhaseS: cfg.phase.Seconds(), WarmupS: cfg.warmup.Seconds(), ReservationMilli: cfg.reservation,
			AttackerVCPUs: cfg.attackerVCPUs, LimitMilli: cfg.limit, Chunk: cfg.chunk, MemoryMiB: cfg.memMiB,
			BaseShares: cfg.baseShares},
	}
	var d *daemon
	if err := step("start the daemon", func() (err error) {
		d, err = startDaemon(ctx, bin, qemuPath, filepath.Join(root, "daemon"))
		return err
	}); err != nil {
		return res, err
	}
	defer func() {
		if cerr := d.shutdown(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "pools: daemon log tail:\n%s\n", benchrun.Tail(d.logPath, 4096))
		}
		res.Machine.LoadavgAfter = host.Loadavg()
	}()
	return res, runPhases(ctx, cfg, d, img, res)
}

// step runs f with a progress line on stderr.
func step(what string, f func() error) error {
	fmt.Fprintf(os.Stderr, "pools: %s ...\n", what)
	t := time.Now()
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Fprintf(os.Stderr, "pools: %s done (%.1fs)\n", what, time.Since(t).Seconds())
	return nil
}
