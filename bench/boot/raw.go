package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/benchrun"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/hv/qemu"
	"github.com/bulwark-project/bulwark/internal/image"
)

// guestConfig is what both kinds of boot share.
type guestConfig struct {
	accel          string
	vcpus, memMiB  int
	kernel, initrd string
	timeout        time.Duration
}

// cmdline is the operator part of the kernel command line; qemu.Args adds
// console=ttyS0 and, under TCG, tsc_early_khz for both kinds alike.
func (g guestConfig) cmdline(name string) string { return "bulwark.hostname=" + name }

func readyLine(name string) []byte { return []byte(image.ReadyMarker + " hostname=" + name) }

// rawRunner boots guests with the QEMU command line Bulwark's backend would
// build (internal/hv/qemu Args.Build with the same inputs: machine, sandbox,
// accelerator, file-backed RAM, kernel and initrd passed as inherited
// descriptors, QMP and console on Unix sockets), started directly by this
// process. It runs QEMU as root and skips the daemon's bookkeeping: no
// database writes, no uid switch, no QMP handshake.
type rawRunner struct {
	qemu string
	root string
	g    guestConfig
	uid  int // -1: run QEMU as root
}

// boot measures from just before exec to reading the ready line on the
// console socket, then kills QEMU.
func (r *rawRunner) boot(ctx context.Context, name string) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, r.g.timeout)
	defer cancel()
	dir := filepath.Join(r.root, name)
	if err := os.RemoveAll(dir); err != nil {
		return sample{}, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return sample{}, err
	}
	defer os.RemoveAll(dir)
	// As the backend does: guest RAM file created 0600 before QEMU runs.
	mem := filepath.Join(dir, "mem")
	mf, err := os.OpenFile(mem, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return sample{}, err
	}
	mf.Close()
	if r.uid >= 0 {
		for _, p := range []string{dir, mem} {
			if err := os.Chown(p, r.uid, r.uid); err != nil {
				return sample{}, err
			}
		}
	}
	kf, err := os.Open(r.g.kernel)
	if err != nil {
		return sample{}, err
	}
	defer kf.Close()
	inf, err := os.Open(r.g.initrd)
	if err != nil {
		return sample{}, err
	}
	defer inf.Close()
	consoleSock := filepath.Join(dir, "console.sock")
	args := qemu.Args{
		Name: name, Accel: r.g.accel, VCPUs: r.g.vcpus, MemoryMiB: r.g.memMiB, MemPath: mem,
		Kernel: "/proc/self/fd/3", Initrd: "/proc/self/fd/4", // ExtraFiles[0], [1]
		Cmdline: r.g.cmdline(name), TSCkHz: hv.HostTSCkHz(),
		QMPSocket: filepath.Join(dir, "qmp.sock"), ConsoleSocket: consoleSock,
	}
	logf, err := os.Create(filepath.Join(dir, "qemu.log"))
	if err != nil {
		return sample{}, err
	}
	defer logf.Close()
	cmd := exec.Command(r.qemu, args.Build()...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{kf, inf}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if r.uid >= 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.uid), Groups: []uint32{}}
	}

	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return sample{}, fmt.Errorf("start qemu: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	fail := func(err error) (sample, error) {
		select {
		case <-exited:
			err = fmt.Errorf("%w (qemu exited: %s)", err, benchrun.Tail(logf.Name(), 1024))
		default:
		}
		return sample{}, fmt.Errorf("raw %s: %w", name, err)
	}

	// Output written before we connect is dropped by QEMU (wait=off), but
	// the marker comes seconds later; the socket appears within tens of ms.
	var conn net.Conn
	for {
		conn, err = net.Dial("unix", consoleSock)
		if err == nil {
			break
		}
		select {
		case <-exited:
			return fail(errors.New("no console socket"))
		case <-ctx.Done():
			return fail(fmt.Errorf("console socket: %w", ctx.Err()))
		case <-time.After(time.Millisecond):
		}
	}
	defer conn.Close()
	stopRead := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stopRead()

	want := readyLine(name)
	var seen []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			// Keep only what could still hold the start of the line, so each
			// (often one-byte) read costs a scan of about len(want) bytes.
			if len(seen) >= len(want) {
				seen = append(seen[:0], seen[len(seen)-len(want)+1:]...)
			}
			seen = append(seen, buf[:n]...)
			if bytes.Contains(seen, want) {
				return sample{Total: time.Since(t0)}, nil
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return fail(fmt.Errorf("reading console before the ready line: %w", err))
		}
	}
}
