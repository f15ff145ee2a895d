// Command boot is Bulwark's boot-overhead benchmark. In one run it boots N
// guests through a Bulwark daemon and N guests through the equivalent raw
// QEMU command line, interleaved so host noise hits both alike, and reports
// the time from "start" to the guest's ready marker on the serial console for
// both, their ratio, and the daemon's resident memory (idle, with 10 VMs
// defined, with a few running).
//
// It is a benchmark, not a test: it reports numbers and never fails on them.
// It needs root (the daemon runs each VM as its own uid) and
// qemu-system-x86_64.
//
//	go run ./bench/boot -n 4
//	go run ./bench/boot -n 6 -parallel 2 -json /tmp/boot.json
//
// See docs/benchmarks.md for what is measured and the caveats.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/benchrun"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/image"
)

type config struct {
	n, parallel, warmup int
	vcpus, memMiB       int
	accel               string
	qemuBin             string
	bin, img            string
	jsonOut             string
	poll                time.Duration
	detect              string
	bootTimeout         time.Duration
	rssVMs, rssRunning  int
	rssSettle           time.Duration
	keep                bool
	serveArgs           string
	rawUID              int
}

func main() {
	os.Exit(run())
}

func run() int {
	var cfg config
	flag.IntVar(&cfg.n, "n", 4, "timed boots of each kind (raw QEMU and Bulwark)")
	flag.IntVar(&cfg.parallel, "parallel", 1, "guests of the same kind booted at once (1 = sequential)")
	flag.IntVar(&cfg.warmup, "warmup", 1, "untimed boots of each kind before the timed ones")
	flag.IntVar(&cfg.vcpus, "vcpus", 1, "guest vCPUs")
	flag.IntVar(&cfg.memMiB, "memory", 256, "guest memory in MiB")
	flag.StringVar(&cfg.accel, "accel", "auto", "accelerator for both kinds: auto, kvm or tcg (auto is resolved once, as the daemon does)")
	flag.StringVar(&cfg.qemuBin, "qemu", "qemu-system-x86_64", "QEMU binary, for both kinds")
	flag.StringVar(&cfg.bin, "bin", "", "use this bulwark binary instead of building ./cmd/bulwark")
	flag.StringVar(&cfg.img, "img", "", "use this directory's vmlinuz and initrd.img instead of running `bulwark image build`")
	flag.StringVar(&cfg.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.DurationVar(&cfg.poll, "poll", 5*time.Millisecond, "how often the Bulwark side polls the console log API for the marker")
	flag.StringVar(&cfg.detect, "detect", "api", "how the Bulwark side sees the ready line: api (poll the console log API) or file (watch the daemon's console log file; no API load)")
	flag.DurationVar(&cfg.bootTimeout, "boot-timeout", 60*time.Second, "give up on one boot after this long")
	flag.IntVar(&cfg.rssVMs, "rss-vms", 10, "VMs defined (not started) for the daemon RSS measurement")
	flag.IntVar(&cfg.rssRunning, "rss-running", 2, "of those, VMs then started for a third RSS measurement (0: skip)")
	flag.DurationVar(&cfg.rssSettle, "rss-settle", 2*time.Second, "idle time before each RSS reading")
	flag.StringVar(&cfg.serveArgs, "serve-args", "", "extra space-separated arguments for `bulwark serve` (e.g. \"--vm-uid-base 0\" to run its QEMU as root like the raw side)")
	flag.IntVar(&cfg.rawUID, "raw-uid", -1, "run the raw QEMU as this uid/gid, as the daemon runs its VMs (-1: as root)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (binary, image, daemon state and log) for inspection")
	flag.Parse()
	if cfg.n < 1 || cfg.parallel < 1 || cfg.warmup < 0 || cfg.rssVMs < 0 || cfg.rssRunning < 0 {
		fmt.Fprintln(os.Stderr, "boot: -n and -parallel must be ≥ 1; -warmup, -rss-vms and -rss-running ≥ 0")
		return 2
	}
	cfg.rssRunning = min(cfg.rssRunning, cfg.rssVMs)
	if cfg.detect != "api" && cfg.detect != "file" {
		fmt.Fprintln(os.Stderr, "boot: -detect must be api or file")
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "boot: must run as root (the daemon runs each VM's QEMU as its own uid)")
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
				fmt.Fprintln(os.Stderr, "boot:", werr)
				if err == nil {
					return 1
				}
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "boot:", err)
		return 1
	}
	return 0
}

// bench sets everything up, runs the measurements and tears it all down. A
// partial result is returned with the error when some measurements finished.
func bench(ctx context.Context, cfg config) (res *result, err error) {
	qemuPath, err := exec.LookPath(cfg.qemuBin)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	accel, err := hv.Decide(cfg.accel, hv.ProbeKVM())
	if err != nil {
		return nil, err
	}

	root, err := os.MkdirTemp("", "bulwark-bench-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if cfg.keep {
			fmt.Fprintf(os.Stderr, "boot: kept %s\n", root)
			return
		}
		os.RemoveAll(root)
	}()
	// VM processes run as their own uids and must traverse to their run dir.
	if err := os.Chmod(root, 0o711); err != nil {
		return nil, err
	}

	bin, source := cfg.bin, "prebuilt "+cfg.bin
	if bin == "" {
		bin = filepath.Join(root, "bulwark")
		if err := step("build bulwark", func() error {
			var err error
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
	kernel, initrd := filepath.Join(img, "vmlinuz"), filepath.Join(img, "initrd.img")
	for _, p := range []string{kernel, initrd} {
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
	}

	res = &result{
		Date:    time.Now().UTC().Format(time.RFC3339),
		Source:  source,
		Machine: machineInfo(qemuPath),
		Config: resultConfig{N: cfg.n, Parallel: cfg.parallel, Warmup: cfg.warmup, VCPUs: cfg.vcpus, MemoryMiB: cfg.memMiB,
			Accel: accel.Name, AccelReason: accel.Reason, Detect: cfg.detect, PollMS: ms(cfg.poll), Marker: image.ReadyMarker,
			RawUID: cfg.rawUID, ServeArgs: cfg.serveArgs},
	}
	guest := guestConfig{accel: accel.Name, vcpus: cfg.vcpus, memMiB: cfg.memMiB, kernel: kernel, initrd: initrd, timeout: cfg.bootTimeout}

	d, err := startDaemon(ctx, bin, qemuPath, filepath.Join(root, "daemon"), strings.Fields(cfg.serveArgs))
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := d.shutdown(); cerr != nil {
			if err == nil {
				err = cerr
			} else {
				fmt.Fprintln(os.Stderr, "boot: cleanup:", cerr)
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "boot: daemon log tail:\n%s\n", benchrun.Tail(d.logPath, 4096))
		}
	}()

	if err := step("daemon RSS", func() error { return measureRSS(ctx, d, guest, cfg, res) }); err != nil {
		return res, err
	}
	raw := &rawRunner{qemu: qemuPath, root: filepath.Join(root, "raw"), g: guest, uid: cfg.rawUID}
	// 0711 like the daemon's run root, so a -raw-uid QEMU reaches its dir.
	if err := os.Mkdir(raw.root, 0o711); err != nil {
		return res, err
	}
	bw := &bulwarkRunner{d: d, g: guest, poll: cfg.poll, detect: cfg.detect}
	if err := runBoots(ctx, cfg, raw, bw, res); err != nil {
		return res, err
	}
	time.Sleep(cfg.rssSettle)
	if rss, err := d.rssMiB(); err == nil {
		res.RSS = append(res.RSS, rssReading{State: "idle again after the boot runs (all VMs deleted)", MiB: rss})
	}
	return res, nil
}

// step runs f with a progress line on stderr.
func step(what string, f func() error) error {
	fmt.Fprintf(os.Stderr, "boot: %s ...\n", what)
	t := time.Now()
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Fprintf(os.Stderr, "boot: %s done (%.1fs)\n", what, time.Since(t).Seconds())
	return nil
}
