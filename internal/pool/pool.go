// Package pool is the arithmetic of resource pools: a tree of pools rooted
// at the host, each with a reservation (guaranteed), a limit (ceiling) and
// shares (relative priority under contention) for CPU and memory, plus
// disk shares and limits. It decides whether a VM may start or a pool may
// change (admission control) and computes the abstract controls that the
// cgroup layer writes for every pool and VM (Plan). It does no I/O: the
// caller supplies the pools, the host's capacity and the VMs.
//
// # Semantics
//
// vSphere's resource pools are the model, with a safer default: a pool's
// reservation is not expandable unless Expandable is set.
//
//   - The root pool, "host", owns the capacity the caller passes: the
//     host's CPUs × 1000 millicores and its memory less a slice kept for
//     Bulwark and the host. It cannot be defined, changed or deleted.
//   - A pool's reservation is set aside from its parent when the pool is
//     defined, whether or not it holds VMs.
//   - What a pool's children hold (child pools' reservations and running
//     VMs' reservations) must fit in the pool's reservation. An expandable
//     pool may hold more: the shortfall is borrowed from its parent's
//     unreserved capacity, recursively while the parents are expandable
//     too. A pool never holds more than its limit.
//   - A pool therefore draws max(reservation, held) from its parent when
//     expandable, its reservation otherwise; the root's draws never exceed
//     the capacity. Memory reservations are thus never overcommitted.
//   - Limits cap usage (a VM without a limit is capped at its size); shares
//     divide contended capacity among siblings (pools and VMs with the same
//     parent).
//
// Units: CPU in millicores (1000 = one host CPU), memory in MiB, disk in
// bytes/s and I/O operations/s.
package pool

import (
	"errors"
	"fmt"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// RootName is the root pool's name: the host. A VM whose spec names no
// pool is in it.
const RootName = "host"

// Implementation limits: they bound every walk over the tree and the
// length of cgroup paths (MaxDepth × (len("pool.")+63+1) bytes).
const (
	// MaxPools is the most pools a tree holds, the root not counted.
	MaxPools = 1024
	// MaxDepth is the most pools between the root and a VM.
	MaxDepth = 8
	// maxHolders is how many holders an error message lists by name
	// before it sums up the rest.
	maxHolders = 5
)

// Unlimited is a Limit of 0: no ceiling beyond the parent's.
const Unlimited = 0

// Pool share presets (vSphere's: a pool counts as a VM with 4 vCPUs and 16
// GiB of memory) and disk presets (pools and VMs alike).
const (
	PoolCPUSharesLow, PoolCPUSharesNormal, PoolCPUSharesHigh          = 2000, 4000, 8000
	PoolMemorySharesLow, PoolMemorySharesNormal, PoolMemorySharesHigh = 81920, 163840, 327680
	DiskSharesLow, DiskSharesNormal, DiskSharesHigh                   = 500, 1000, 2000
)

// VM share presets are vSphere's: per vCPU and per MiB of the VM's memory.
const (
	VMCPUSharesLow, VMCPUSharesNormal, VMCPUSharesHigh          = 500, 1000, 2000
	VMMemorySharesLow, VMMemorySharesNormal, VMMemorySharesHigh = 5, 10, 20
)

// Pool is one resource pool as an operator defines it.
type Pool struct {
	Name string `json:"name"`
	// Parent is the parent pool's name; "" is the root, "host".
	Parent string `json:"parent,omitempty"`
	// CPU is in millicores, Memory in MiB.
	CPU    Alloc     `json:"cpu,omitzero"`
	Memory Alloc     `json:"memory,omitzero"`
	Disk   DiskAlloc `json:"disk,omitzero"`
	// Expandable lets the pool's children hold more than its reservation,
	// borrowing the difference from the parent. Off by default: a pool
	// then guarantees exactly its reservation and no more can be held in
	// it, so one pool's growth never eats its siblings' headroom.
	Expandable bool `json:"expandable,omitempty"`
}

// Alloc is a pool's claim on one resource.
type Alloc struct {
	// Reservation is guaranteed and set aside from the parent.
	Reservation int64 `json:"reservation,omitempty"`
	// Limit is the ceiling; Unlimited (0): none but the parent's.
	Limit int64 `json:"limit,omitempty"`
	// Shares is "low", "normal" (default), "high" or a number 1..vm.MaxShares;
	// see the Pool*Shares presets.
	Shares string `json:"shares,omitempty"`
}

// DiskAlloc is a pool's claim on the disks of all VMs below it together.
type DiskAlloc struct {
	// Shares is "low", "normal" (default), "high" or a number
	// (DiskShares* presets).
	Shares string `json:"shares,omitempty"`
	// Limits; 0 = none.
	ReadBPS   int64 `json:"read_bytes_per_sec,omitempty"`
	WriteBPS  int64 `json:"write_bytes_per_sec,omitempty"`
	ReadIOPS  int64 `json:"read_iops,omitempty"`
	WriteIOPS int64 `json:"write_iops,omitempty"`
}

// Capacity is what the root pool owns: host CPUs × 1000 and host memory
// less the slice kept for Bulwark (daemon, switch, monitor) and the host.
type Capacity struct {
	CPUMilli  int64 `json:"cpu_millicores"`
	MemoryMiB int64 `json:"memory_mib"`
}

// VMClaim is what a VM asks of its pool.
type VMClaim struct {
	Name string
	// Pool is the VM's pool; "" is the root.
	Pool      string
	VCPUs     int
	MemoryMiB int64
	// OverheadMiB is the hypervisor's memory on top of the guest's RAM
	// (QEMU, page tables, device buffers); it is added to the VM's hard
	// memory cap but not reserved.
	OverheadMiB int64
	Resources   vm.Resources
}

// ClaimFromSpec is the claim of a VM defined by s.
func ClaimFromSpec(s *vm.Spec, overheadMiB int64) VMClaim {
	c := VMClaim{Name: s.Name, Pool: s.Pool, VCPUs: s.VCPUs, MemoryMiB: int64(s.MemoryMiB), OverheadMiB: overheadMiB}
	if s.Resources != nil {
		c.Resources = *s.Resources
	}
	return c
}

// Member says which pool a VM is in, running or not.
type Member struct {
	VM   string
	Pool string
}

// Errors that callers branch on (errors.Is): every error this package
// returns is an *Error wrapping one of them.
var (
	// ErrInvalid: a value, name or structure is wrong on its own.
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: a pool or VM named by the caller does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNoRoom: a reservation cannot be met.
	ErrNoRoom = errors.New("insufficient unreserved capacity")
	// ErrInUse: a pool still holds VMs or pools.
	ErrInUse = errors.New("in use")
)

// Error is a refusal. Msg is complete and names the pool, and where it
// applies the field, the shortfall and what holds the capacity.
type Error struct {
	// Pool is the pool the refusal is about.
	Pool string
	// Field is the field at fault, as in Pool's or vm.Spec's JSON
	// ("cpu.reservation", "resources.memory.reservation_mib"); may be "".
	Field string
	// Shortfall is how much is missing (millicores or MiB) for ErrNoRoom.
	Shortfall int64
	Kind      error
	Msg       string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, pool, field string, format string, args ...any) *Error {
	return &Error{Pool: pool, Field: field, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// resource selects CPU or memory in the arithmetic.
type resource int

const (
	cpu resource = iota
	mem
	nres
)

func (r resource) String() string {
	if r == cpu {
		return "CPU"
	}
	return "memory"
}

// fmtAmount writes an amount with its unit: "2000m" or "512 MiB".
func (r resource) fmtAmount(v int64) string {
	if r == cpu {
		return fmt.Sprintf("%dm", v)
	}
	return fmt.Sprintf("%d MiB", v)
}

func (r resource) max() int64 {
	if r == cpu {
		return vm.MaxMillicores
	}
	return vm.MaxMiB
}

// poolField is the JSON path of a Pool field for resource r.
func (r resource) poolField(f string) string {
	if r == cpu {
		return "cpu." + f
	}
	return "memory." + f
}

// vmField is the JSON path of a vm.Spec reservation field.
func (r resource) vmField() string {
	if r == cpu {
		return "resources.cpu.reservation_millicores"
	}
	return "resources.memory.reservation_mib"
}

func (p *Pool) alloc(r resource) Alloc {
	if r == cpu {
		return p.CPU
	}
	return p.Memory
}

// reservation is the VM's reservation of r.
func (c *VMClaim) reservation(r resource) int64 {
	if r == cpu {
		return c.Resources.CPU.ReservationMilli
	}
	return c.Resources.Memory.ReservationMiB
}

// validate checks a claim on its own: name, size and resources.
func (c *VMClaim) validate() error {
	if err := vm.ValidateName("name", c.Name); err != nil {
		return errorf(ErrInvalid, poolName(c.Pool), "name", "vm %q: %v", c.Name, err)
	}
	if c.Pool != "" {
		if err := vm.ValidateName("pool", c.Pool); err != nil {
			return errorf(ErrInvalid, c.Pool, "pool", "vm %q: %v", c.Name, err)
		}
	}
	if c.VCPUs < 1 || c.VCPUs > vm.MaxVCPUs {
		return errorf(ErrInvalid, poolName(c.Pool), "vcpus", "vm %q: vcpus: %d out of range 1..%d", c.Name, c.VCPUs, vm.MaxVCPUs)
	}
	if c.MemoryMiB < vm.MinMemoryMiB || c.MemoryMiB > vm.MaxMemoryMiB {
		return errorf(ErrInvalid, poolName(c.Pool), "memory_mib", "vm %q: memory_mib: %d out of range %d..%d", c.Name, c.MemoryMiB, vm.MinMemoryMiB, vm.MaxMemoryMiB)
	}
	if c.OverheadMiB < 0 || c.OverheadMiB > vm.MaxMiB {
		return errorf(ErrInvalid, poolName(c.Pool), "", "vm %q: memory overhead %d MiB out of range 0..%d", c.Name, c.OverheadMiB, vm.MaxMiB)
	}
	if err := c.Resources.Validate(c.VCPUs, int(c.MemoryMiB)); err != nil {
		field := ""
		var fe *vm.FieldError
		if errors.As(err, &fe) {
			field = fe.Field
		}
		return errorf(ErrInvalid, poolName(c.Pool), field, "vm %q: %v", c.Name, err)
	}
	return nil
}

// poolName maps the spec's "" to the root's name.
func poolName(p string) string {
	if p == "" {
		return RootName
	}
	return p
}
