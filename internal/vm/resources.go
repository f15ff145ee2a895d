package vm

import (
	"fmt"
	"strconv"
)

// Resources are a VM's claims on its resource pool (internal/pool): what is
// guaranteed (reservation), the ceiling (limit) and the relative priority
// under contention (shares). The zero value is no reservation, the VM's own
// size as the limit, and normal shares.
type Resources struct {
	CPU    CPUResources    `json:"cpu,omitzero"`
	Memory MemoryResources `json:"memory,omitzero"`
	Disk   DiskResources   `json:"disk,omitzero"`
}

// CPUResources are in millicores (1000 = one host CPU).
type CPUResources struct {
	ReservationMilli int64 `json:"reservation_millicores,omitempty"`
	// LimitMilli is the ceiling; 0: the VM's vCPUs × 1000.
	LimitMilli int64 `json:"limit_millicores,omitempty"`
	// Shares is "low", "normal" (default), "high" or a number: vSphere's
	// presets of 500, 1000 and 2000 per vCPU.
	Shares string `json:"shares,omitempty"`
}

// MemoryResources are in MiB.
type MemoryResources struct {
	ReservationMiB int64 `json:"reservation_mib,omitempty"`
	// LimitMiB is the ceiling; 0: the VM's memory (plus the hypervisor's
	// overhead, which the daemon adds to every VM's hard cap).
	LimitMiB int64 `json:"limit_mib,omitempty"`
	// Shares is "low", "normal" (default), "high" or a number: vSphere's
	// presets of 5, 10 and 20 per MiB.
	Shares string `json:"shares,omitempty"`
}

// DiskResources apply to all of a VM's disks together.
type DiskResources struct {
	// Shares is "low", "normal" (default), "high" or a number (relative
	// weight: 500, 1000, 2000).
	Shares string `json:"shares,omitempty"`
	// Limits; 0 = none.
	ReadBPS   int64 `json:"read_bytes_per_sec,omitempty"`
	WriteBPS  int64 `json:"write_bytes_per_sec,omitempty"`
	ReadIOPS  int64 `json:"read_iops,omitempty"`
	WriteIOPS int64 `json:"write_iops,omitempty"`
}

// NICRate limits a NIC in the virtual switch with token buckets, both
// directions. Egress is what the VM sends, ingress what is delivered to
// it. 0 = no limit.
type NICRate struct {
	EgressBPS  int64 `json:"egress_bits_per_sec,omitempty"`
	EgressPPS  int64 `json:"egress_packets_per_sec,omitempty"`
	IngressBPS int64 `json:"ingress_bits_per_sec,omitempty"`
	IngressPPS int64 `json:"ingress_packets_per_sec,omitempty"`
}

// Share presets.
const (
	SharesLow    = "low"
	SharesNormal = "normal"
	SharesHigh   = "high"
)

// Bounds of resource values: absurd values are refused, not clamped.
const (
	MaxMillicores = 1 << 20 // 1,048,576 millicores: 1,048 CPUs
	MaxMiB        = 1 << 24 // 16 TiB
	MaxShares     = 1 << 20
	MaxBPS        = 1 << 40 // 1 TB/s (bytes) or 1 Tbit/s (bits)
	MaxIOPS       = 1 << 24
	MaxPPS        = 1 << 28
)

// ParseShares returns the numeric shares for a setting: presets are
// per-unit values multiplied by units (vCPUs or MiB); a number is taken as
// it is. "" is normal.
func ParseShares(field, s string, low, normal, high, units int64) (int64, error) {
	switch s {
	case "", SharesNormal:
		return normal * units, nil
	case SharesLow:
		return low * units, nil
	case SharesHigh:
		return high * units, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 || n > MaxShares {
		return 0, &FieldError{Field: field, Msg: fmt.Sprintf("shares %q: want low, normal, high or a number 1..%d", s, MaxShares)}
	}
	return n, nil
}

func checkRange(field string, v, max int64) error {
	if v < 0 || v > max {
		return &FieldError{Field: field, Msg: fmt.Sprintf("%d is out of range 0..%d", v, max)}
	}
	return nil
}

// Validate checks the values on their own (the pool's arithmetic checks
// them against capacity): ranges, presets, and no limit below a
// reservation.
func (r *Resources) Validate(vcpus, memoryMiB int) error {
	if r == nil {
		return nil
	}
	checks := []struct {
		f      string
		v, max int64
	}{
		{"resources.cpu.reservation_millicores", r.CPU.ReservationMilli, MaxMillicores},
		{"resources.cpu.limit_millicores", r.CPU.LimitMilli, MaxMillicores},
		{"resources.memory.reservation_mib", r.Memory.ReservationMiB, MaxMiB},
		{"resources.memory.limit_mib", r.Memory.LimitMiB, MaxMiB},
		{"resources.disk.read_bytes_per_sec", r.Disk.ReadBPS, MaxBPS},
		{"resources.disk.write_bytes_per_sec", r.Disk.WriteBPS, MaxBPS},
		{"resources.disk.read_iops", r.Disk.ReadIOPS, MaxIOPS},
		{"resources.disk.write_iops", r.Disk.WriteIOPS, MaxIOPS},
	}
	for _, c := range checks {
		if err := checkRange(c.f, c.v, c.max); err != nil {
			return err
		}
	}
	for _, s := range []struct{ f, v string }{{"resources.cpu.shares", r.CPU.Shares}, {"resources.memory.shares", r.Memory.Shares}, {"resources.disk.shares", r.Disk.Shares}} {
		if _, err := ParseShares(s.f, s.v, 1, 1, 1, 1); err != nil {
			return err
		}
	}
	cpuLimit := r.CPU.LimitMilli
	if cpuLimit == 0 {
		cpuLimit = int64(vcpus) * 1000
	}
	if r.CPU.ReservationMilli > cpuLimit {
		return &FieldError{Field: "resources.cpu.reservation_millicores", Msg: fmt.Sprintf("reservation %dm is above the limit %dm", r.CPU.ReservationMilli, cpuLimit)}
	}
	memLimit := r.Memory.LimitMiB
	if memLimit == 0 {
		memLimit = int64(memoryMiB)
	}
	if r.Memory.ReservationMiB > memLimit {
		return &FieldError{Field: "resources.memory.reservation_mib", Msg: fmt.Sprintf("reservation %d MiB is above the limit %d MiB", r.Memory.ReservationMiB, memLimit)}
	}
	return nil
}

// Validate checks a NIC rate's ranges.
func (n *NICRate) Validate(field string) error {
	if n == nil {
		return nil
	}
	for _, c := range []struct {
		f      string
		v, max int64
	}{
		{field + ".egress_bits_per_sec", n.EgressBPS, MaxBPS}, {field + ".ingress_bits_per_sec", n.IngressBPS, MaxBPS},
		{field + ".egress_packets_per_sec", n.EgressPPS, MaxPPS}, {field + ".ingress_packets_per_sec", n.IngressPPS, MaxPPS},
	} {
		if err := checkRange(c.f, c.v, c.max); err != nil {
			return err
		}
	}
	return nil
}
