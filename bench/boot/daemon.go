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

	"github.com/bulwark-project/bulwark/internal/client"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// daemon is one `bulwark serve` with its own state, run directory and socket.
type daemon struct {
	dir     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	c       *client.Client
}

func startDaemon(ctx context.Context, bin, qemuPath, dir string) (*daemon, error) {
	if err := os.Mkdir(dir, 0o711); err != nil {
		return nil, err
	}
	d := &daemon{dir: dir, logPath: filepath.Join(dir, "daemon.log"), exited: make(chan struct{})}
	socket := filepath.Join(dir, "bulwark.sock")
	d.c = client.New(socket)
	logf, err := os.Create(d.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	d.cmd = exec.Command(bin, "serve", "--socket", socket, "--state-dir", filepath.Join(dir, "state"),
		"--run-dir", filepath.Join(dir, "run"), "--qemu", qemuPath, "--log-format", "text", "--stop-timeout", "10s")
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
			return nil, fmt.Errorf("daemon exited at start:\n%s", tail(d.logPath, 2048))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			d.shutdown()
			return nil, fmt.Errorf("daemon not answering: %v\n%s", err, tail(d.logPath, 2048))
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
				if _, err := d.c.StopVM(ctx, v.Spec.Name, true, 0); err != nil {
					errs = append(errs, fmt.Errorf("stop %s: %w", v.Spec.Name, err))
				}
			}
		}
		// Re-read: PIDs of anything still alive, for the fallback below.
		if vms2, err := d.c.ListVMs(ctx); err == nil {
			vms = vms2
		}
		cancel()
		for _, v := range vms {
			if v.Runtime.PID > 0 {
				d.killIfOurs(v.Runtime.PID)
			}
		}
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
	}
	return errors.Join(errs...)
}

// killIfOurs SIGKILLs pid if its command line names our run directory.
func (d *daemon) killIfOurs(pid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err == nil && bytes.Contains(b, []byte(d.dir)) {
		syscall.Kill(pid, syscall.SIGKILL)
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
		if _, err := d.c.StopVM(ctx, name, true, 0); err != nil {
			return fmt.Errorf("stop %s: %w", name, err)
		}
	}
	return d.c.DeleteVM(ctx, name)
}

// bulwarkRunner boots guests through the daemon's API.
type bulwarkRunner struct {
	d    *daemon
	g    guestConfig
	poll time.Duration
}

// boot measures from just before POST /vms/{name}/start until the ready line
// shows in GET /vms/{name}/console/log, polled every r.poll. The VM must have
// been created (untimed) already; it is stopped and deleted afterwards.
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
	if err := r.waitReady(ctx, name); err != nil {
		return s, err
	}
	s.Total = time.Since(t0)
	return s, nil
}

func (r *bulwarkRunner) waitReady(ctx context.Context, name string) error {
	want := readyLine(name)
	for {
		b, err := r.d.c.ConsoleLog(ctx, name, 4096)
		if err == nil && bytes.Contains(b, want) {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("bulwark %s: waiting for the ready line: %w (console: %q)", name, ctx.Err(), lastBytes(b, 300))
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
	r := &bulwarkRunner{d: d, g: g, poll: 20 * time.Millisecond}
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
				err = r.waitReady(bctx, names[i])
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
