package monitor

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Source is what the daemon knows about a running VM (the manager).
type Source interface {
	Get(ctx context.Context, name string) (*vm.VM, error)
	Registers(ctx context.Context, name string) ([]hv.Registers, error)
	// OpenMemory returns a read-only descriptor of a running VM's RAM and
	// its size in bytes; the caller closes it.
	OpenMemory(ctx context.Context, name string) (*os.File, uint64, error)
}

// Gateway turns a request about a VM into a monitor call: it reads the
// registers, opens the RAM file, the kernel image and the initramfs (if the VM has one) read-only and passes
// them to the monitor process.
type Gateway struct {
	Proc *Process
	Src  Source

	mu      sync.Mutex
	queried map[string]string // vm → generation the monitor holds
}

// Sweep tells the monitor to drop VMs that stopped or restarted since it
// last looked at them: its mapping would otherwise keep a stopped guest's
// RAM (and secrets) alive after the daemon deleted the file.
func (g *Gateway) Sweep(ctx context.Context) {
	g.mu.Lock()
	held := make(map[string]string, len(g.queried))
	for k, v := range g.queried {
		held[k] = v
	}
	g.mu.Unlock()
	for name, gen := range held {
		v, err := g.Src.Get(ctx, name)
		if err == nil && v.State.Active() && generation(v) == gen {
			continue
		}
		if g.Proc.Call(ctx, Request{Op: "forget", VM: name}, nil, nil) == nil {
			g.mu.Lock()
			if g.queried[name] == gen {
				delete(g.queried, name)
			}
			g.mu.Unlock()
		}
	}
}

func generation(v *vm.VM) string { return fmt.Sprintf("%d-%d", v.Runtime.PID, v.Runtime.StartTime) }

// Query runs op on the VM and decodes the result into out.
func (g *Gateway) Query(ctx context.Context, name, op string, out any) error {
	v, err := g.Src.Get(ctx, name)
	if err != nil {
		return err
	}
	regs, err := g.Src.Registers(ctx, name)
	if err != nil {
		// CR3 0: paging is off (firmware, boot loader), a boot state and
		// not a failure to report as one.
		if strings.Contains(err.Error(), "has no CR3") {
			return fmt.Errorf("the guest kernel is not up yet (the vCPU has no page tables: firmware or boot loader); try again once it has booted")
		}
		return fmt.Errorf("vCPU registers: %w", err)
	}
	// Read-only: the monitor gets no write access to guest RAM.
	ram, size, err := g.Src.OpenMemory(ctx, name)
	if err != nil {
		return fmt.Errorf("guest RAM: %w", err)
	}
	defer ram.Close()
	kern, err := os.Open(v.Spec.Kernel)
	if err != nil {
		return fmt.Errorf("kernel image: %w", err)
	}
	defer kern.Close()
	files := []*os.File{ram, kern}
	// The initramfs the VM booted carries the modules it may load: the
	// monitor verifies loaded modules against it.
	if v.Spec.Initrd != "" {
		initrd, err := os.Open(v.Spec.Initrd)
		if err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
		defer initrd.Close()
		files = append(files, initrd)
	}
	req := Request{Op: op, VM: name, Gen: generation(v), RAMSize: size, Regs: regs, Kernel: v.Spec.Kernel}
	g.mu.Lock()
	if g.queried == nil {
		g.queried = map[string]string{}
	}
	g.queried[name] = req.Gen
	g.mu.Unlock()
	return g.Proc.Call(ctx, req, files, out)
}
