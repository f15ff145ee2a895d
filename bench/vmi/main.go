// Command vmi is Bulwark's introspection benchmark. In one run it boots one
// guest under QEMU (the project's command line: microvm, guest RAM in a
// shared file, QMP and the serial console on Unix sockets) with a user-data
// script that starts -procs background processes and then runs a CPU-bound
// shell loop that reports its progress on the console, and measures, with
// the monitor's own code (internal/vmi/engine) called in this process:
//
//  1. cold discovery: profile.Derive of the kernel image, and a first
//     Handle("info") on a fresh engine (derive the profile, map the RAM,
//     find and verify VMCOREINFO, attach, hash kernel text and rodata)
//     with an empty profile cache and with a filled one, plus the stages
//     of the attach one by one;
//  2. warm views: Handle("ps") repeated on an attached engine (the
//     monitor's own millis, the wall time of Handle, and the daemon side
//     around it: registers over QMP, opening the RAM and kernel files, JSON
//     of the result), and Handle("check"), the full scan, with the CPU time
//     it costs this process;
//  3. guest slowdown: phases without scanning (A) and with a "check" every
//     -interval (B), A B A B ... A (-rounds pairs and a closing A), each
//     -phase long, with the guest loop's rate measured in each from its
//     console lines; each B is compared with the A phases on both sides,
//     so a drift of the guest's speed cancels; and the CPU time a check
//     costs this process, the steadier number.
//
// It is a benchmark, not a test: it reports numbers and fails only when
// something broke. It needs qemu-system-x86_64 and, unless -img is given,
// read access to the host kernel (/boot/vmlinuz-*, root on Debian) to build
// the guest image.
//
//	go run ./bench/vmi
//	go run ./bench/vmi -procs 500 -phase 20s -json
//	go run ./bench/vmi -procs 500 -modules 45 -churn 30m -timeout 40m
//
// See docs/benchmarks.md for what is measured and the caveats.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type config struct {
	procs       int
	phase       time.Duration
	rounds      int
	interval    time.Duration
	psN         int
	checkN      int
	coldReps    int
	spin        int
	vcpus       int
	memMiB      int
	accel       string
	qemuBin     string
	img         string
	ramDir      string
	jsonOut     bool
	timeout     time.Duration
	bootTimeout time.Duration
	keep        bool
	// modules is how many of extraModules the guest image gets and loads
	// at boot, besides image.DefaultModules.
	modules int
	// churn, when set, replaces the measurements with a churn run of
	// this length: processes, a module and ftrace keep changing in the
	// guest while a check runs every churnInterval (churn.go).
	churn         time.Duration
	churnInterval time.Duration
	cpuProfile    string // CPU profile of the cold-discovery step
}

func main() {
	os.Exit(run())
}

func run() int {
	var cfg config
	flag.IntVar(&cfg.procs, "procs", 500, "background processes (sleep) the guest starts before the measurements")
	flag.DurationVar(&cfg.phase, "phase", 20*time.Second, "length of each slowdown phase")
	flag.IntVar(&cfg.rounds, "rounds", 2, "slowdown rounds, each a phase without scanning (A) then one with (B); a closing A follows the last")
	flag.DurationVar(&cfg.interval, "interval", time.Second, "time between full checks in B phases (the daemon's periodic scanner ticks every second)")
	flag.IntVar(&cfg.psN, "ps", 100, "timed process lists (Handle \"ps\") on the attached engine")
	flag.IntVar(&cfg.checkN, "checks", 20, "timed full checks (Handle \"check\") back to back")
	flag.IntVar(&cfg.coldReps, "cold", 3, "repetitions of each cold-discovery measurement")
	flag.IntVar(&cfg.spin, "spin", 20000, "inner iterations of the guest's CPU-bound loop per console line")
	flag.IntVar(&cfg.vcpus, "vcpus", 1, "guest vCPUs")
	flag.IntVar(&cfg.memMiB, "memory", 512, "guest memory in MiB")
	flag.StringVar(&cfg.accel, "accel", "tcg", "QEMU accelerator: tcg or kvm")
	flag.StringVar(&cfg.qemuBin, "qemu", "qemu-system-x86_64", "QEMU binary")
	flag.StringVar(&cfg.img, "img", "", "use this directory's vmlinuz and initrd.img instead of building the guest image")
	flag.StringVar(&cfg.ramDir, "ram-dir", "/dev/shm", "directory for the guest RAM file (tmpfs, like /run on a typical host; empty: the temporary directory)")
	flag.BoolVar(&cfg.jsonOut, "json", false, "print the results as JSON on stdout instead of the text report")
	flag.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "give up (and clean up) after this long")
	flag.DurationVar(&cfg.bootTimeout, "boot-timeout", 150*time.Second, "give up when the guest has not started its processes after this long")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (image, console and QEMU logs; the RAM file is always removed)")
	flag.IntVar(&cfg.modules, "modules", 0, fmt.Sprintf("extra modules (0-%d) built into the guest image and loaded at boot", len(extraModules)))
	flag.DurationVar(&cfg.churn, "churn", 0, "instead of the measurements, a churn run this long: process creation and exit, a module unloaded and loaded again (with -modules ≥ 1), ftrace on and off via tracefs, a full check every -churn-interval, findings counted by kind")
	flag.DurationVar(&cfg.churnInterval, "churn-interval", 2*time.Second, "time between checks in a churn run")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the cold-discovery step to this file")
	flag.Parse()
	if cfg.procs < 0 || cfg.rounds < 1 || cfg.psN < 1 || cfg.checkN < 1 || cfg.coldReps < 1 || cfg.spin < 1 ||
		cfg.vcpus < 1 || cfg.memMiB < 128 || cfg.phase < 2*time.Second || cfg.interval <= 0 ||
		cfg.modules < 0 || cfg.modules > len(extraModules) || cfg.churn < 0 || cfg.churnInterval <= 0 {
		fmt.Fprintf(os.Stderr, "vmi: bad flags: -procs ≥ 0; -rounds, -ps, -checks, -cold, -spin, -vcpus ≥ 1; -memory ≥ 128; -phase ≥ 2s; -interval > 0; -modules 0-%d; -churn ≥ 0; -churn-interval > 0\n", len(extraModules))
		return 2
	}
	if cfg.accel != "tcg" && cfg.accel != "kvm" {
		fmt.Fprintln(os.Stderr, "vmi: -accel must be tcg or kvm")
		return 2
	}

	if d := cfg.churn + 5*time.Minute; cfg.churn > 0 && cfg.timeout < d {
		cfg.timeout = d // the boot and the first attach on top of the run
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	res, err := bench(ctx, cfg)
	if res != nil {
		res.summarize()
		if cfg.jsonOut {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if werr := enc.Encode(res); werr != nil && err == nil {
				err = werr
			}
		} else {
			fmt.Print(report(res))
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmi:", err)
		return 1
	}
	return 0
}

// step runs f with a progress line on stderr.
func step(what string, f func() error) error {
	fmt.Fprintf(os.Stderr, "vmi: %s ...\n", what)
	t := time.Now()
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Fprintf(os.Stderr, "vmi: %s done (%.1fs)\n", what, time.Since(t).Seconds())
	return nil
}
