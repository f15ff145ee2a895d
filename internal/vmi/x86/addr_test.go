package x86_test

import (
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/x86"
)

func TestKernelTextToPhys(t *testing.T) {
	neg := func(v int64) uint64 { return uint64(v) }
	cases := []struct {
		va, physBase, pa uint64
		ok               bool
	}{
		{0xffffffff81000000, 0, 0x1000000, true},
		// KASLR: virtual offset 0x1c000000, physical load at 0x5000000.
		{0xffffffff9d000000, neg(0x5000000 - 0x1d000000), 0x5000000, true},
		{0xffffffff80000000, neg(-1), 0, false},
		{0xffffffffc0000000, 0, 0, false},
		{0xffff888000000000, 0, 0, false},
		{0xffffffffbfffffff, 1 << 52, 0, false},
	}
	for _, c := range cases {
		pa, err := x86.KernelTextToPhys(c.va, c.physBase)
		if (err == nil) != c.ok || pa != c.pa {
			t.Errorf("KernelTextToPhys(%#x, %d) = %#x, %v", c.va, int64(c.physBase), pa, err)
		}
	}
}

func TestDirectMap(t *testing.T) {
	const base = 0xffff9c0000000000
	if pa, err := x86.DirectMapToPhys(base+0x1234, base); err != nil || pa != 0x1234 {
		t.Errorf("DirectMapToPhys = %#x, %v", pa, err)
	}
	if va, err := x86.PhysToDirectMap(0x1234, base); err != nil || va != base+0x1234 {
		t.Errorf("PhysToDirectMap = %#x, %v", va, err)
	}
	for _, c := range []struct{ va, base uint64 }{
		{base - 1, base},
		{0x1234, 0x1000},                         // base not a kernel address
		{base + 0x1234, base + 0x1000},           // base not 1 GiB-aligned
		{0xffffffffffffffff, 0xff00000000000000}, // beyond 52 bits
	} {
		if pa, err := x86.DirectMapToPhys(c.va, c.base); err == nil {
			t.Errorf("DirectMapToPhys(%#x, %#x) = %#x", c.va, c.base, pa)
		}
	}
	if _, err := x86.PhysToDirectMap(x86.MaxPhysAddr, base); err == nil {
		t.Error("PhysToDirectMap beyond 52 bits accepted")
	}
}
