// Command jail measures what the VMM jail costs. In one run it starts two
// private daemons, one jailed (the default) and one with --unsafe-no-jail
// (same descriptors and cgroups; no namespaces, pivot_root, rlimits or
// Bulwark's seccomp list), boots the same guest through each in turn, and
// reports for both kinds the time from `vm start` to the guest's ready line
// on its console, the time the start call itself took (the jail's set-up
// is in it), and the QEMU process's VmRSS and Pss once the guest is up.
// It also counts the syscalls Bulwark's seccomp allow lists admit, beside
// the set traced from QEMU and Firecracker's per-thread filters.
//
// It is a benchmark, not a test: it exits non-zero only when something
// broke, never because of a number. The boots need root; -syscalls alone
// does not.
//
//	go run ./bench/jail
//	go run ./bench/jail -n 5 -json /tmp/jail.json
//	go run ./bench/jail -n 1 -warmup 0      # smoke run
//	go run ./bench/jail -syscalls           # allow-list sizes only
//
// See docs/benchmarks.md ("Jail overhead") for what is measured and the
// caveats.
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
	"github.com/bulwark-project/bulwark/internal/image"
)

type config struct {
	n, warmup    int
	memMiB       int
	accel        string
	qemuBin      string
	bin, img     string
	jsonOut      string
	settle       time.Duration // after the ready line, before reading memory
	gap          time.Duration // between one boot's teardown and the next boot
	bootTimeout  time.Duration
	syscallsOnly bool
	keep         bool
}

func main() {
	os.Exit(run())
}

func run() int {
	if os.Getenv(filterCostEnv) != "" {
		return filterCostChild()
	}
	var cfg config
	flag.IntVar(&cfg.n, "n", 5, "timed boots of each kind (jailed and unjailed)")
	flag.IntVar(&cfg.warmup, "warmup", 1, "untimed boots of each kind before the timed ones")
	flag.IntVar(&cfg.memMiB, "memory", 256, "guest memory in MiB")
	flag.StringVar(&cfg.accel, "accel", "auto", "accelerator for both kinds: auto, kvm or tcg")
	flag.StringVar(&cfg.qemuBin, "qemu", "qemu-system-x86_64", "QEMU binary, for both daemons")
	flag.StringVar(&cfg.bin, "bin", "", "use this bulwark binary instead of building ./cmd/bulwark")
	flag.StringVar(&cfg.img, "img", "", "use this directory's vmlinuz and initrd.img instead of running `bulwark image build`")
	flag.StringVar(&cfg.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.DurationVar(&cfg.settle, "settle", 2*time.Second, "wait after the ready line before reading QEMU's VmRSS and Pss")
	flag.DurationVar(&cfg.gap, "gap", 300*time.Millisecond, "pause between one boot's teardown and the next boot")
	flag.DurationVar(&cfg.bootTimeout, "boot-timeout", 60*time.Second, "give up on one boot after this long")
	flag.BoolVar(&cfg.syscallsOnly, "syscalls", false, "only report the seccomp allow-list sizes (no boots, no root needed)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (binary, image, daemon state and logs) for inspection")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "jail: unexpected arguments %q\n", flag.Args())
		return 2
	}
	var err error
	if cfg.n < 1 || cfg.warmup < 0 || cfg.settle < 0 || cfg.gap < 0 {
		fmt.Fprintln(os.Stderr, "jail: -n must be ≥ 1; -warmup, -settle and -gap ≥ 0")
		return 2
	}

	sc := countSyscalls(benchrun.ModuleDir())
	if sc.FilterCost, err = measureFilterCost(); err != nil {
		sc.FilterCostErr = err.Error()
		fmt.Fprintln(os.Stderr, "jail: seccomp filter cost:", err)
	}
	if cfg.syscallsOnly {
		fmt.Print(syscallsMarkdown(sc))
		return 0
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "jail: must run as root (the daemons jail each QEMU and run it as its own uid); -syscalls does not")
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	res, err := bench(ctx, cfg)
	if res != nil {
		res.Syscalls = sc
		res.summarize()
		fmt.Print(markdown(res))
		if cfg.jsonOut != "" {
			if werr := writeJSON(cfg.jsonOut, res); werr != nil {
				err = errors.Join(err, werr)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "jail:", err)
		return 1
	}
	return 0
}

// bench prepares the binary, the image and both daemons, runs the boots and
// tears everything down. It returns what it measured along with any error.
func bench(ctx context.Context, cfg config) (res *result, err error) {
	qemuPath, err := exec.LookPath(cfg.qemuBin)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	root, err := os.MkdirTemp("", "bulwark-bench-jail-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if cfg.keep {
			fmt.Fprintf(os.Stderr, "jail: kept %s\n", root)
			return
		}
		os.RemoveAll(root)
	}()
	// VM uids must be able to traverse to what lies below.
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
	g := guest{kernel: filepath.Join(img, "vmlinuz"), initrd: filepath.Join(img, "initrd.img"),
		memMiB: cfg.memMiB, accel: cfg.accel, timeout: cfg.bootTimeout}
	for _, p := range []string{g.kernel, g.initrd} {
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
	}

	res = &result{
		Date:   time.Now().UTC().Format(time.RFC3339),
		Source: source,
		Machine: machine{NProc: runtime.NumCPU(), CPUModel: host.CPUModel(), Kernel: host.Kernel(),
			QEMU: host.QEMU(qemuPath), Go: runtime.Version()},
		Config: resultConfig{N: cfg.n, Warmup: cfg.warmup, MemoryMiB: cfg.memMiB, Accel: cfg.accel,
			SettleMS: ms(cfg.settle), Marker: image.ReadyMarker},
	}

	// Both daemons run for the whole benchmark, so each boot of one kind
	// meets the same host load from the other daemon's idle presence.
	var daemons [2]*daemon
	defer func() {
		for _, d := range daemons {
			if d == nil {
				continue
			}
			if cerr := d.shutdown(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("cleanup of the %s daemon: %w", d.kind, cerr))
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "jail: %s daemon log tail:\n%s\n", d.kind, benchrun.Tail(d.logPath, 4096))
			}
		}
	}()
	for i, k := range kinds {
		if err := step("start the "+string(k)+" daemon", func() (err error) {
			daemons[i], err = startDaemon(ctx, k, bin, qemuPath, filepath.Join(root, string(k)))
			return err
		}); err != nil {
			return res, err
		}
	}
	return res, runBoots(ctx, cfg, daemons, g, res)
}

// step runs f with a progress line on stderr.
func step(what string, f func() error) error {
	fmt.Fprintf(os.Stderr, "jail: %s ...\n", what)
	t := time.Now()
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Fprintf(os.Stderr, "jail: %s done (%.1fs)\n", what, time.Since(t).Seconds())
	return nil
}
