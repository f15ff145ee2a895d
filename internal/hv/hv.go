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
	Spec   vm.Spec
	RunDir string // private per-VM directory, created by the caller (0700)
	Accel  Accel  // resolved accelerator
	// UID and GID the hypervisor process runs as; -1 keeps the daemon's own.
	UID, GID int
	// NICRemotes[i], if set, is the switch port socket NIC i sends frames
	// to; it overrides Spec.NICs[i].Socket.
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
}

// Backend launches and re-attaches hypervisor processes.
type Backend interface {
	Name() string
	// Launch starts the VM and returns once it is running (or failed).
	Launch(ctx context.Context, cfg LaunchConfig) (Instance, error)
	// Attach re-connects to a VM launched by an earlier daemon. It fails with
	// ErrGone if the process no longer exists.
	Attach(ctx context.Context, h Handle) (Instance, error)
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

// ErrGone says a re-attach found no live hypervisor process.
var ErrGone = os.ErrProcessDone
