// Package hv defines what Bulwark needs from a hypervisor backend, whatever it
// is (hardened QEMU today, Bulwark's own KVM VMM later), and the accelerator
// choice shared by backends.
package hv

import (
	"context"
	"net"
	"os"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// LaunchConfig is everything a backend needs to start one VM.
type LaunchConfig struct {
	Spec vm.Spec
	// RunDir is the VM's host-side directory: root-owned 0700, re-created
	// empty by the backend at each start. The hypervisor process never
	// sees it; it receives descriptors of what the daemon makes there.
	RunDir string
	Accel  Accel // resolved accelerator
	// UID and GID the hypervisor process runs as; -1 keeps the daemon's own.
	UID, GID int
	// NICRemotes[i], if set, is the switch port socket NIC i is connected
	// to ("" leaves the NIC unattached).
	NICRemotes []string
	// Place, if set, puts the hypervisor's process into the VM's cgroup
	// before it runs any code of its own.
	Place func(pid int) error
	// PidsMax bounds the hypervisor's threads (RLIMIT_NPROC of its uid,
	// as well as the cgroup's pids.max set by the caller); 0: default.
	PidsMax int
	// Volumes[i], for a disk on a storage volume, is that disk's image
	// chain opened by the daemon, base first and top last. The backend
	// passes these descriptors on and opens nothing for such a disk. The
	// caller keeps the files and closes them once Launch has returned.
	Volumes [][]DiskFile
	// Measure, if set, is called with each boot file the backend is about
	// to pass to the hypervisor, by role ("kernel", "initrd"), on the very
	// descriptor passed. It must not move the file's offset (read with
	// ReadAt). If it fails the VM does not start.
	Measure func(role string, f *os.File) error
}

// DiskFile is one opened layer of a disk's image chain.
type DiskFile struct {
	File     *os.File
	Format   string // "raw" or "qcow2"
	ReadOnly bool   // opened O_RDONLY; true for every layer below the top
	// MaxSize is how large the file may grow (the hypervisor's
	// RLIMIT_FSIZE must allow it): the virtual size for raw, more for
	// qcow2 metadata.
	MaxSize int64
	// SHA256 is, for a read-only layer, the SHA-256 (hex) of the file's
	// bytes that storage's records vouch for; "" when none. Measured
	// launch extends PCR 12 with it; nothing hashes the disk at start.
	SHA256 string
}

// AttachConfig is what a re-attach needs besides the handle: the VM's RAM
// size, to verify the guest memory descriptor taken back from the
// hypervisor, and the switch sockets its NICs are re-connected to.
type AttachConfig struct {
	Spec       vm.Spec
	NICRemotes []string
}

// Handle identifies a running hypervisor process well enough to find it again
// after the daemon restarts.
type Handle struct {
	PID       int
	StartTime uint64 // guards against PID reuse
	RunDir    string
}

// Exit describes how a hypervisor process ended.
type Exit struct {
	// Requested is true when the guest or the operator asked for the shutdown
	// (QMP SHUTDOWN event or quit), false for an unexpected death.
	Requested bool
	// Status is a human description: "exit status 1", "killed by signal 9",
	// or "unknown (not our child)" for a re-attached process.
	Status string
	// Message is the tail of the hypervisor's own error output, if any.
	Message string
	// Reason, if set, is why the daemon ended the process itself (its log
	// grew past the cap, ...): it explains the exit better than Status.
	Reason string
}

// Backend launches and re-attaches hypervisor processes.
type Backend interface {
	Name() string
	// Launch starts the VM and returns once it is running (or failed).
	Launch(ctx context.Context, cfg LaunchConfig) (Instance, error)
	// Attach re-connects to a VM launched by an earlier daemon. It fails with
	// ErrGone if the process no longer exists.
	Attach(ctx context.Context, h Handle, cfg AttachConfig) (Instance, error)
}

// Instance is one running VM. Methods may block on the hypervisor's control
// channel and honour ctx.
type Instance interface {
	Handle() Handle
	// Status asks the hypervisor: "running", "paused", or another backend word.
	Status(ctx context.Context) (string, error)
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	// Shutdown asks the guest to power off (ACPI power button); it returns
	// without waiting for the guest.
	Shutdown(ctx context.Context) error
	// Kill ends the hypervisor process at once.
	Kill(ctx context.Context) error
	// DialConsole connects to the serial console byte stream. The caller owns
	// the connection. Bytes read are guest-controlled.
	DialConsole(ctx context.Context) (net.Conn, error)
	// Done is closed when the hypervisor process has exited; Exit is valid then.
	Done() <-chan struct{}
	Exit() Exit
	// Detach releases the daemon's connections without stopping the VM.
	Detach()
}

// MemoryOpener is implemented by instances whose guest RAM the daemon can
// hand to introspection.
type MemoryOpener interface {
	// OpenMemory returns a new read-only descriptor of guest RAM; the
	// caller closes it.
	OpenMemory() (*os.File, error)
}

// DiskThrottler is implemented by instances whose disk limits can change
// while the VM runs (QEMU: its throttle group, through QMP).
type DiskThrottler interface {
	// SetDiskLimits replaces the VM's disk bandwidth and IOPS limits,
	// which hold for all its disks together; 0 lifts a limit. Shares are
	// not the hypervisor's (they are the cgroup's io weight). It blocks on
	// the hypervisor's control channel and honours ctx; on error the
	// limits are as they were.
	SetDiskLimits(ctx context.Context, d vm.DiskResources) error
}

// ErrGone says a re-attach found no live hypervisor process.
var ErrGone = os.ErrProcessDone
