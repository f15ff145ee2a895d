package cgroup

import (
	"fmt"
	"slices"
)

// Limits are the controls applied by Create and Apply. Every field's zero
// value means "none": no cap, no protection, the kernel's default weight.
// Applying a zero field resets the control, so a second Create or Apply on
// the same group with a field cleared removes what the first one set.
//
// Hard caps (MemoryMax, CPUMaxMilli, IO, PidsMax) are enforced or refused:
// when the host lacks the controller or file, Create and Apply fail and
// the group must not be used. Weights and protections (CPUWeight,
// CPUShares, IOWeight, BlkioWeight, MemoryMin, MemoryLow) are enforced
// where the host has the mechanism; where it does not, the gap is listed
// by Group.Unenforced, never hidden. See Hierarchy.Apply for the files.
type Limits struct {
	// MemoryMax is the hard cap in bytes on the group's memory. Swap does
	// not extend it: on v2 memory.swap.max is set to 0, on v1
	// memory.memsw.limit_in_bytes (memory plus swap) is set to the same
	// value, each when the kernel has swap accounting.
	MemoryMax int64
	// MemoryMin is memory in bytes the kernel never reclaims from the
	// group (v2 memory.min). cgroup v1 has no guarantee: there the larger
	// of MemoryMin and MemoryLow becomes memory.soft_limit_in_bytes, which
	// only steers reclaim under global pressure, and Unenforced says so.
	MemoryMin int64
	// MemoryLow is best-effort protection in bytes (v2 memory.low; v1
	// memory.soft_limit_in_bytes).
	MemoryLow int64
	// PidsMax caps the number of tasks (processes and threads).
	PidsMax int

	// CPUWeight is the v2 cpu.weight, 1..10000 (kernel default 100).
	// CPUShares is the v1 cpu.shares, 2..262144 (kernel default 1024).
	// Each version uses its own field; when that one is 0 and the other is
	// set, it is converted as systemd does (shares = weight*1024/100,
	// clamped to the range; and back). Both 0: the kernel default.
	CPUWeight int
	CPUShares int
	// CPUMaxMilli caps CPU time in millicores (1000 = one CPU), over a
	// fixed period of CPUPeriodUsec: v2 cpu.max "QUOTA 100000", v1
	// cpu.cfs_period_us then cpu.cfs_quota_us, with QUOTA =
	// CPUMaxMilli*100 µs. 0: no cap; otherwise at least MinCPUMaxMilli.
	CPUMaxMilli int64

	// IOWeight is the v2 io.weight ("default N"), 1..10000 (default 100).
	// BlkioWeight is the v1 blkio.weight, 10..1000 (default 500). They
	// convert like the CPU weights (blkio = io*500/100, clamped). Both
	// need a proportional-share I/O scheduler or io.cost; where the file is
	// absent (v1 without CFQ/BFQ, v2 without io.weight) a weight is a
	// no-op listed by Unenforced.
	IOWeight    int
	BlkioWeight int
	// IO are per-device throughput and IOPS caps (v2 io.max, v1
	// blkio.throttle.*_device). A device of an earlier Apply missing here
	// has its caps lifted.
	IO []IOLimit
}

// IOLimit caps one block device. A zero field is no cap.
type IOLimit struct {
	Major, Minor uint32
	ReadBPS      uint64 // bytes per second
	WriteBPS     uint64
	ReadIOPS     uint64 // operations per second
	WriteIOPS    uint64
}

// Ranges and fixed values of the controls.
const (
	CPUPeriodUsec  = 100_000 // cpu.max / cfs period: 100 ms
	MinCPUMaxMilli = 10      // quota of 1 ms per period, the kernel's minimum
	MaxCPUMaxMilli = 10_000_000

	minCPUWeight, maxCPUWeight, defCPUWeight       = 1, 10_000, 100
	minCPUShares, maxCPUShares, defCPUShares       = 2, 262_144, 1024
	minIOWeight, maxIOWeight, defIOWeight          = 1, 10_000, 100
	minBlkioWeight, maxBlkioWeight, defBlkioWeight = 10, 1000, 500

	maxIODevices = 64
	maxDevMajor  = 1<<12 - 1 // the kernel's dev_t split: 12-bit major, 20-bit minor
	maxDevMinor  = 1<<20 - 1
)

// validate checks ranges; it is the gate for every write.
func (l *Limits) validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("limits: "+f, a...) }
	switch {
	case l.MemoryMax < 0 || l.MemoryMin < 0 || l.MemoryLow < 0 || l.PidsMax < 0:
		return bad("negative memory or pids value (max %d, min %d, low %d, pids %d)", l.MemoryMax, l.MemoryMin, l.MemoryLow, l.PidsMax)
	case l.MemoryMax > 0 && l.MemoryMin > l.MemoryMax:
		return bad("memory min %d above memory max %d", l.MemoryMin, l.MemoryMax)
	case l.CPUWeight != 0 && (l.CPUWeight < minCPUWeight || l.CPUWeight > maxCPUWeight):
		return bad("cpu weight %d outside %d..%d", l.CPUWeight, minCPUWeight, maxCPUWeight)
	case l.CPUShares != 0 && (l.CPUShares < minCPUShares || l.CPUShares > maxCPUShares):
		return bad("cpu shares %d outside %d..%d", l.CPUShares, minCPUShares, maxCPUShares)
	case l.CPUMaxMilli != 0 && (l.CPUMaxMilli < MinCPUMaxMilli || l.CPUMaxMilli > MaxCPUMaxMilli):
		return bad("cpu max %dm outside %d..%d millicores", l.CPUMaxMilli, MinCPUMaxMilli, MaxCPUMaxMilli)
	case l.IOWeight != 0 && (l.IOWeight < minIOWeight || l.IOWeight > maxIOWeight):
		return bad("io weight %d outside %d..%d", l.IOWeight, minIOWeight, maxIOWeight)
	case l.BlkioWeight != 0 && (l.BlkioWeight < minBlkioWeight || l.BlkioWeight > maxBlkioWeight):
		return bad("blkio weight %d outside %d..%d", l.BlkioWeight, minBlkioWeight, maxBlkioWeight)
	case len(l.IO) > maxIODevices:
		return bad("%d io devices, at most %d", len(l.IO), maxIODevices)
	}
	for i, d := range l.IO {
		if d.Major > maxDevMajor || d.Minor > maxDevMinor {
			return bad("io device %d:%d out of range", d.Major, d.Minor)
		}
		if slices.ContainsFunc(l.IO[:i], func(e IOLimit) bool { return e.Major == d.Major && e.Minor == d.Minor }) {
			return bad("io device %d:%d listed twice", d.Major, d.Minor)
		}
	}
	return nil
}

// cpuWeight is the v2 cpu.weight to write.
func (l *Limits) cpuWeight() int {
	switch {
	case l.CPUWeight > 0:
		return l.CPUWeight
	case l.CPUShares > 0:
		return clamp(l.CPUShares*defCPUWeight/defCPUShares, minCPUWeight, maxCPUWeight)
	}
	return defCPUWeight
}

// cpuShares is the v1 cpu.shares to write.
func (l *Limits) cpuShares() int {
	switch {
	case l.CPUShares > 0:
		return l.CPUShares
	case l.CPUWeight > 0:
		return clamp(l.CPUWeight*defCPUShares/defCPUWeight, minCPUShares, maxCPUShares)
	}
	return defCPUShares
}

// ioWeight is the v2 io.weight default to write.
func (l *Limits) ioWeight() int {
	switch {
	case l.IOWeight > 0:
		return l.IOWeight
	case l.BlkioWeight > 0:
		return clamp(l.BlkioWeight*defIOWeight/defBlkioWeight, minIOWeight, maxIOWeight)
	}
	return defIOWeight
}

// blkioWeight is the v1 blkio.weight to write.
func (l *Limits) blkioWeight() int {
	switch {
	case l.BlkioWeight > 0:
		return l.BlkioWeight
	case l.IOWeight > 0:
		return clamp(l.IOWeight*defBlkioWeight/defIOWeight, minBlkioWeight, maxBlkioWeight)
	}
	return defBlkioWeight
}

func (l *Limits) wantsIOWeight() bool  { return l.IOWeight > 0 || l.BlkioWeight > 0 }
func (l *Limits) wantsCPUWeight() bool { return l.CPUWeight > 0 || l.CPUShares > 0 }

// cpuQuotaUsec is the quota per CPUPeriodUsec, or -1 for none.
func (l *Limits) cpuQuotaUsec() int64 {
	if l.CPUMaxMilli == 0 {
		return -1
	}
	return l.CPUMaxMilli * CPUPeriodUsec / 1000
}

func clamp(v, lo, hi int) int { return min(max(v, lo), hi) }
