package kallsyms

import (
	"encoding/binary"
)

// kernelHalf is the lowest canonical kernel-half address on x86-64 (and the
// top bit generally): a relative base or kernel symbol address is above it.
const kernelHalf = 0xffff800000000000

// addrCandidate is a place where the address array might be.
type addrCandidate struct {
	arr, base int // offsets of the array and of relative_base (-1: absolute mode)
	reordered bool
}

// readAddresses decodes the address array at c and checks it: kallsyms is
// sorted by address (the kernel binary-searches it), so the decoded values
// must not decrease, and some must be kernel addresses.
func readAddresses(b []byte, c addrCandidate, n int) ([]uint64, AddrMode, uint64, bool) {
	addrs := make([]uint64, n)
	if c.base < 0 {
		if c.arr < 0 || c.arr > len(b)-8*n {
			return nil, 0, 0, false
		}
		for i := range addrs {
			addrs[i] = binary.LittleEndian.Uint64(b[c.arr+8*i:])
		}
		return addrs, ModeAbsolute, 0, sortedWithKernel(addrs)
	}
	base, ok := u64At(b, c.base)
	if !ok || base < kernelHalf || c.arr < 0 || c.arr > len(b)-4*n {
		return nil, 0, 0, false
	}
	// In ABSOLUTE_PERCPU mode kernel addresses are stored as negative
	// offsets; in plain relative mode every offset is a u32 below the 2 GiB
	// kernel image span, so a negative value identifies the mode.
	mode := ModeRelative
	for i := range n {
		if int32(binary.LittleEndian.Uint32(b[c.arr+4*i:])) < 0 {
			mode = ModeAbsolutePercpu
			break
		}
	}
	for i := range addrs {
		off := binary.LittleEndian.Uint32(b[c.arr+4*i:])
		switch {
		case mode == ModeRelative:
			addrs[i] = base + uint64(off)
		case int32(off) >= 0:
			addrs[i] = uint64(off)
		default:
			addrs[i] = base - 1 - uint64(int64(int32(off)))
		}
	}
	return addrs, mode, base, sortedWithKernel(addrs)
}

func sortedWithKernel(addrs []uint64) bool {
	kernel := false
	for i, a := range addrs {
		if i > 0 && a < addrs[i-1] {
			return false
		}
		kernel = kernel || a >= kernelHalf
	}
	return kernel
}
