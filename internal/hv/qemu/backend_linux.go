package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/jail"
	"github.com/bulwark-project/bulwark/internal/safefs"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Files in a VM's run directory. The directory is root-owned 0700 and
// re-created empty at every start: QEMU never sees it (it gets
// descriptors), so nothing in it can have been planted by a VM.
const (
	qmpSock     = "qmp.sock"
	consoleSock = "console.sock"
	logFile     = "qemu.log"
)

// Descriptor numbers inside QEMU (jail.Start passes files from 3 on, in
// this order): guest RAM, QMP listener, console listener, one connected
// datagram socket per NIC, then kernel, initrd and disks. A re-attaching
// daemon takes the RAM and NIC descriptors back from QEMU by number.
const (
	fdMem     = 3
	fdQMP     = 4
	fdConsole = 5
	fdNIC0    = 6
)

// startTimeout bounds how long QEMU may take to answer on QMP.
const startTimeout = 30 * time.Second

// Limits of the jailed QEMU (documented in docs/jail.md).
const (
	// DefaultPidsMax bounds QEMU's threads: main loop, RCU, one per vCPU,
	// its worker pool (up to 64) and a margin.
	DefaultPidsMax = 128
	noFileLimit    = 1024
	// MaxLog caps QEMU's own log (stderr): past it the VM is killed. It is
	// also RLIMIT_FSIZE unless a disk is larger.
	MaxLog = 16 << 20
	// logCheckInterval is how often a running VM's log size is checked.
	logCheckInterval = 2 * time.Second
)

// Backend launches VMs with a QEMU binary.
type Backend struct {
	Binary string // path or name of qemu-system-x86_64
	// JailRoot is the mount point of each VM's private root (see
	// internal/jail). "" runs QEMU unjailed: development and the boot
	// benchmark's comparison only.
	JailRoot string

	// binds caches the library walk (jail.ProgramBinds) per program set
	// and binary identity, so that a start does not re-read some fifty
	// ELF files; a replaced binary (new inode or mtime) is walked again.
	bindsMu sync.Mutex
	binds   map[string]programBinds
}

type programBinds struct {
	binds []jail.Bind
	links []jail.Symlink
}

// New returns a backend using binary ("" = qemu-system-x86_64 on PATH)
// that jails every VM under jailRoot ("" = no jail).
func New(binary, jailRoot string) *Backend {
	if binary == "" {
		binary = "qemu-system-x86_64"
	}
	return &Backend{Binary: binary, JailRoot: jailRoot}
}

// Name implements hv.Backend.
func (b *Backend) Name() string { return "qemu" }

// ConsoleSocket is the serial console socket of a VM's run directory.
func ConsoleSocket(runDir string) string { return filepath.Join(runDir, consoleSock) }

// Launch implements hv.Backend.
func (b *Backend) Launch(ctx context.Context, cfg hv.LaunchConfig) (hv.Instance, error) {
	bin, err := exec.LookPath(b.Binary)
	if err != nil {
		return nil, fmt.Errorf("qemu binary: %w", err)
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return nil, err
	}
	if err := prepareRunDir(cfg.RunDir); err != nil {
		return nil, err
	}
	in, err := openInputs(cfg)
	defer in.close()
	if err != nil {
		return nil, err
	}
	if err := in.addFirmware(b.Binary); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(cfg.RunDir, logFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	argv := in.args.Build()
	var cmd *exec.Cmd
	if b.JailRoot != "" {
		spec, err := b.jailSpec(bin, argv, cfg, in)
		if err != nil {
			return nil, err
		}
		cmd, err = jail.Start(spec, in.files, logf, logf, cfg.Place)
		if err != nil {
			return nil, err
		}
	} else if cmd, err = startUnjailed(bin, argv, cfg, in.files, logf); err != nil {
		return nil, err
	}
	mem, err := in.mem.dup()
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	inst := newInstance(cmd.Process.Pid, cfg.RunDir, mem)
	inst.handle.StartTime, _ = procStartTime(inst.handle.PID)
	go inst.reap(cmd)
	if err := inst.connect(ctx); err != nil {
		inst.Kill(context.Background())
		<-inst.Done()
		ex := inst.Exit()
		msg := err.Error()
		if ex.Message != "" {
			msg = lastLogLine(ex.Message)
		}
		return nil, fmt.Errorf("qemu failed to start (%s): %s", ex.Status, msg)
	}
	go inst.watchLog()
	return inst, nil
}

// lastLogLine is the last non-empty line of a log tail, at most 256 bytes.
func lastLogLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 256 {
		s = s[len(s)-256:]
	}
	return strings.ToValidUTF8(s, "?")
}

// jailSpec confines QEMU: only its binary, libraries, TCG module, the
// device nodes it needs, its own /proc. No firmware file: QEMU gets the
// BIOS by descriptor (addFirmware), so nothing of its data directory is
// in the jail.
func (b *Backend) jailSpec(bin string, argv []string, cfg hv.LaunchConfig, in *inputs) (jail.Spec, error) {
	prefix := filepath.Dir(filepath.Dir(bin)) // /usr for /usr/bin/qemu-system-x86_64
	progs := []string{bin}
	if cfg.Accel.Name == "tcg" {
		// Debian builds TCG as a loadable module.
		mod := filepath.Join(prefix, "lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so")
		if _, err := os.Stat(mod); err == nil {
			progs = append(progs, mod)
		}
	}
	binds, links, err := b.programBinds(progs)
	if err != nil {
		return jail.Spec{}, err
	}
	devs := []string{"/dev/null", "/dev/zero", "/dev/urandom"}
	if cfg.Accel.Name == "kvm" {
		devs = append(devs, "/dev/kvm")
	}
	for _, d := range devs {
		binds = append(binds, jail.Bind{Path: d, Device: true})
	}
	pids := cfg.PidsMax
	if pids <= 0 {
		pids = DefaultPidsMax
	}
	uid, gid := cfg.UID, cfg.GID
	if uid <= 0 || gid <= 0 {
		return jail.Spec{}, errors.New("a jailed VM needs its own uid (the daemon must run as root with --vm-uid-base)")
	}
	return jail.Spec{
		Name: "vm-" + cfg.Spec.Name, Root: b.JailRoot, Path: bin, Args: append([]string{bin}, argv...),
		Env:   []string{"PATH=/usr/bin:/bin"},
		Binds: binds, Symlinks: links, Proc: true, UID: uid, GID: gid,
		// RLIMIT_NPROC counts the VM uid's threads, which are this VM's
		// alone; it sits a little above pids.max so that the cgroup is the
		// limit a fork bomb meets (and its pids.events counts it).
		Rlimits: jail.Rlimits{NoFile: noFileLimit, NProc: uint64(pids + 32), FSize: in.fsize},
		Seccomp: seccompFilter(cfg.Accel.Name),
	}, nil
}

// seccompFilter names the allow list: ioctl is only for KVM (a TCG QEMU
// makes none).
func seccompFilter(accel string) string {
	if accel == "kvm" {
		return "vmm+kvm"
	}
	return "vmm"
}

// programBinds is jail.ProgramBinds, cached by the programs' identities.
// The returned slice is a copy the caller may append to.
func (b *Backend) programBinds(progs []string) ([]jail.Bind, []jail.Symlink, error) {
	key := ""
	for _, p := range progs {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return nil, nil, fmt.Errorf("jail: %s: %w", p, err)
		}
		key += fmt.Sprintf("%s:%d:%d:%d;", p, st.Dev, st.Ino, st.Mtim.Nano())
	}
	b.bindsMu.Lock()
	defer b.bindsMu.Unlock()
	pb, ok := b.binds[key]
	if !ok {
		binds, links, err := jail.ProgramBinds(progs...)
		if err != nil {
			return nil, nil, err
		}
		if b.binds == nil {
			b.binds = map[string]programBinds{}
		}
		pb = programBinds{binds: binds, links: links}
		b.binds[key] = pb
	}
	return slices.Clone(pb.binds), pb.links, nil
}

// startUnjailed runs QEMU as the VM's uid without a jail (development and
// benchmarks only).
func startUnjailed(bin string, argv []string, cfg hv.LaunchConfig, files []*os.File, logf *os.File) (*exec.Cmd, error) {
	cmd := exec.Command(bin, argv...)
	cmd.Dir = "/"
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
	if cfg.Place != nil {
		if err := cfg.Place(cmd.Process.Pid); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, err
		}
	}
	return cmd, nil
}

// Attach implements hv.Backend.
func (b *Backend) Attach(ctx context.Context, h hv.Handle, cfg hv.AttachConfig) (hv.Instance, error) {
	st, err := procStartTime(h.PID)
	if err != nil || st != h.StartTime {
		return nil, hv.ErrGone
	}
	// The PID and start time match; the command line naming the VM rules
	// out the remaining corner of a recycled PID.
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", h.PID))
	if !strings.Contains(string(cmdline), "\x00guest="+cfg.Spec.Name+",") {
		return nil, hv.ErrGone
	}
	// Only a run directory that is root's alone is dialled into (one made
	// by an older daemon belonged to the VM's uid).
	if err := checkRunDir(h.RunDir); err != nil {
		return nil, fmt.Errorf("attach pid %d: %w", h.PID, err)
	}
	fd, err := pidfdOpen(h.PID)
	if err != nil {
		return nil, fmt.Errorf("attach pid %d: %w", h.PID, err)
	}
	mem, err := takeBackMemory(fd, uint64(cfg.Spec.MemoryMiB)<<20)
	if err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("attach pid %d: %w", h.PID, err)
	}
	for i, remote := range cfg.NICRemotes {
		if remote == "" {
			continue
		}
		if err := reconnectNIC(fd, fdNIC0+i, filepath.Join(h.RunDir, nicSock(i)), remote); err != nil {
			syscall.Close(fd)
			mem.Close()
			return nil, fmt.Errorf("attach pid %d: nic %d: %w", h.PID, i, err)
		}
	}
	inst := newInstance(h.PID, h.RunDir, mem)
	inst.handle.StartTime = st
	go inst.watchPidfd(fd)
	if err := inst.connect(ctx); err != nil {
		inst.Detach()
		return nil, fmt.Errorf("attach pid %d: %w", h.PID, err)
	}
	go inst.watchLog()
	return inst, nil
}

func nicSock(i int) string { return fmt.Sprintf("net%d.sock", i) }

// prepareRunDir re-creates the VM's run directory empty, root-owned 0700.
// Whatever an earlier run left there is removed without following links.
func prepareRunDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	return nil
}

// checkRunDir accepts only a real directory owned by root with mode 0700.
func checkRunDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 || st.Mode&0o777 != 0o700 {
		return fmt.Errorf("run directory %s is not root's alone (mode %o, uid %d)", dir, st.Mode, st.Uid)
	}
	return nil
}

// inputs are the descriptors handed to QEMU and the arguments naming them.
type inputs struct {
	files []*os.File // ExtraFiles order: fd 3, 4, ...
	args  Args
	mem   memfd
	fsize uint64 // RLIMIT_FSIZE: at least MaxLog and every writable disk
}

func (in *inputs) close() {
	for _, f := range in.files {
		f.Close()
	}
}

// openInputs makes what QEMU gets: guest RAM, the QMP and console
// listeners and the NIC sockets (all in the root-owned run directory),
// kernel, initrd and disks opened with the daemon's rights.
func openInputs(cfg hv.LaunchConfig) (*inputs, error) {
	s := cfg.Spec
	in := &inputs{fsize: MaxLog}
	in.args = Args{
		Name: s.Name, Accel: cfg.Accel.Name, VCPUs: s.VCPUs, MemoryMiB: s.MemoryMiB,
		MemPath: fmt.Sprintf("/proc/self/fd/%d", fdMem), Cmdline: s.Cmdline, TSCkHz: hostTSC(),
		QMPFD: fdQMP, ConsoleFD: fdConsole,
	}
	if s.Resources != nil {
		l, err := DiskLimitsOf(s.Resources.Disk)
		if err != nil {
			return in, err
		}
		in.args.DiskLimits = l
	}
	add := func(f *os.File) int {
		in.files = append(in.files, f)
		return 2 + len(in.files)
	}
	var err error
	if in.mem, err = newMemfd(s.Name, uint64(s.MemoryMiB)<<20); err != nil {
		return in, err
	}
	add(in.mem.f)
	for _, name := range []string{qmpSock, consoleSock} {
		f, err := listenFile(filepath.Join(cfg.RunDir, name))
		if err != nil {
			return in, err
		}
		add(f)
	}
	for i, n := range s.NICs {
		remote := ""
		if i < len(cfg.NICRemotes) {
			remote = cfg.NICRemotes[i]
		}
		f, err := nicSocket(filepath.Join(cfg.RunDir, nicSock(i)), remote)
		if err != nil {
			return in, fmt.Errorf("nics[%d]: %w", i, err)
		}
		in.args.NICs = append(in.args.NICs, NICArg{MAC: n.MAC, FD: add(f)})
	}
	open := func(path string, flag int) (int, error) {
		f, err := os.OpenFile(path, flag|syscall.O_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		return add(f), nil
	}
	// boot opens a boot file and measures the descriptor QEMU will get.
	boot := func(role, path string) (string, error) {
		fd, err := open(path, os.O_RDONLY)
		if err != nil {
			return "", fmt.Errorf("%s: %w", role, err)
		}
		if cfg.Measure != nil {
			if err := cfg.Measure(role, in.files[len(in.files)-1]); err != nil {
				return "", fmt.Errorf("%s: measured launch: %w", role, err)
			}
		}
		return fmt.Sprintf("/proc/self/fd/%d", fd), nil
	}
	if in.args.Kernel, err = boot("kernel", s.Kernel); err != nil {
		return in, err
	}
	if s.Initrd != "" {
		if in.args.Initrd, err = boot("initrd", s.Initrd); err != nil {
			return in, err
		}
	}
	var fd int
	// fdset gives fd its own -add-fd set and returns the path naming it.
	fdset := func(fd int) string {
		set := len(in.args.FDSets) + 1
		in.args.FDSets = append(in.args.FDSets, FDSet{FD: fd, Set: set})
		return fmt.Sprintf("/dev/fdset/%d", set)
	}
	for i, d := range s.Disks {
		var chain []hv.DiskFile
		if i < len(cfg.Volumes) {
			chain = cfg.Volumes[i]
		}
		if d.Volume != "" || len(chain) > 0 {
			arg, err := in.volumeDisk(d, chain, add, fdset)
			if err != nil {
				return in, fmt.Errorf("disks[%d]: volume %s: %w", i, d.Volume, err)
			}
			in.args.Disks = append(in.args.Disks, arg)
			continue
		}
		flag := os.O_RDWR
		if d.ReadOnly {
			flag = os.O_RDONLY
		}
		if fd, err = open(d.Path, flag); err != nil {
			return in, fmt.Errorf("disks[%d]: %w", i, err)
		}
		if fi, err := in.files[len(in.files)-1].Stat(); err == nil && !d.ReadOnly && uint64(fi.Size()) > in.fsize {
			in.fsize = uint64(fi.Size())
		}
		in.args.Disks = append(in.args.Disks, DiskArg{Path: fdset(fd), ReadOnly: d.ReadOnly})
	}
	return in, nil
}

// addFirmware passes the BIOS, opened once per daemon and measured at its
// start (PinnedFirmware), as a descriptor of its own: -bios
// /proc/self/fd/N. A file changed in place since is refused.
func (in *inputs) addFirmware(binary string) error {
	fw, err := PinnedFirmware(binary)
	if err != nil {
		return err
	}
	for _, f := range fw {
		if f.Name != BIOSName {
			return fmt.Errorf("qemu firmware %s: no option to pass it", f.Name)
		}
		if err := f.Check(); err != nil {
			return err
		}
		d, err := dupFile(f.File)
		if err != nil {
			return err
		}
		in.files = append(in.files, d)
		in.args.BIOS = fmt.Sprintf("/proc/self/fd/%d", 2+len(in.files))
	}
	return nil
}

// volumeDisk passes a disk's chain, opened by the daemon, as explicit
// layers: each file is duplicated into QEMU's descriptor table and named
// by its own fd set. The chain must be what the disk asks for: only the
// top may be writable, and only if the disk is; a raw layer is a leaf.
func (in *inputs) volumeDisk(d vm.Disk, chain []hv.DiskFile, add func(*os.File) int, fdset func(int) string) (DiskArg, error) {
	if len(chain) == 0 {
		return DiskArg{}, errors.New("not opened by the daemon")
	}
	var arg DiskArg
	for j, l := range chain {
		top := j == len(chain)-1
		switch {
		case l.File == nil:
			return arg, fmt.Errorf("layer %d: no file", j)
		case l.Format != "raw" && l.Format != "qcow2":
			return arg, fmt.Errorf("layer %d: format %q", j, l.Format)
		case j > 0 && chain[j].Format != "qcow2":
			return arg, fmt.Errorf("layer %d: a %s image cannot have a backing file", j, l.Format)
		case !top && !l.ReadOnly, top && l.ReadOnly != d.ReadOnly:
			return arg, fmt.Errorf("layer %d: read-only is %v, want %v", j, l.ReadOnly, !top || d.ReadOnly)
		}
		f, err := dupFile(l.File)
		if err != nil {
			return arg, err
		}
		path := fdset(add(f))
		if !top {
			arg.Backing = append(arg.Backing, DiskLayer{Path: path, Format: l.Format})
			continue
		}
		arg.Path, arg.Format, arg.ReadOnly = path, l.Format, l.ReadOnly
		if !l.ReadOnly && l.MaxSize > 0 && uint64(l.MaxSize) > in.fsize {
			in.fsize = uint64(l.MaxSize)
		}
	}
	return arg, nil
}

// dupFile returns a second descriptor (close-on-exec) of f, owned by the
// caller, so that the backend closes its own copies and the daemon its.
func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup %s: %w", f.Name(), err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// listenFile binds a stream socket (0600) and returns its listening
// descriptor for QEMU; the daemon dials the path later.
func listenFile(path string) (*os.File, error) {
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false)
	defer ln.Close()
	return ln.File()
}

// nicSocket binds QEMU's datagram socket in the run directory (the switch
// sends there) and connects it to the switch port; an unattached NIC gets
// an unconnected socket whose frames go nowhere.
func nicSocket(local, remote string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), local)
	if remote == "" {
		return f, nil
	}
	old := syscall.Umask(0o177)
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: local})
	syscall.Umask(old)
	if err == nil {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: remote})
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	// Room for bursts towards the switch.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20)
	return f, nil
}

// logTail returns the last lines of QEMU's own output, for error messages.
// The log is in the root-owned run directory and is read through safefs
// all the same: no symlink, FIFO, device or hard link is followed, the
// open does not block, and at most 2 KiB (the end) is read.
func logTail(runDir string) string {
	d, err := safefs.OpenDir(runDir)
	if err != nil {
		return ""
	}
	defer d.Close()
	b, err := d.ReadFileTail(logFile, 2048)
	if err != nil {
		return ""
	}
	// The log is the hypervisor's (hostile) output and ends up in the VM's
	// crash reason: printable text only.
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r == '\n' || (r >= ' ' && r != 0x7f && !(r >= 0x80 && r < 0xa0)) {
			return r
		}
		return '?'
	}, strings.ToValidUTF8(string(b), "?")))
}

// logSize is the size of QEMU's log (0 if unreadable).
func logSize(runDir string) int64 {
	var st unix.Stat_t
	if err := unix.Fstatat(unix.AT_FDCWD, filepath.Join(runDir, logFile), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0
	}
	return st.Size
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
