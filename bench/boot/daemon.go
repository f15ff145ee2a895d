package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/benchrun"

	"github.com/bulwark-project/bulwark/internal/client"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// forceStopTimeout is passed with force=true. Current daemons kill at once
// when forced; earlier ones waited out the timeout first, so the smallest
// value the API takes (1 s) keeps teardown between boots short on both.
const forceStopTimeout = 1

// daemon is one `bulwark serve` with its own state, run directory and socket.
type daemon struct {
	cgroup  string // --cgroup-base: this daemon's alone
	dir     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	c       *client.Client
}

func startDaemon(ctx context.Context, bin, qemuPath, dir string, extra []string) (*daemon, error) {
	if err := os.Mkdir(dir, 0o711); err != nil {
		return nil, err
	}
	d := &daemon{dir: dir, logPath: filepath.Join(dir, "daemon.log"), exited: make(chan struct{}),
		cgroup: benchrun.CgroupBase("boot-" + filepath.Base(dir))}
	socket := filepath.Join(dir, "bulwark.sock")
	d.c = client.New(socket)
	logf, err := os.Create(d.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := []string{"serve", "--socket", socket, "--state-dir", filepath.Join(dir, "state"),
		"--run-dir", filepath.Join(dir, "run"), "--qemu", qemuPath, "--log-format", "text", "--stop-timeout", "10s",
		"--audit-anchor-append-only=false", // temporary state: removable afterwards
		"--cgroup-base", d.cgroup}
	d.cmd = exec.Command(bin, append(args, extra...)...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	go func() {
		d.cmd.Wait()
		close(d.exited)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := d.c.Host(cctx)
		cancel()
		if err == nil {
			return d, nil
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("daemon exited at start:\n%s", benchrun.Tail(d.logPath, 2048))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			d.shutdown()
			return nil, fmt.Errorf("daemon not answering: %v\n%s", err, benchrun.Tail(d.logPath, 2048))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shutdown stops every VM the daemon runs (a daemon that exits leaves its
// VMs running, by design), kills any QEMU of ours that survived, then ends
// the daemon.
func (d *daemon) shutdown() error {
	var errs []error
	select {
	case <-d.exited:
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		vms, err := d.c.ListVMs(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("list vms: %w", err))
		}
		for _, v := range vms {
			if v.State.Active() {
				if _, err := d.c.StopVM(ctx, v.Spec.Name, true, forceStopTimeout); err != nil {
					errs = append(errs, fmt.Errorf("stop %s: %w", v.Spec.Name, err))
				}
			}
		}
		cancel()
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
	}
	// Whatever survived (the daemon died early, a stop failed): a QEMU of
	// ours names our private run directory on its command line.
	if n := d.killLeftovers(); n > 0 {
		errs = append(errs, fmt.Errorf("killed %d QEMU process(es) the daemon had left running", n))
	}
	if n, err := benchrun.RemoveCgroups(d.cgroup); n > 0 || err != nil {
		errs = append(errs, fmt.Errorf("cgroups under %s: killed %d leftover process(es): %v", d.cgroup, n, err))
	}
	return errors.Join(errs...)
}

// killLeftovers SIGKILLs every process whose command line names this
// daemon's run directory, and returns how many it found.
func (d *daemon) killLeftovers() int {
	mark := []byte(filepath.Join(d.dir, "run") + "/")
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && bytes.Contains(b, mark) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
			}
		}
	}
	return n
}

// gone reports an error once the daemon process has exited.
func (d *daemon) gone() error {
	select {
	case <-d.exited:
		return fmt.Errorf("the daemon exited unexpectedly (%v); log tail:\n%s", d.cmd.ProcessState, benchrun.Tail(d.logPath, 1024))
	default:
		return nil
	}
}

// rssMiB reads the daemon's VmRSS.
func (d *daemon) rssMiB() (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return float64(kb) / 1024, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

func (d *daemon) create(ctx context.Context, g guestConfig, name string) error {
	_, err := d.c.CreateVM(ctx, vm.Spec{Name: name, VCPUs: g.vcpus, MemoryMiB: g.memMiB, Kernel: g.kernel,
		Initrd: g.initrd, Cmdline: g.cmdline(name), Accel: g.accel})
	return err
}

// remove force-stops (if active) and deletes a VM.
func (d *daemon) remove(ctx context.Context, name string) error {
	v, err := d.c.GetVM(ctx, name)
	if err != nil {
		return err
	}
	if v.State.Active() {
		if _, err := d.c.StopVM(ctx, name, true, forceStopTimeout); err != nil {
			return fmt.Errorf("stop %s: %w", name, err)
		}
	}
	return d.c.DeleteVM(ctx, name)
}

// bulwarkRunner boots guests through the daemon's API.
type bulwarkRunner struct {
	d      *daemon
	g      guestConfig
	poll   time.Duration
	detect string // "api": poll GET .../console/log; "file": watch the daemon's log file
}

// boot measures from just before POST /vms/{name}/start until the ready line
// shows in GET /vms/{name}/console/log, polled every r.poll (or, with detect
// "file", in the daemon's console log file). The VM must have been created
// (untimed) already; it is stopped and deleted afterwards.
func (r *bulwarkRunner) boot(ctx context.Context, name string) (s sample, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.g.timeout)
	defer cancel()
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		if rerr := r.d.remove(cctx, name); rerr != nil && err == nil {
			err = rerr
		}
	}()
	t0 := time.Now()
	v, err := r.d.c.Action(ctx, name, "start")
	if err != nil {
		return s, fmt.Errorf("bulwark %s: start: %w", name, err)
	}
	s.StartAPI = time.Since(t0)
	if v.State != vm.Running {
		return s, fmt.Errorf("bulwark %s: start left it %s: %s", name, v.State, v.Reason)
	}
	if r.detect == "file" {
		err = watchFile(ctx, r.d.consoleLogPath(name), readyLine(name), r.d.exited)
	} else {
		err = r.waitReady(ctx, name)
	}
	if err != nil {
		return s, fmt.Errorf("bulwark %s: waiting for the ready line: %w", name, err)
	}
	s.Total = time.Since(t0)
	return s, nil
}

// consoleLogPath is where this daemon keeps a VM's console log: an internal
// layout (state-dir/logs/NAME/console.log), read only for the secondary
// "in the daemon's log file" time.
func (d *daemon) consoleLogPath(name string) string {
	return filepath.Join(d.dir, "state", "logs", name, "console.log")
}

// watchFile returns once want is in the file at path. It stats the file
// every millisecond and reads it only when its size changed, so it costs far
// less than polling the API.
func watchFile(ctx context.Context, path string, want []byte, daemonExited <-chan struct{}) error {
	var size int64 = -1
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() != size {
			size = fi.Size()
			if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, want) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-daemonExited:
			return errors.New("the daemon exited unexpectedly")
		case <-time.After(time.Millisecond):
		}
	}
}

func (r *bulwarkRunner) waitReady(ctx context.Context, name string) error {
	want := readyLine(name)
	for {
		b, err := r.d.c.ConsoleLog(ctx, name, 4096)
		if err == nil && bytes.Contains(b, want) {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (console: %q)", ctx.Err(), lastBytes(b, 300))
		}
		if err := r.d.gone(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(r.poll):
		}
	}
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// measureRSS records the daemon's VmRSS idle, with cfg.rssVMs VMs defined,
// and with cfg.rssRunning of them running; it deletes them afterwards.
func measureRSS(ctx context.Context, d *daemon, g guestConfig, cfg config, res *result) (err error) {
	read := func(state string) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(cfg.rssSettle):
		}
		mib, err := d.rssMiB()
		if err != nil {
			return err
		}
		res.RSS = append(res.RSS, rssReading{State: state, MiB: mib})
		return nil
	}
	if err := read("idle, no VMs defined"); err != nil {
		return err
	}
	if cfg.rssVMs == 0 {
		return nil
	}
	var names []string
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for _, n := range names {
			if rerr := d.remove(cctx, n); rerr != nil && err == nil {
				err = rerr
			}
		}
	}()
	for i := range cfg.rssVMs {
		n := fmt.Sprintf("rss-%02d", i+1)
		if err := d.create(ctx, g, n); err != nil {
			return err
		}
		names = append(names, n)
	}
	if err := read(fmt.Sprintf("%d VMs defined, none running", cfg.rssVMs)); err != nil {
		return err
	}
	if cfg.rssRunning == 0 {
		return nil
	}
	r := &bulwarkRunner{d: d, g: g, poll: 20 * time.Millisecond, detect: "api"}
	var wg sync.WaitGroup
	errs := make([]error, cfg.rssRunning)
	for i := range cfg.rssRunning {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bctx, cancel := context.WithTimeout(ctx, g.timeout)
			defer cancel()
			v, err := d.c.Action(bctx, names[i], "start")
			if err == nil && v.State != vm.Running {
				err = fmt.Errorf("start %s left it %s: %s", names[i], v.State, v.Reason)
			}
			if err == nil {
				if err = r.waitReady(bctx, names[i]); err != nil {
					err = fmt.Errorf("%s: waiting for the ready line: %w", names[i], err)
				}
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return read(fmt.Sprintf("%d VMs defined, %d running (guests booted)", cfg.rssVMs, cfg.rssRunning))
}
