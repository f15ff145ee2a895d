package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/benchrun"

	"github.com/bulwark-project/bulwark/internal/api"
	"github.com/bulwark-project/bulwark/internal/client"
	"github.com/bulwark-project/bulwark/internal/storage"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// daemon is one `bulwark serve` on temporary state.
type daemon struct {
	dir, log   string
	cgroupBase string // this daemon's alone (benchrun.CgroupBase)
	cmd        *exec.Cmd
	exited     chan struct{}
	c          *client.Client
}

func startDaemon(ctx context.Context, bin, dir string) (*daemon, error) {
	if err := os.Mkdir(dir, 0o711); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "bulwark.sock")
	d := &daemon{dir: dir, log: filepath.Join(dir, "daemon.log"), c: client.New(sock), exited: make(chan struct{}),
		cgroupBase: benchrun.CgroupBase("disk")}
	logf, err := os.Create(d.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	d.cmd = exec.Command(bin, "serve", "--socket", sock, "--state-dir", filepath.Join(dir, "state"),
		"--run-dir", filepath.Join(dir, "run"), "--cgroup-base", d.cgroupBase, "--log-format", "text", "--stop-timeout", "10s",
		"--audit-anchor-append-only=false") // temporary state: removable afterwards
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := d.c.Host(ctx); err == nil {
			return d, nil
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("daemon exited at start:\n%s", benchrun.Tail(d.log, 2048))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			d.shutdown()
			return nil, fmt.Errorf("daemon not answering:\n%s", benchrun.Tail(d.log, 2048))
		}
	}
}

// poolDir is the default pool's directory (docs/storage.md, Layout).
func (d *daemon) poolDir() string { return filepath.Join(d.dir, "state", "storage", "default") }

// createVolume makes a thin volume in the default pool through the API
// and returns its file.
func (d *daemon) createVolume(ctx context.Context, name, format string, size int64) (string, error) {
	var v storage.Volume
	req := api.CreateVolumeRequest{Name: name, Format: format, Size: size}
	if err := d.c.Do(ctx, "POST", "/api/v1/storage/pools/default/volumes", req, &v); err != nil {
		return "", fmt.Errorf("volume create %s (%s, %d bytes): %w", name, format, size, err)
	}
	p := filepath.Join(d.poolDir(), v.FileName())
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("volume %s: %w", v.Ref(), err)
	}
	return p, nil
}

// boot starts the VM, waits for the guest script's done line (or the VM
// ending, or the timeout), force-stops it and returns the console log and
// the host's wall time between the script's start and done lines.
func (d *daemon) boot(ctx context.Context, name string, boot int, timeout time.Duration) (log string, hostSpan time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		if serr := d.stop(name); serr != nil && err == nil {
			err = serr
		}
	}()
	if _, err := d.c.Action(ctx, name, "start"); err != nil {
		return "", 0, fmt.Errorf("start %s: %w", name, err)
	}
	start, done := fmt.Sprintf("%s %d start ", tag, boot), fmt.Sprintf("%s %d done ", tag, boot)
	var sawStart time.Time
	for i := 0; ; i++ {
		b, lerr := d.c.ConsoleLog(ctx, name, 1<<20)
		now := time.Now()
		log = string(b)
		if lerr == nil && sawStart.IsZero() && strings.Contains(log, start) {
			sawStart = now
		}
		if lerr == nil && strings.Contains(log, done) {
			if !sawStart.IsZero() {
				hostSpan = now.Sub(sawStart)
			}
			return log, hostSpan, nil
		}
		if i%20 == 19 { // about every second: did the VM end?
			if v, err := d.c.GetVM(ctx, name); err == nil && !v.State.Active() {
				return log, 0, fmt.Errorf("boot %d: VM %s ended (%s) before the script finished; console tail:\n%s", boot, name, v.State, tail(log, 2048))
			}
		}
		select {
		case <-ctx.Done():
			return log, 0, fmt.Errorf("boot %d: no done line after %s; console tail:\n%s", boot, timeout, tail(log, 2048))
		case <-d.exited:
			return log, 0, fmt.Errorf("the daemon exited; log tail:\n%s", benchrun.Tail(d.log, 2048))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop force-stops a VM and waits until it is no longer active, so its
// QEMU has exited and written everything before the host touches the
// volume files.
func (d *daemon) stop(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		v, err := d.c.GetVM(ctx, name)
		if err != nil {
			return fmt.Errorf("stop %s: %w", name, err)
		}
		if !v.State.Active() {
			return nil
		}
		if v.State == vm.Running || v.State == vm.Paused {
			if _, err := d.c.StopVM(ctx, name, true, 1); err != nil {
				return fmt.Errorf("stop %s: %w", name, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop %s: still %s", name, v.State)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// shutdown stops every VM (a daemon that exits leaves its VMs running, by
// design), then ends the daemon.
func (d *daemon) shutdown() error {
	var errs []error
	select {
	case <-d.exited:
		benchrun.RemoveCgroups(d.cgroupBase)
		return errors.New("the daemon had exited")
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	vms, err := d.c.ListVMs(ctx)
	cancel()
	if err != nil {
		errs = append(errs, err)
	}
	for _, v := range vms {
		if err := d.stop(v.Spec.Name); err != nil {
			errs = append(errs, err)
		}
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
	if n, err := benchrun.RemoveCgroups(d.cgroupBase); n > 0 || err != nil {
		errs = append(errs, fmt.Errorf("cgroup %s: killed %d process(es) left in it: %v", d.cgroupBase, n, err))
	}
	return errors.Join(errs...)
}

func tail(s string, n int) string {
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}
