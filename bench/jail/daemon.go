package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/benchrun"

	"github.com/bulwark-project/bulwark/internal/client"
	"github.com/bulwark-project/bulwark/internal/image"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// kind is how a daemon runs its VMMs.
type kind string

const (
	jailed   kind = "jailed"
	unjailed kind = "unjailed"
)

// kinds is the order daemons are started in and the first round's boot
// order.
var kinds = [2]kind{jailed, unjailed}

// forceStopTimeout is the smallest timeout the stop API takes; with
// force=true the daemon kills at once anyway.
const forceStopTimeout = 1

// daemon is one private `bulwark serve`: its own socket, state and run
// directories under dir, and its own cgroup base, so that two of them run
// side by side and every process either one starts can be found.
type daemon struct {
	kind       kind
	dir        string
	logPath    string
	cgroupBase string
	c          *client.Client
	cmd        *exec.Cmd
	exited     chan struct{} // closed once cmd.Wait returned
}

func startDaemon(ctx context.Context, k kind, bin, qemuPath, dir string) (*daemon, error) {
	if err := os.Mkdir(dir, 0o711); err != nil {
		return nil, err
	}
	tag := "jail"
	if k == unjailed {
		tag = "nojail"
	}
	d := &daemon{kind: k, dir: dir, logPath: filepath.Join(dir, "daemon.log"),
		cgroupBase: fmt.Sprintf("bulwark-bench-%s-%d", tag, os.Getpid()), exited: make(chan struct{})}
	socket := filepath.Join(dir, "bulwark.sock")
	d.c = client.New(socket)
	logf, err := os.Create(d.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := []string{"serve", "--socket", socket, "--state-dir", filepath.Join(dir, "state"),
		"--run-dir", filepath.Join(dir, "run"), "--cgroup-base", d.cgroupBase, "--qemu", qemuPath,
		"--log-format", "text", "--audit-anchor-append-only=false"} // temporary state: removable afterwards
	if k == unjailed {
		args = append(args, "--unsafe-no-jail")
	}
	d.cmd = exec.Command(bin, args...)
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
		if gerr := d.gone(); gerr != nil {
			d.shutdown()
			return nil, gerr
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			d.shutdown()
			return nil, fmt.Errorf("daemon not answering: %v\n%s", err, benchrun.Tail(d.logPath, 2048))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// gone reports an error once the daemon process has exited.
func (d *daemon) gone() error {
	select {
	case <-d.exited:
		return fmt.Errorf("the %s daemon exited (%v); log tail:\n%s", d.kind, d.cmd.ProcessState, benchrun.Tail(d.logPath, 1024))
	default:
		return nil
	}
}

// shutdown force-stops every VM the daemon runs (a daemon that exits leaves
// its VMs running, by design), ends the daemon, then kills whatever is
// left in its cgroups and removes them.
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
	n, err := benchrun.RemoveCgroups(d.cgroupBase)
	if n > 0 {
		errs = append(errs, fmt.Errorf("killed %d process(es) the daemon had left in cgroup %s", n, d.cgroupBase))
	}
	return errors.Join(append(errs, err)...)
}

// guest is what every benchmark VM is made of.
type guest struct {
	kernel, initrd string
	memMiB         int
	accel          string
	timeout        time.Duration
}

// boot creates the VM name (untimed), then times `vm start` from just
// before the call until the call returns and until the guest's ready line
// is in the daemon's console log file. After settle it reads QEMU's memory,
// and it always force-stops and deletes the VM.
func (d *daemon) boot(ctx context.Context, g guest, name string, settle time.Duration) (s sample, err error) {
	s = sample{Kind: d.kind, Name: name}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	spec := vm.Spec{Name: name, VCPUs: 1, MemoryMiB: g.memMiB, Kernel: g.kernel, Initrd: g.initrd,
		Cmdline: "bulwark.hostname=" + name, Accel: g.accel}
	if _, err := d.c.CreateVM(ctx, spec); err != nil {
		return s, fmt.Errorf("%s %s: create: %w", d.kind, name, err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		if rerr := d.remove(cctx, name); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()

	busy0, err := hostBusy()
	if err != nil {
		return s, err
	}
	t0 := time.Now()
	v, err := d.c.Action(ctx, name, "start")
	if err != nil {
		return s, fmt.Errorf("%s %s: start: %w", d.kind, name, err)
	}
	s.StartMS = ms(time.Since(t0))
	if v.State != vm.Running || v.Runtime.PID <= 0 {
		return s, fmt.Errorf("%s %s: start left it %s (pid %d): %s", d.kind, name, v.State, v.Runtime.PID, v.Reason)
	}
	s.PID, s.Accel = v.Runtime.PID, v.Runtime.Accel
	if err := d.waitReady(ctx, name, s.PID); err != nil {
		return s, fmt.Errorf("%s %s: waiting for the ready line: %w", d.kind, name, err)
	}
	s.ReadyMS = ms(time.Since(t0))
	busy1, err := hostBusy()
	if err != nil {
		return s, err
	}
	qcpu, err := cpuTime(s.PID)
	if err != nil {
		return s, fmt.Errorf("%s %s: QEMU's CPU time: %w", d.kind, name, err)
	}
	s.QEMUCPUMS, s.OtherCPUMS = ms(qcpu), ms(busy1-busy0-qcpu)
	s.Contended = s.OtherCPUMS > contendedShare*s.ReadyMS

	p, err := inspect(s.PID)
	if err != nil {
		return s, fmt.Errorf("%s %s: %w", d.kind, name, err)
	}
	if p.ownMountNS != (d.kind == jailed) {
		return s, fmt.Errorf("%s %s: QEMU (pid %d) in its own mount namespace: %v; the %s daemon is not doing what its name says",
			d.kind, name, s.PID, p.ownMountNS, d.kind)
	}
	s.SeccompFilters = p.seccompFilters
	select {
	case <-ctx.Done():
		return s, ctx.Err()
	case <-time.After(settle):
	}
	m, err := readMemory(s.PID)
	if err != nil {
		return s, fmt.Errorf("%s %s: QEMU's memory: %w", d.kind, name, err)
	}
	s.memory = m
	return s, nil
}

// consoleLogPath is where the daemon keeps a VM's console log. It is an
// internal layout, read here because watching a file costs the daemon
// nothing, where polling the console-log API would load it during the boot.
func (d *daemon) consoleLogPath(name string) string {
	return filepath.Join(d.dir, "state", "logs", name, "console.log")
}

// waitReady returns once the VM's ready line is in its console log file.
// It stats the file every millisecond and reads it only when it grew. It
// gives up early, with the daemon's reason, when QEMU (pid) dies.
func (d *daemon) waitReady(ctx context.Context, name string, pid int) error {
	want := []byte(readyLine(name))
	path := d.consoleLogPath(name)
	var size int64 = -1
	lastAlive := time.Now()
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() != size {
			size = fi.Size()
			if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, want) {
				return nil
			}
		}
		if time.Since(lastAlive) > 100*time.Millisecond {
			lastAlive = time.Now()
			if err := d.gone(); err != nil {
				return err
			}
			if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
				return d.vmDied(name, pid)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; console tail: %q", ctx.Err(), benchrun.Tail(path, 300))
		case <-time.After(time.Millisecond):
		}
	}
}

// vmDied describes a QEMU that exited before the guest was ready, with the
// daemon's recorded reason (a seccomp trap shows as "bad system call").
func (d *daemon) vmDied(name string, pid int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The daemon records the exit a moment after the process is gone.
	for {
		v, err := d.c.GetVM(ctx, name)
		if err == nil && !v.State.Active() {
			return fmt.Errorf("QEMU (pid %d) exited before the ready line: VM %s: %s", pid, v.State, v.Reason)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("QEMU (pid %d) exited before the ready line", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readyLine is what the guest image's init prints once it is up.
func readyLine(name string) string {
	return image.ReadyMarker + " hostname=" + name
}

// remove force-stops (if active) and deletes a VM.
func (d *daemon) remove(ctx context.Context, name string) error {
	v, err := d.c.GetVM(ctx, name)
	if err != nil {
		return fmt.Errorf("%s %s: %w", d.kind, name, err)
	}
	if v.State.Active() {
		if _, err := d.c.StopVM(ctx, name, true, forceStopTimeout); err != nil {
			return fmt.Errorf("%s %s: stop: %w", d.kind, name, err)
		}
	}
	if err := d.c.DeleteVM(ctx, name); err != nil {
		return fmt.Errorf("%s %s: delete: %w", d.kind, name, err)
	}
	return nil
}
