// Command disk measures sequential disk throughput inside a Bulwark guest
// on a raw and a qcow2 volume, against the host's own file I/O on the
// same file system, in one run.
//
// A busybox VM (the image of `bulwark image build`) gets both volumes
// (made through the storage API, thin, in the default pool) and a
// user-data disk. Each boot's user data runs dd (busybox) on the volumes
// and times each dd in the guest; the results come back on the serial
// console. Between boots, with the VM stopped, the host runs the same dd
// (coreutils, same flags and sizes) on a sparse file next to the pool and
// drops every file involved from its page cache.
//
//	write:     dd if=/dev/zero of=T bs=1M count=N oflag=direct conv=fsync,notrunc
//	read-cold: dd if=T of=/dev/null bs=1M count=N, page caches dropped
//	           (the guest's: echo 3 > drop_caches; the host's: fadvise
//	           DONTNEED on the volume files and the peer file)
//	read-warm: the same read just after the write, guest cache dropped but
//	           not the host's (guest only): QEMU opens the volumes through
//	           the host page cache, so this is what a guest rereading data
//	           it just wrote sees
//
// Each boot first reads a never-written third volume, untimed, so that the
// guest RAM its page cache uses is already backed on the host (see
// bootPlan.script). Rep 0's write allocates (sparse raw, empty qcow2, sparse host file); it
// is reported apart from the rewrites of later reps. Cold reads of rep k
// run in boot k+1, so n reps take n+1 boots.
//
// It is a benchmark, not a test: it reports numbers and never fails on
// them. It needs root, qemu-system-x86_64 and qemu-img.
//
//	go run ./bench/disk -n 5 -size 256
//	go run ./bench/disk -n 1 -size 8        # tiny (scripts/test.sh)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/benchrun"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Cases. The host peer is measured like the volumes.
const (
	caseHost  = "host"
	caseRaw   = "raw"
	caseQcow2 = "qcow2"
)

type config struct {
	n, sizeMiB    int
	memMiB, vcpus int
	accel         string
	bin, img, dir string
	bootTimeout   time.Duration
	jsonOut       string
	keep          bool
}

func main() {
	var cfg config
	flag.IntVar(&cfg.n, "n", 5, "repetitions of each op on each case")
	flag.IntVar(&cfg.sizeMiB, "size", 256, "MiB each dd moves (bs=1M)")
	flag.IntVar(&cfg.memMiB, "memory", 256, "guest memory in MiB")
	flag.IntVar(&cfg.vcpus, "vcpus", 1, "guest vCPUs")
	flag.StringVar(&cfg.accel, "accel", "auto", "accelerator: auto, kvm or tcg")
	flag.StringVar(&cfg.bin, "bin", "", "use this bulwark binary instead of building ./cmd/bulwark")
	flag.StringVar(&cfg.img, "img", "", "use this directory's vmlinuz and initrd.img instead of running `bulwark image build`")
	flag.StringVar(&cfg.dir, "dir", "", "make the temporary directory (daemon state, so the pool, and the host peer file) under this directory (default: $TMPDIR or /tmp)")
	flag.DurationVar(&cfg.bootTimeout, "boot-timeout", 15*time.Minute, "give up on one boot (boot plus its dd runs) after this long")
	flag.StringVar(&cfg.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory for inspection")
	flag.Parse()
	if cfg.n < 1 || cfg.sizeMiB < 1 {
		fmt.Fprintln(os.Stderr, "disk: -n and -size must be ≥ 1")
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "disk: must run as root (the daemon runs each VM as its own uid)")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg)
	if res != nil && len(res.Samples) > 0 {
		res.summarize()
		fmt.Print(res.markdown())
		if cfg.jsonOut != "" {
			b, _ := json.MarshalIndent(res, "", "  ")
			if werr := os.WriteFile(cfg.jsonOut, append(b, '\n'), 0o644); werr != nil {
				fmt.Fprintln(os.Stderr, "disk:", werr)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "disk:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) (res *result, err error) {
	accel, err := hv.Decide(cfg.accel, hv.ProbeKVM())
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp(cfg.dir, "bulwark-bench-disk-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if cfg.keep {
			fmt.Fprintf(os.Stderr, "disk: kept %s\n", root)
			return
		}
		os.RemoveAll(root)
	}()
	// VM processes run as their own uids and must traverse to their run dir.
	if err := os.Chmod(root, 0o711); err != nil {
		return nil, err
	}
	res = newResult(cfg, accel)
	bin := cfg.bin
	if bin == "" {
		bin = filepath.Join(root, "bulwark")
		if res.Source, err = benchrun.BuildBulwark(ctx, bin); err != nil {
			return nil, err
		}
	}
	img := cfg.img
	if img == "" {
		img = filepath.Join(root, "img")
		if err := benchrun.RunQuiet(ctx, bin, "image", "build", "--out", img); err != nil {
			return nil, err
		}
	}
	d, err := startDaemon(ctx, bin, filepath.Join(root, "daemon"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := d.shutdown(); serr != nil {
			fmt.Fprintln(os.Stderr, "disk: cleanup:", serr)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "disk: daemon log tail:\n%s\n", benchrun.Tail(d.log, 4096))
		}
	}()
	return res, measure(ctx, cfg, d, root, img, accel.Name, res)
}

// measure sets up the volumes, the peer file and the VM, then runs n+1
// boots with the host's ops between them.
func measure(ctx context.Context, cfg config, d *daemon, root, img, accel string, res *result) error {
	mib := int64(1 << 20)
	// Sizes differ by a MiB so the guest can tell the disks apart by size;
	// dd moves -size MiB on each.
	disks := []guestDisk{{Case: caseRaw, Sectors: (int64(cfg.sizeMiB) + 1) * mib / 512}, {Case: caseQcow2, Sectors: (int64(cfg.sizeMiB) + 2) * mib / 512}}
	warm := guestDisk{Case: "warm", Sectors: (int64(cfg.sizeMiB) + 3) * mib / 512}
	files := map[string]string{}
	for _, g := range append(disks, warm) {
		format := g.Case
		if g == warm {
			format = caseRaw
		}
		p, err := d.createVolume(ctx, "bench-"+g.Case, format, g.Sectors*512)
		if err != nil {
			return err
		}
		files[g.Case] = p
	}
	// The peer file sits in the daemon's directory, beside the state
	// directory that holds the pool: not in the pool itself, which is the
	// daemon's.
	peer, err := newHostPeer(filepath.Join(d.dir, "host-peer.raw"), cfg.sizeMiB, int64(cfg.sizeMiB)*mib)
	if err != nil {
		return err
	}
	files[caseHost] = peer.path
	same, fsType, err := sameFS(d.poolDir(), peer.path)
	if err != nil {
		return err
	}
	if !same {
		return fmt.Errorf("the peer file %s is not on the pool's file system (%s)", peer.path, d.poolDir())
	}
	res.FS = fsType
	res.Pool = d.poolDir()

	userdata := filepath.Join(root, "userdata")
	const name = "disk-bench"
	spec := vm.Spec{Name: name, VCPUs: cfg.vcpus, MemoryMiB: cfg.memMiB, Accel: accel,
		Kernel: filepath.Join(img, "vmlinuz"), Initrd: filepath.Join(img, "initrd.img"), Cmdline: "bulwark.hostname=" + name,
		Disks: []vm.Disk{{Volume: "default/bench-" + caseRaw}, {Volume: "default/bench-" + caseQcow2},
			{Volume: "default/bench-warm"}, {Path: userdata, ReadOnly: true}}}
	// The user-data disk must exist when the VM is defined.
	if err := writeUserdata(userdata, bootPlan{}.script()); err != nil {
		return err
	}
	if _, err := d.c.CreateVM(ctx, spec); err != nil {
		return err
	}
	for k := 0; k <= cfg.n; k++ {
		plan := bootPlan{Boot: k, Cases: disks, ReadCold: k > 0, Write: k < cfg.n, SizeMiB: cfg.sizeMiB, Warm: warm}
		if k%2 == 1 { // alternate the order of the cases
			plan.Cases = []guestDisk{disks[1], disks[0]}
		}
		for _, f := range files {
			if err := evict(f); err != nil {
				return err
			}
		}
		if err := guestBoot(ctx, cfg, d, name, userdata, plan, res); err != nil {
			return err
		}
		// The host's ops always come right after the boot, so between a
		// write and its cold read there is one boot's and one host turn's
		// I/O for every case alike. Where they sat mattered: a disk that
		// caches below this kernel (a virtual one) answered the host's
		// cold read at ~2.9 GB/s when its write was just before it, and
		// 0.6-0.9 GB/s when a boot came between.
		if err := hostOps(ctx, peer, plan, res); err != nil {
			return err
		}
	}
	return nil
}

func hostOps(ctx context.Context, peer *hostPeer, plan bootPlan, res *result) error {
	var ops []string
	if plan.ReadCold {
		ops = append(ops, opReadCold)
	}
	if plan.Write {
		ops = append(ops, opWrite)
	}
	for _, op := range ops {
		s, err := peer.run(ctx, plan.Boot, op)
		if err != nil {
			return err
		}
		res.add(s)
	}
	return nil
}

func guestBoot(ctx context.Context, cfg config, d *daemon, name, userdata string, plan bootPlan, res *result) error {
	if err := writeUserdata(userdata, plan.script()); err != nil {
		return err
	}
	t0 := time.Now()
	log, hostSpan, err := d.boot(ctx, name, plan.Boot, cfg.bootTimeout)
	if err != nil {
		return err
	}
	out := parseConsole(log, plan.Boot)
	want := 0
	if plan.ReadCold {
		want += len(plan.Cases)
	}
	if plan.Write {
		want += 2 * len(plan.Cases)
	}
	if len(out.Errors) > 0 || len(out.Samples) != want {
		return fmt.Errorf("boot %d: %d of %d samples; guest reported: %s", plan.Boot, len(out.Samples), want, strings.Join(out.Errors, "; "))
	}
	for _, s := range out.Samples {
		res.add(s)
	}
	res.Clock = append(res.Clock, clockCheck{Boot: plan.Boot, GuestSeconds: float64(out.GuestSpanNS) / 1e9, HostSeconds: hostSpan.Seconds()})
	fmt.Fprintf(os.Stderr, "disk: boot %d done in %.1f s\n", plan.Boot, time.Since(t0).Seconds())
	return nil
}

// writeUserdata writes a user-data disk: the marker line, the script,
// zero padding to whole 4 KiB blocks. init.sh reads at most 64 KiB.
func writeUserdata(path, script string) error {
	body := "#!bulwark-userdata\n" + script
	if len(body) > 65536 {
		return errors.New("user data over 64 KiB")
	}
	b := make([]byte, (len(body)+4095)/4096*4096)
	copy(b, body)
	return os.WriteFile(path, b, 0o600)
}

// osArgs is the command line after the program name, for the report.
func osArgs() []string { return os.Args[1:] }
