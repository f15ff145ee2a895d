package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/internal/hv"
)

// Files in a VM's run directory.
const (
	qmpSock     = "qmp.sock"
	consoleSock = "console.sock"
	memFile     = "mem"
	logFile     = "qemu.log"
)

// startTimeout bounds how long QEMU may take to open its QMP socket.
const startTimeout = 30 * time.Second

// Backend launches VMs with a QEMU binary.
type Backend struct {
	Binary string // path or name of qemu-system-x86_64
}

// New returns a backend using binary ("" = qemu-system-x86_64 on PATH).
func New(binary string) *Backend {
	if binary == "" {
		binary = "qemu-system-x86_64"
	}
	return &Backend{Binary: binary}
}

// Name implements hv.Backend.
func (b *Backend) Name() string { return "qemu" }

// MemPath is the guest RAM file of a VM's run directory; introspection maps it.
func MemPath(runDir string) string { return filepath.Join(runDir, memFile) }

// ConsoleSocket is the serial console socket of a VM's run directory.
func ConsoleSocket(runDir string) string { return filepath.Join(runDir, consoleSock) }

// Launch implements hv.Backend.
func (b *Backend) Launch(ctx context.Context, cfg hv.LaunchConfig) (hv.Instance, error) {
	bin, err := exec.LookPath(b.Binary)
	if err != nil {
		return nil, fmt.Errorf("qemu binary: %w", err)
	}
	if err := prepareRunDir(cfg); err != nil {
		return nil, err
	}
	inst, err := b.launch(ctx, bin, cfg)
	if err != nil {
		// No guest RAM file outlives a failed start.
		os.Remove(MemPath(cfg.RunDir))
	}
	return inst, err
}

func (b *Backend) launch(ctx context.Context, bin string, cfg hv.LaunchConfig) (hv.Instance, error) {
	files, args, err := openInputs(cfg)
	defer closeAll(files)
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(cfg.RunDir, logFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args.Build()...)
	cmd.Dir = cfg.RunDir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = files
	// Setsid: QEMU outlives a daemon restart and gets no terminal signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if cfg.UID >= 0 && os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(cfg.UID), Gid: uint32(cfg.GID), Groups: []uint32{}}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	inst := newInstance(cmd.Process.Pid, cfg.RunDir)
	inst.handle.StartTime, _ = procStartTime(inst.handle.PID)
	go inst.reap(cmd)
	if err := inst.connect(ctx); err != nil {
		inst.Kill(context.Background())
		<-inst.Done()
		return nil, fmt.Errorf("qemu failed to start: %s", inst.Exit().Message)
	}
	return inst, nil
}

// Attach implements hv.Backend.
func (b *Backend) Attach(ctx context.Context, h hv.Handle) (hv.Instance, error) {
	st, err := procStartTime(h.PID)
	if err != nil || st != h.StartTime {
		return nil, hv.ErrGone
	}
	// The PID and start time match; the command line naming our run
	// directory rules out the remaining corner of a recycled PID.
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", h.PID))
	if !strings.Contains(string(cmdline), filepath.Join(h.RunDir, qmpSock)) {
		return nil, hv.ErrGone
	}
	inst := newInstance(h.PID, h.RunDir)
	inst.handle.StartTime = st
	fd, err := pidfdOpen(h.PID)
	if err != nil {
		return nil, fmt.Errorf("attach pid %d: %w", h.PID, err)
	}
	go inst.watchPidfd(fd)
	if err := inst.connect(ctx); err != nil {
		inst.Detach()
		return nil, fmt.Errorf("attach pid %d: %w", h.PID, err)
	}
	return inst, nil
}

func prepareRunDir(cfg hv.LaunchConfig) error {
	if err := os.MkdirAll(cfg.RunDir, 0o700); err != nil {
		return err
	}
	for _, n := range []string{qmpSock, consoleSock, memFile} {
		if err := os.Remove(filepath.Join(cfg.RunDir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	for i := range cfg.Spec.NICs {
		os.Remove(filepath.Join(cfg.RunDir, fmt.Sprintf("net%d.sock", i)))
	}
	// Guest RAM: created here so it is 0600 from the first moment (QEMU would
	// create it 0644).
	mf, err := os.OpenFile(MemPath(cfg.RunDir), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("guest memory file: %w", err)
	}
	mf.Close()
	if cfg.UID >= 0 && os.Geteuid() == 0 {
		for _, p := range []string{cfg.RunDir, MemPath(cfg.RunDir)} {
			if err := os.Chown(p, cfg.UID, cfg.GID); err != nil {
				return err
			}
		}
	}
	return os.Chmod(cfg.RunDir, 0o700)
}

// openInputs opens kernel, initrd and disks with the daemon's rights and
// returns the QEMU arguments that refer to them through inherited
// descriptors (ExtraFiles[i] is fd 3+i in the child).
func openInputs(cfg hv.LaunchConfig) ([]*os.File, Args, error) {
	s := cfg.Spec
	a := Args{
		Name: s.Name, Accel: cfg.Accel.Name, VCPUs: s.VCPUs, MemoryMiB: s.MemoryMiB,
		MemPath: MemPath(cfg.RunDir), Cmdline: s.Cmdline, TSCkHz: hostTSC(),
		QMPSocket: filepath.Join(cfg.RunDir, qmpSock), ConsoleSocket: ConsoleSocket(cfg.RunDir),
	}
	var files []*os.File
	add := func(path string, flag int) (int, error) {
		f, err := os.OpenFile(path, flag|syscall.O_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		files = append(files, f)
		return 2 + len(files), nil
	}
	fd, err := add(s.Kernel, os.O_RDONLY)
	if err != nil {
		return files, a, fmt.Errorf("kernel: %w", err)
	}
	a.Kernel = fmt.Sprintf("/proc/self/fd/%d", fd)
	if s.Initrd != "" {
		if fd, err = add(s.Initrd, os.O_RDONLY); err != nil {
			return files, a, fmt.Errorf("initrd: %w", err)
		}
		a.Initrd = fmt.Sprintf("/proc/self/fd/%d", fd)
	}
	for i, d := range s.Disks {
		flag := os.O_RDWR
		if d.ReadOnly {
			flag = os.O_RDONLY
		}
		if fd, err = add(d.Path, flag); err != nil {
			return files, a, fmt.Errorf("disks[%d]: %w", i, err)
		}
		a.FDSets = append(a.FDSets, FDSet{FD: fd, Set: i + 1})
		a.Disks = append(a.Disks, DiskArg{Path: fmt.Sprintf("/dev/fdset/%d", i+1), ReadOnly: d.ReadOnly})
	}
	for i, n := range s.NICs {
		remote := n.Socket
		if i < len(cfg.NICRemotes) && cfg.NICRemotes[i] != "" {
			remote = cfg.NICRemotes[i]
		}
		if remote == "" {
			// Unattached: frames go to a path nobody binds and are dropped.
			remote = filepath.Join(cfg.RunDir, fmt.Sprintf("net%d.unattached", i))
		}
		a.NICs = append(a.NICs, NICArg{MAC: n.MAC, Local: filepath.Join(cfg.RunDir, fmt.Sprintf("net%d.sock", i)), Remote: remote})
	}
	return files, a, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// logTail returns the last lines of QEMU's own output, for error messages.
func logTail(runDir string) string {
	f, err := os.Open(filepath.Join(runDir, logFile))
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 2048
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		f.Seek(fi.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, max))
	return strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
}

var (
	tscOnce sync.Once
	tscKHz  int
)

func hostTSC() int {
	tscOnce.Do(func() { tscKHz = hv.HostTSCkHz() })
	return tscKHz
}

// DialConsole connects to a run directory's console socket.
func dialConsole(ctx context.Context, runDir string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", ConsoleSocket(runDir))
}
