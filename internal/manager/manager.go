// Package manager drives VMs through their lifecycle on a hypervisor backend,
// recording every state change in the store and supervising each hypervisor
// process (crash detection, console logging, re-attach after a restart).
package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/cgroup"
	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Store is what the manager needs from the database (internal/store).
type Store interface {
	CreateVM(ctx context.Context, spec vm.Spec) (*vm.VM, error)
	GetVM(ctx context.Context, name string) (*vm.VM, error)
	ListVMs(ctx context.Context) ([]*vm.VM, error)
	SetState(ctx context.Context, name string, st vm.State, reason string, rt vm.Runtime) error
	SetSpec(ctx context.Context, name string, spec vm.Spec) error
	DeleteVM(ctx context.Context, name string) error
}

// Config holds the host-side settings of the manager.
type Config struct {
	RunRoot string // per-VM run directories live here (root-owned 0700, as is each VM dir)
	LogRoot string // per-VM console logs live here
	// UIDBase: when the daemon is root, VM n runs as uid/gid UIDBase+id.
	// Zero keeps the daemon's own uid (development only).
	UIDBase       int
	ConsoleLogMax int64
	ConsoleKeep   int
	StopTimeout   time.Duration
	// MemOverheadMiB is added to a VM's RAM for its cgroup's hard memory
	// cap (the hypervisor's own code, TCG translation cache, device
	// buffers); 0: DefaultMemOverheadMiB.
	MemOverheadMiB int
	// PidsMax is each VM's pids.max (hypervisor threads); 0: DefaultPidsMax.
	PidsMax int
}

// Defaults of the per-VM cgroup limits (docs/jail.md).
const (
	DefaultMemOverheadMiB = 256
	DefaultPidsMax        = 128
)

// Cgroups is what the manager needs from the host's cgroups: one group per
// VM holding every process of that VM, below the groups of its resource
// pools, with the controls of cgroup.Limits. Implemented over
// internal/cgroup by CgroupSet, whose docs give the paths.
type Cgroups interface {
	// Prepare makes the VM's group afresh at rel (relative to the VM base:
	// "NAME", or "pool.P/NAME" below pool P's group, which must exist),
	// killing whatever an earlier run left in any group of the VM, writes
	// l, and returns the function that places the hypervisor's process in
	// it, and the controls the host cannot enforce. An error leaves no
	// group: the VM must not start.
	Prepare(ctx context.Context, vm, rel string, l cgroup.Limits) (place func(pid int) error, unenforced []string, err error)
	// ApplyPool creates or updates the group of the pool at rel ("" is the
	// root pool, "pool.P/pool.Q" pool Q in P) with l.
	ApplyPool(rel string, l cgroup.Limits) (unenforced []string, err error)
	// RemovePool removes the group of an empty pool.
	RemovePool(rel string) error
	// OOMKills is how many processes of the VM's group the kernel killed
	// for exceeding the memory cap since Prepare.
	OOMKills(vm string) uint64
	// Release kills whatever is left in the VM's group and removes it; it
	// returns the PIDs it had to kill.
	Release(ctx context.Context, vm string) ([]int, error)
	// List names the VMs that have a group on this host.
	List() ([]string, error)
}

// Network is what the manager needs from the virtual switch: NIC checks at
// definition time, and ports that exist before a hypervisor starts and go
// away when it ends.
type Network interface {
	// PrepareNICs validates NICs against networks and groups and fills in
	// missing addresses; errors are *vm.FieldError.
	PrepareNICs(ctx context.Context, spec *vm.Spec) error
	// Attach creates the VM's ports and returns per NIC the socket QEMU
	// sends to ("" for NICs not on a network).
	Attach(vmName string, uid int, runDir string, nics []vm.NIC) ([]string, error)
	Detach(vmName string)
}

// Manager drives VMs through their lifecycle. Every state change is written
// to the store before the call returns, so the store is the truth after a
// crash of the daemon; the live instances are only a cache of connections.
type Manager struct {
	store   Store
	backend hv.Backend
	accel   func(request string) (hv.Accel, error)
	cfg     Config
	log     *slog.Logger

	metrics metrics
	net     Network // nil: NICs on networks are refused
	cg      Cgroups // nil: no per-VM cgroups (tests of pure logic only)
	// imageCheck, when set, vets a VM from an image before each start.
	imageCheck func(vm.Spec) error
	startGate  func(name string) error
	// liveResources applies pool and resource changes to running VMs.
	liveResources LiveResources
	// admission decides VM starts against the resource pools.
	admission Admission
	// imageRetarget resolves a change of a VM's image (Update).
	imageRetarget func(old vm.Spec, new *vm.Spec) error
	createMu      sync.Mutex // Create: address assignment and insert are one step

	closing   chan struct{} // closed by Close: supervisors stop recording
	closeOnce sync.Once

	mu      sync.Mutex // guards entries
	entries map[string]*entry

	vols Volumes // nil: disks on volumes are refused

	measurer LaunchMeasurer // nil: VM launches are not measured

	console  ConsoleSink // nil: output only goes to the log
	conMu    sync.Mutex  // guards consoles
	consoles map[string]net.Conn
}

// ConsoleSink receives each running VM's console output (the console
// broker). Output must not block and must not keep p.
type ConsoleSink interface {
	Output(vm string, p []byte)
	VMStopped(vm string)
}

// entry serialises operator operations on one VM and holds its live instance.
type entry struct {
	opMu sync.Mutex // one operation at a time per VM

	// wmu orders runtime state writes against the supervisor's final write:
	// after an instance's Done is closed only its supervisor writes state.
	wmu   sync.Mutex
	inst  hv.Instance
	super chan struct{} // closed when the supervisor has recorded the exit
}

// NewManager wires a manager. accel resolves "auto|kvm|tcg" for this host.
func New(st Store, b hv.Backend, accel func(string) (hv.Accel, error), cfg Config, log *slog.Logger) (*Manager, error) {
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 30 * time.Second
	}
	if cfg.MemOverheadMiB <= 0 {
		cfg.MemOverheadMiB = DefaultMemOverheadMiB
	}
	if cfg.PidsMax <= 0 {
		cfg.PidsMax = DefaultPidsMax
	}
	for _, d := range []string{cfg.RunRoot, cfg.LogRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	// Hypervisors get descriptors, never paths: no VM uid needs to reach
	// a run directory, so none may.
	if err := os.Chmod(cfg.RunRoot, 0o700); err != nil {
		return nil, err
	}
	return &Manager{store: st, backend: b, accel: accel, cfg: cfg, log: log, metrics: newMetrics(),
		closing: make(chan struct{}), entries: map[string]*entry{}}, nil
}

func (m *Manager) entry(name string) *entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[name]
	if e == nil {
		e = &entry{}
		m.entries[name] = e
	}
	return e
}

// SetCgroups gives the manager the host's cgroups. Call it before Recover.
func (m *Manager) SetCgroups(c Cgroups) { m.cg = c }

// SetImageCheck installs the check run before starting a VM defined from
// a registry image: that its kernel and initrd are the image's, by digest.
func (m *Manager) SetImageCheck(f func(vm.Spec) error) { m.imageCheck = f }

// SetStartGate installs a check that may refuse any VM start (remote
// attestation refuses starts on a host a verifier marked untrusted).
func (m *Manager) SetStartGate(f func(name string) error) { m.startGate = f }

// LaunchMeasurer records VM launches for measured launch (internal/measure).
// MeasureLaunch measures a start's definition, command line and disks (the
// opened volume chains, which it must not keep) and returns the function
// the backend calls on each boot file it passes to the hypervisor. It
// blocks on the TPM.
type LaunchMeasurer interface {
	MeasureLaunch(spec vm.Spec, volumes [][]hv.DiskFile) (func(role string, f *os.File) error, error)
}

// SetMeasurer measures every VM start through l. A start whose measurement
// fails does not happen.
func (m *Manager) SetMeasurer(l LaunchMeasurer) { m.measurer = l }

// SetNetwork connects the manager to the virtual switch.
func (m *Manager) SetNetwork(n Network) { m.net = n }

// SetConsoleSink sends console output to c as well as to the log. Call it
// before Recover.
func (m *Manager) SetConsoleSink(c ConsoleSink) { m.console = c }

// ErrNoConsole is returned when a VM's console stream is not connected.
var ErrNoConsole = errors.New("the VM's console is not connected (is it running?)")

// consoleWriteTimeout bounds a keystroke write: a guest that stops reading
// its serial line fills QEMU's buffer and must not stall the caller.
const consoleWriteTimeout = 2 * time.Second

// ConsoleWrite sends input to a running VM's serial console.
func (m *Manager) ConsoleWrite(name string, p []byte) error {
	m.conMu.Lock()
	c := m.consoles[name]
	m.conMu.Unlock()
	if c == nil {
		return ErrNoConsole
	}
	c.SetWriteDeadline(time.Now().Add(consoleWriteTimeout))
	if _, err := c.Write(p); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errors.New("the guest is not reading its console")
		}
		return err
	}
	return nil
}

func (m *Manager) setConsoleConn(name string, c net.Conn) {
	m.conMu.Lock()
	defer m.conMu.Unlock()
	if m.consoles == nil {
		m.consoles = map[string]net.Conn{}
	}
	if c == nil {
		delete(m.consoles, name)
	} else {
		m.consoles[name] = c
	}
}

// Create validates and stores a new VM definition.
func (m *Manager) Create(ctx context.Context, spec vm.Spec) (*vm.VM, error) {
	spec.Normalize()
	if err := spec.Validate(os.Stat); err != nil {
		return nil, err
	}
	if err := m.CheckVolumes(spec); err != nil {
		return nil, err
	}
	m.createMu.Lock()
	defer m.createMu.Unlock()
	if err := m.prepareNICs(ctx, &spec); err != nil {
		return nil, err
	}
	return m.store.CreateVM(ctx, spec)
}

func (m *Manager) prepareNICs(ctx context.Context, spec *vm.Spec) error {
	if m.net != nil {
		return m.net.PrepareNICs(ctx, spec)
	}
	for i, n := range spec.NICs {
		if n.Network != "" {
			return &vm.FieldError{Field: fmt.Sprintf("nics[%d].network", i), Msg: "no virtual switch in this daemon"}
		}
	}
	return nil
}

// attach creates the VM's switch ports.
func (m *Manager) attach(name string, rt vm.Runtime, nics []vm.NIC) ([]string, error) {
	if m.net == nil {
		return nil, nil
	}
	return m.net.Attach(name, rt.UID, rt.RunDir, nics)
}

func (m *Manager) detach(name string) {
	if m.net != nil {
		m.net.Detach(name)
	}
}

// Get returns one VM.
func (m *Manager) Get(ctx context.Context, name string) (*vm.VM, error) {
	return m.store.GetVM(ctx, name)
}

// ErrNotRunning is returned for an operation that needs a live VM.
var ErrNotRunning = errors.New("the VM is not running")

// Registers reads a running VM's vCPU registers (for introspection).
func (m *Manager) Registers(ctx context.Context, name string) ([]hv.Registers, error) {
	e := m.entry(name)
	e.wmu.Lock()
	inst := e.inst
	e.wmu.Unlock()
	if inst == nil {
		return nil, ErrNotRunning
	}
	rr, ok := inst.(hv.RegisterReader)
	if !ok {
		return nil, errors.New("this hypervisor backend cannot report vCPU registers")
	}
	return rr.Registers(ctx)
}

// OpenMemory returns a new read-only descriptor of a running VM's RAM and
// its size in bytes; the caller closes it. The descriptor comes from the
// daemon's own reference to the guest's memfd, never from a path.
func (m *Manager) OpenMemory(ctx context.Context, name string) (*os.File, uint64, error) {
	v, err := m.store.GetVM(ctx, name)
	if err != nil {
		return nil, 0, err
	}
	e := m.entry(name)
	e.wmu.Lock()
	inst := e.inst
	e.wmu.Unlock()
	if inst == nil || !v.State.Active() {
		return nil, 0, ErrNotRunning
	}
	mo, ok := inst.(hv.MemoryOpener)
	if !ok {
		return nil, 0, errors.New("this hypervisor backend cannot share guest memory")
	}
	f, err := mo.OpenMemory()
	if err != nil {
		return nil, 0, err
	}
	return f, uint64(v.Spec.MemoryMiB) << 20, nil
}

// SetConsolePolicy replaces a VM's console policy (nil: the defaults). It
// applies to sessions opened afterwards, running or not.
func (m *Manager) SetConsolePolicy(ctx context.Context, name string, p *vm.ConsolePolicy) (*vm.VM, error) {
	if p != nil {
		if err := p.Validate(); err != nil {
			return nil, err
		}
	}
	e := m.entry(name)
	e.opMu.Lock()
	defer e.opMu.Unlock()
	v, err := m.store.GetVM(ctx, name)
	if err != nil {
		return nil, err
	}
	v.Spec.Console = p
	if err := m.store.SetSpec(ctx, name, v.Spec); err != nil {
		return nil, err
	}
	return m.store.GetVM(ctx, name)
}

// List returns all VMs.
func (m *Manager) List(ctx context.Context) ([]*vm.VM, error) { return m.store.ListVMs(ctx) }

func (m *Manager) runDir(name string) string { return filepath.Join(m.cfg.RunRoot, name) }

// ConsoleLogPath is where a VM's serial output is kept.
func (m *Manager) ConsoleLogPath(name string) string {
	return filepath.Join(m.cfg.LogRoot, name, "console.log")
}

// Start launches a defined, stopped or crashed VM and returns once it runs.
func (m *Manager) Start(ctx context.Context, name string) (*vm.VM, error) {
	e := m.entry(name)
	e.opMu.Lock()
	defer e.opMu.Unlock()
	v, err := m.store.GetVM(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := vm.CheckOp(v.State, vm.OpStart); err != nil {
		return nil, err
	}
	if m.startGate != nil {
		if err := m.startGate(name); err != nil {
			return nil, fmt.Errorf("vm %q: %w", name, err)
		}
	}
	// Resource pools: the VM's reservations must fit before anything is
	// set up; admitted, it holds them while it starts.
	var placement *Placement
	if m.admission != nil {
		pl, release, err := m.admission(ctx, v.Spec)
		if err != nil {
			m.log.Warn("vm start refused: resource pool admission", "vm", name, "pool", v.Spec.Pool, "reason", err)
			return nil, fmt.Errorf("vm %q: %w", name, err)
		}
		defer release()
		placement = &pl
	}
	// Re-validate: a kernel file may have vanished since the VM was defined.
	if err := v.Spec.Validate(os.Stat); err != nil {
		return nil, err
	}
	// A VM from an image boots only the image's own files.
	if m.imageCheck != nil && v.Spec.Image != "" {
		if err := m.imageCheck(v.Spec); err != nil {
			m.log.Warn("vm start refused: image check", "vm", name, "image", v.Spec.Image, "err", err)
			return nil, fmt.Errorf("vm %q: %w", name, err)
		}
	}
	// Disks on volumes: the chains are opened (and their headers checked
	// against the records) before anything else is set up.
	volumes, err := m.openVolumes(ctx, v.Spec)
	if err != nil {
		return nil, err
	}
	defer closeVolumes(volumes)
	choice, err := m.accel(v.Spec.Accel)
	if err != nil {
		return nil, &vm.FieldError{Field: "accel", Msg: err.Error()}
	}
	var measure func(string, *os.File) error
	if m.measurer != nil {
		if measure, err = m.measurer.MeasureLaunch(v.Spec, volumes); err != nil {
			m.log.Error("vm start refused: measured launch failed", "vm", name, "err", err)
			return nil, fmt.Errorf("vm %q: measured launch: %w", name, err)
		}
	}
	rt := vm.Runtime{ID: v.Runtime.ID, Accel: choice.Name, AccelWhy: choice.Reason, RunDir: m.runDir(name), UID: -1}
	if m.cfg.UIDBase > 0 && os.Geteuid() == 0 {
		rt.UID = m.cfg.UIDBase + int(v.Runtime.ID)
	}
	// Ports exist (and are filtered) before the hypervisor can send a frame.
	remotes, err := m.attach(name, rt, v.Spec.NICs)
	if err != nil {
		return nil, fmt.Errorf("vm %q: network: %w", name, err)
	}
	var place func(int) error
	if m.cg != nil {
		memBytes := int64(v.Spec.MemoryMiB+m.cfg.MemOverheadMiB) << 20
		rel, lim := name, cgroup.Limits{MemoryMax: memBytes, PidsMax: m.cfg.PidsMax}
		if placement != nil {
			// The pool groups above the VM first, parents first: a VM
			// never runs in a pool whose controls were not written.
			for _, pg := range placement.Pools {
				un, err := m.cg.ApplyPool(pg.Rel, pg.Limits)
				if err != nil {
					m.detach(name)
					m.log.Error("vm start refused: pool cgroup", "vm", name, "pool_group", pg.Rel, "err", err)
					return nil, fmt.Errorf("vm %q: cgroup of its pool (%s): %w", name, pg.Rel, err)
				}
				for _, n := range un {
					m.log.Warn("pool cgroup control not enforced on this host", "vm", name, "pool_group", pg.Rel, "control", n)
				}
			}
			rel, lim = placement.Rel, placement.Limits
			lim.PidsMax = m.cfg.PidsMax
			if lim.MemoryMax == 0 {
				lim.MemoryMax = memBytes
			}
		}
		var unenforced []string
		if place, unenforced, err = m.cg.Prepare(ctx, name, rel, lim); err != nil {
			m.detach(name)
			return nil, fmt.Errorf("vm %q: cgroup: %w", name, err)
		}
		for _, n := range unenforced {
			m.log.Warn("vm cgroup control not enforced on this host", "vm", name, "control", n)
		}
	}
	if err := m.store.SetState(ctx, name, vm.Starting, "", rt); err != nil {
		m.detach(name)
		return nil, err
	}
	inst, err := m.backend.Launch(ctx, hv.LaunchConfig{Spec: v.Spec, RunDir: rt.RunDir, Accel: choice, UID: rt.UID, GID: rt.UID,
		NICRemotes: remotes, Place: place, PidsMax: m.cfg.PidsMax, Volumes: volumes, Measure: measure})
	if err != nil {
		m.detach(name)
		m.releaseCgroup(name)
		m.log.Warn("vm start failed", "vm", name, "err", err)
		if serr := m.store.SetState(context.Background(), name, vm.Crashed, err.Error(), rt); serr != nil {
			return nil, serr
		}
		return m.store.GetVM(ctx, name)
	}
	h := inst.Handle()
	rt.PID, rt.StartTime = h.PID, h.StartTime
	if err := m.store.SetState(ctx, name, vm.Running, "", rt); err != nil {
		inst.Kill(context.Background())
		return nil, err
	}
	m.metrics.starts.Inc()
	m.log.Info("vm started", "vm", name, "pid", rt.PID, "accel", rt.Accel, "accel_reason", rt.AccelWhy)
	m.supervise(name, e, inst)
	return m.store.GetVM(ctx, name)
}

// live returns the running instance of a VM or a conflict error.
func (m *Manager) live(ctx context.Context, name string, e *entry, op vm.Op) (*vm.VM, hv.Instance, error) {
	v, err := m.store.GetVM(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	if err := vm.CheckOp(v.State, op); err != nil {
		return nil, nil, err
	}
	e.wmu.Lock()
	inst := e.inst
	e.wmu.Unlock()
	if inst == nil {
		return nil, nil, fmt.Errorf("vm %q is %s but has no live hypervisor connection", name, v.State)
	}
	return v, inst, nil
}

// setLive writes a state for a live instance unless it has already exited,
// in which case the supervisor's record stands.
func (m *Manager) setLive(ctx context.Context, e *entry, inst hv.Instance, v *vm.VM, st vm.State, reason string) error {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	select {
	case <-inst.Done():
		return errors.New("hypervisor exited during the operation")
	default:
	}
	return m.store.SetState(ctx, v.Spec.Name, st, reason, v.Runtime)
}

// Pause freezes the guest's vCPUs.
func (m *Manager) Pause(ctx context.Context, name string) (*vm.VM, error) {
	return m.pauseResume(ctx, name, vm.OpPause, vm.Paused, "paused")
}

// Resume continues a paused guest.
func (m *Manager) Resume(ctx context.Context, name string) (*vm.VM, error) {
	return m.pauseResume(ctx, name, vm.OpResume, vm.Running, "running")
}

func (m *Manager) pauseResume(ctx context.Context, name string, op vm.Op, to vm.State, want string) (*vm.VM, error) {
	e := m.entry(name)
	e.opMu.Lock()
	defer e.opMu.Unlock()
	v, inst, err := m.live(ctx, name, e, op)
	if err != nil {
		return nil, err
	}
	if op == vm.OpPause {
		err = inst.Pause(ctx)
	} else {
		err = inst.Resume(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("vm %q: %s: %w", name, op, err)
	}
	if got, err := inst.Status(ctx); err != nil || got != want {
		return nil, fmt.Errorf("vm %q: %s: hypervisor reports %q (%v)", name, op, got, err)
	}
	if err := m.setLive(ctx, e, inst, v, to, ""); err != nil {
		return nil, err
	}
	return m.store.GetVM(ctx, name)
}

// Stop shuts a VM down: an ACPI power-off request first, then, after
// timeout (or at once with force), the hypervisor process is killed.
func (m *Manager) Stop(ctx context.Context, name string, force bool, timeout time.Duration) (*vm.VM, error) {
	e := m.entry(name)
	e.opMu.Lock()
	defer e.opMu.Unlock()
	v, inst, err := m.live(ctx, name, e, vm.OpStop)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = m.cfg.StopTimeout
	}
	if err := m.setLive(ctx, e, inst, v, vm.Stopping, ""); err == nil && !force {
		if v.State == vm.Paused {
			// A paused guest cannot see the power button.
			_ = inst.Resume(ctx)
		}
		if err := inst.Shutdown(ctx); err != nil {
			m.log.Warn("graceful shutdown request failed", "vm", name, "err", err)
		}
	}
	if !force {
		select {
		case <-inst.Done():
		case <-time.After(timeout):
			m.log.Warn("vm did not power off in time, killing", "vm", name, "timeout", timeout)
		case <-ctx.Done():
		}
	}
	if force || !isClosed(inst.Done()) {
		if err := inst.Kill(context.Background()); err != nil {
			return nil, fmt.Errorf("vm %q: kill: %w", name, err)
		}
	}
	e.wmu.Lock()
	sup := e.super
	e.wmu.Unlock()
	if sup != nil {
		<-sup
	}
	return m.store.GetVM(context.Background(), name)
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Delete removes a VM that is not running, with its run directory and logs.
// A VM that has snapshots is refused (refuseIfSnapshots).
func (m *Manager) Delete(ctx context.Context, name string) error {
	e := m.entry(name)
	e.opMu.Lock()
	defer e.opMu.Unlock()
	v, err := m.store.GetVM(ctx, name)
	if err != nil {
		return err
	}
	if err := vm.CheckOp(v.State, vm.OpDelete); err != nil {
		return err
	}
	if err := m.refuseIfSnapshots(ctx, name); err != nil {
		return err
	}
	if err := m.store.DeleteVM(ctx, name); err != nil {
		return err
	}
	m.releaseCgroup(name)
	os.RemoveAll(m.runDir(name))
	os.RemoveAll(filepath.Dir(m.ConsoleLogPath(name)))
	m.mu.Lock()
	delete(m.entries, name)
	m.mu.Unlock()
	return nil
}

// releaseCgroup kills whatever is left in a VM's cgroup and removes it.
func (m *Manager) releaseCgroup(name string) {
	if m.cg == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pids, err := m.cg.Release(ctx, name)
	if len(pids) > 0 {
		m.log.Warn("killed processes left in the VM's cgroup", "vm", name, "pids", pids)
	}
	if err != nil {
		m.log.Error("release vm cgroup", "vm", name, "err", err)
	}
}

// ConsoleKeep is how many rotated console log files are kept.
func (m *Manager) ConsoleKeep() int { return m.cfg.ConsoleKeep }
