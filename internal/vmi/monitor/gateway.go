package monitor

import (
	"context"
	"fmt"
	"os"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Source is what the daemon knows about a running VM (the manager).
type Source interface {
	Get(ctx context.Context, name string) (*vm.VM, error)
	Registers(ctx context.Context, name string) ([]hv.Registers, error)
	MemoryPath(ctx context.Context, name string) (string, uint64, error)
}

// Gateway turns a request about a VM into a monitor call: it reads the
// registers, opens the RAM file and the kernel image read-only and passes
// them to the monitor process.
type Gateway struct {
	Proc *Process
	Src  Source
}

// Query runs op on the VM and decodes the result into out.
func (g *Gateway) Query(ctx context.Context, name, op string, out any) error {
	v, err := g.Src.Get(ctx, name)
	if err != nil {
		return err
	}
	memPath, size, err := g.Src.MemoryPath(ctx, name)
	if err != nil {
		return err
	}
	regs, err := g.Src.Registers(ctx, name)
	if err != nil {
		return fmt.Errorf("vCPU registers: %w", err)
	}
	ram, err := os.Open(memPath) // O_RDONLY: the monitor gets no write access
	if err != nil {
		return fmt.Errorf("guest RAM: %w", err)
	}
	defer ram.Close()
	kern, err := os.Open(v.Spec.Kernel)
	if err != nil {
		return fmt.Errorf("kernel image: %w", err)
	}
	defer kern.Close()
	req := Request{Op: op, VM: name, Gen: fmt.Sprintf("%d-%d", v.Runtime.PID, v.Runtime.StartTime),
		RAMSize: size, Regs: regs, Kernel: v.Spec.Kernel}
	return g.Proc.Call(ctx, req, []*os.File{ram, kern}, out)
}
