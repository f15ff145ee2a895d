// Command debian measures how long a Debian 12 server VM (systemd, nginx)
// takes from "start" until nginx answers an HTTP request, through a Bulwark
// daemon and through the same QEMU command line run directly, interleaved
// in one run so host noise hits both alike. It also reports how long the
// image build took (cold, or the cached reuse).
//
// Both kinds boot the same kernel, initrd and a fresh raw copy of the
// image's disk template (made before the clock starts), with a user-data
// disk whose script polls http://127.0.0.1/ inside the guest (bash
// /dev/tcp) and prints a marker on the serial console at the first
// "200 OK". Every boot is a first boot (fresh disk: machine-id and ssh
// host keys are generated).
//
// It is a benchmark, not a test: it reports numbers and never fails on
// them. It needs root, qemu-system-x86_64, qemu-img and mmdebstrap.
//
//	go run ./bench/debian -n 3
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/benchrun"

	"github.com/bulwark-project/bulwark/internal/client"
	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/hv/qemu"
	"github.com/bulwark-project/bulwark/internal/image/debian"
	"github.com/bulwark-project/bulwark/internal/imagestore"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// marker is what the guest prints once nginx answered.
const marker = "bench-http-ok"

// probeScript runs as user data (sh) on every boot.
const probeScript = `bash -c 'until exec 3<>/dev/tcp/127.0.0.1/80 && printf "GET / HTTP/1.0\r\n\r\n" >&3 && head -n 1 <&3 | grep -q " 200 "; do sleep 0.1; done'
echo ` + marker

type config struct {
	n             int
	memMiB, vcpus int
	bin, images   string
	name, accel   string
	timeout       time.Duration
	jsonOut       string
}

func main() {
	var cfg config
	flag.IntVar(&cfg.n, "n", 3, "timed boots of each kind")
	flag.IntVar(&cfg.memMiB, "memory", 512, "guest memory in MiB")
	flag.IntVar(&cfg.vcpus, "vcpus", 1, "guest vCPUs")
	flag.StringVar(&cfg.bin, "bin", "", "use this bulwark binary instead of building ./cmd/bulwark")
	flag.StringVar(&cfg.images, "images", "/var/tmp/bulwark-itest-images", "image store (the integration test's cache by default)")
	flag.StringVar(&cfg.name, "name", "debian-12-itest", "image name (built with --packages nginx, or reused)")
	flag.StringVar(&cfg.accel, "accel", "auto", "accelerator: auto, kvm or tcg")
	flag.DurationVar(&cfg.timeout, "boot-timeout", 4*time.Minute, "give up on one boot after this long")
	flag.StringVar(&cfg.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "debian: must run as root")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg)
	if res != nil {
		fmt.Print(res.markdown())
		if cfg.jsonOut != "" {
			b, _ := json.MarshalIndent(res, "", "  ")
			os.WriteFile(cfg.jsonOut, b, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "debian:", err)
		os.Exit(1)
	}
}

type result struct {
	Accel        string         `json:"accel"`
	ImageCached  bool           `json:"image_cached"`
	ImageSeconds float64        `json:"image_seconds"`
	Image        string         `json:"image"`
	Raw          []float64      `json:"raw_seconds"`
	Bulwark      []float64      `json:"bulwark_seconds"`
	RawDist      benchrun.Dist  `json:"raw"`
	BulwarkDist  benchrun.Dist  `json:"bulwark"`
	Source       string         `json:"source"`
	Machine      map[string]any `json:"machine"`
}

// guest is what both kinds boot.
type guest struct {
	dir      string // image directory
	m        *imagestore.Manifest
	accel    string
	userdata string
	cfg      config
}

func run(ctx context.Context, cfg config) (*result, error) {
	accel, err := hv.Decide(cfg.accel, hv.ProbeKVM())
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "bulwark-bench-debian-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	os.Chmod(root, 0o711)
	res := &result{Accel: accel.Name, Source: "prebuilt " + cfg.bin,
		Machine: map[string]any{"cpus": runtime.NumCPU()}}
	bin := cfg.bin
	if bin == "" {
		bin = filepath.Join(root, "bulwark")
		if res.Source, err = benchrun.BuildBulwark(ctx, bin); err != nil {
			return nil, err
		}
	}
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, bin, "image", "build", "--distro", "debian", "--images", cfg.images,
		"--name", cfg.name, "--packages", "nginx", "-o", "json").Output()
	if err != nil {
		return nil, fmt.Errorf("image build: %w", err)
	}
	var br debian.Result
	if err := json.Unmarshal(out, &br); err != nil {
		return nil, err
	}
	res.ImageSeconds, res.ImageCached = time.Since(t0).Seconds(), br.Cached
	res.Image = br.Manifest.Name + " " + br.Manifest.Version
	g := &guest{dir: br.Dir, m: br.Manifest, accel: accel.Name, cfg: cfg,
		userdata: filepath.Join(root, "userdata")}
	body := []byte("#!bulwark-userdata\n" + probeScript + "\n")
	if err := os.WriteFile(g.userdata, append(body, make([]byte, 4096-len(body))...), 0o644); err != nil {
		return nil, err
	}
	d, err := startDaemon(ctx, bin, filepath.Join(root, "daemon"))
	if err != nil {
		return nil, err
	}
	defer d.shutdown()
	for i := 0; i < cfg.n; i++ {
		// Alternate which kind goes first, so neither always boots on a
		// host still busy from the other's teardown.
		kinds := []string{"raw", "bulwark"}
		if i%2 == 1 {
			kinds[0], kinds[1] = kinds[1], kinds[0]
		}
		for _, k := range kinds {
			name := fmt.Sprintf("deb-%s-%d", k, i)
			var secs float64
			if k == "raw" {
				secs, err = g.bootRaw(ctx, root, name)
				res.Raw = append(res.Raw, secs)
			} else {
				secs, err = g.bootBulwark(ctx, d, root, name)
				res.Bulwark = append(res.Bulwark, secs)
			}
			if err != nil {
				return res, err
			}
			fmt.Fprintf(os.Stderr, "debian: %s %.2f s\n", name, secs)
		}
	}
	res.RawDist, res.BulwarkDist = benchrun.Summarize(res.Raw), benchrun.Summarize(res.Bulwark)
	return res, nil
}

// freshDisk makes a raw copy of the template for one boot.
func (g *guest) freshDisk(ctx context.Context, dir string) (string, error) {
	disk := g.m.File(imagestore.RoleDisk)
	p := filepath.Join(dir, "root.raw")
	err := benchrun.RunQuiet(ctx, "qemu-img", "convert", "-f", disk.Format, "-O", "raw", filepath.Join(g.dir, disk.Name), p)
	return p, err
}

func (g *guest) cmdline(name string) string { return g.m.Cmdline + " bulwark.hostname=" + name }

// bootRaw runs the command line Bulwark's backend builds from the same
// inputs (internal/hv/qemu Args.Build), as root, with paths instead of
// descriptors, and times exec → marker on the console socket.
func (g *guest) bootRaw(ctx context.Context, root, name string) (float64, error) {
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	disk, err := g.freshDisk(ctx, dir)
	if err != nil {
		return 0, err
	}
	// Guest RAM on tmpfs, as the daemon's is a memfd: a file on a disk
	// file system would add page-cache writeback to the raw side.
	mem := filepath.Join("/dev/shm", "bulwark-bench-"+name)
	if err := os.WriteFile(mem, nil, 0o600); err != nil {
		return 0, err
	}
	defer os.Remove(mem)
	sock := filepath.Join(dir, "console.sock")
	args := qemu.Args{Name: name, Accel: g.accel, VCPUs: g.cfg.vcpus, MemoryMiB: g.cfg.memMiB, MemPath: mem,
		Kernel: filepath.Join(g.dir, "vmlinuz"), Initrd: filepath.Join(g.dir, "initrd.img"),
		Cmdline: g.cmdline(name), TSCkHz: hv.HostTSCkHz(),
		QMPSocket: filepath.Join(dir, "qmp.sock"), ConsoleSocket: sock,
		Disks: []qemu.DiskArg{{Path: disk}, {Path: g.userdata, ReadOnly: true}}}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.timeout)
	defer cancel()
	cmd := exec.Command("qemu-system-x86_64", args.Build()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var conn net.Conn
	for conn == nil {
		if conn, err = net.Dial("unix", sock); err != nil {
			if ctx.Err() != nil {
				return 0, fmt.Errorf("raw %s: no console socket", name)
			}
			time.Sleep(time.Millisecond)
		}
	}
	defer conn.Close()
	context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	var seen []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := conn.Read(buf)
		seen = append(seen, buf[:n]...)
		if bytes.Contains(seen, []byte(marker)) {
			return time.Since(t0).Seconds(), nil
		}
		if len(seen) > 1<<20 {
			seen = seen[len(seen)-64:]
		}
		if err != nil {
			return 0, fmt.Errorf("raw %s: console: %w", name, err)
		}
	}
}

// bootBulwark defines the VM (untimed), then times POST start → the marker
// in the console log API, polled every 20 ms.
func (g *guest) bootBulwark(ctx context.Context, d *daemon, root, name string) (float64, error) {
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o711); err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	disk, err := g.freshDisk(ctx, dir)
	if err != nil {
		return 0, err
	}
	_, err = d.c.CreateVM(ctx, vm.Spec{Name: name, VCPUs: g.cfg.vcpus, MemoryMiB: g.cfg.memMiB, Accel: g.accel,
		Kernel: filepath.Join(g.dir, "vmlinuz"), Initrd: filepath.Join(g.dir, "initrd.img"), Cmdline: g.cmdline(name),
		Disks: []vm.Disk{{Path: disk}, {Path: g.userdata, ReadOnly: true}}})
	if err != nil {
		return 0, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		d.c.StopVM(cctx, name, true, 1)
		d.c.DeleteVM(cctx, name)
	}()
	ctx, cancel := context.WithTimeout(ctx, g.cfg.timeout)
	defer cancel()
	t0 := time.Now()
	if _, err := d.c.Action(ctx, name, "start"); err != nil {
		return 0, fmt.Errorf("bulwark %s: start: %w", name, err)
	}
	for {
		b, err := d.c.ConsoleLog(ctx, name, 4096)
		if err == nil && bytes.Contains(b, []byte(marker)) {
			return time.Since(t0).Seconds(), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("bulwark %s: %w", name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// daemon is one `bulwark serve` on temporary state.
type daemon struct {
	cmd    *exec.Cmd
	c      *client.Client
	log    string
	cgroup string // --cgroup-base: this daemon's alone
}

func startDaemon(ctx context.Context, bin, dir string) (*daemon, error) {
	if err := os.Mkdir(dir, 0o711); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "bulwark.sock")
	d := &daemon{c: client.New(sock), log: filepath.Join(dir, "daemon.log")}
	logf, err := os.Create(d.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	d.cgroup = benchrun.CgroupBase("debian")
	d.cmd = exec.Command(bin, "serve", "--socket", sock, "--state-dir", filepath.Join(dir, "state"),
		"--run-dir", filepath.Join(dir, "run"), "--log-format", "text", "--stop-timeout", "10s",
		"--audit-anchor-append-only=false", "--cgroup-base", d.cgroup)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	for i := 0; i < 150; i++ {
		if _, err := d.c.Host(ctx); err == nil {
			return d, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.shutdown()
	return nil, fmt.Errorf("daemon not answering:\n%s", benchrun.Tail(d.log, 2048))
}

func (d *daemon) shutdown() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
	benchrun.RemoveCgroups(d.cgroup) // VMs keep running after the daemon: end them too
}

func (r *result) markdown() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "\n### Debian 12 VM: start → nginx answering (accel %s, %d CPUs, %s)\n\n", r.Accel, r.Machine["cpus"], r.Source)
	fmt.Fprintf(&b, "image %s: %s in %.1f s\n\n", r.Image, map[bool]string{true: "cached, verified", false: "built"}[r.ImageCached], r.ImageSeconds)
	fmt.Fprintln(&b, "| kind | n | median s | mean s | min s | max s |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|")
	for _, row := range []struct {
		k string
		d benchrun.Dist
	}{{"raw QEMU", r.RawDist}, {"Bulwark", r.BulwarkDist}} {
		fmt.Fprintf(&b, "| %s | %d | %.2f | %.2f | %.2f | %.2f |\n", row.k, row.d.N, row.d.Median, row.d.Mean, row.d.Min, row.d.Max)
	}
	if r.RawDist.Median > 0 {
		fmt.Fprintf(&b, "\nBulwark / raw (median): %.3f\n", r.BulwarkDist.Median/r.RawDist.Median)
	}
	return b.String()
}
