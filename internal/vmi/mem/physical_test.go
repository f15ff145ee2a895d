package mem

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestFromBytes(t *testing.T) {
	m := FromBytes([]byte("0123456789"))
	if m.Size() != 10 {
		t.Fatalf("Size = %d", m.Size())
	}
	p := make([]byte, 3)
	if err := m.ReadPhys(p, 7); err != nil || string(p) != "789" {
		t.Fatalf("ReadPhys(7) = %q, %v", p, err)
	}
	if err := m.ReadPhys(nil, math.MaxUint64); err != nil {
		t.Fatalf("empty read: %v", err)
	}
	for _, gpa := range []uint64{8, 10, 11, math.MaxUint64, math.MaxUint64 - 1} {
		err := m.ReadPhys(p, gpa)
		if !errors.Is(err, ErrNotRAM) {
			t.Fatalf("ReadPhys(%#x) = %v, want ErrNotRAM", gpa, err)
		}
		if !strings.Contains(err.Error(), "GPA ") {
			t.Fatalf("error %q does not name the address", err)
		}
	}
	if r := RegionsOf(m); len(r) != 1 || r[0] != (Region{0, 10}) {
		t.Fatalf("RegionsOf = %v", r)
	}
	if r := RegionsOf(FromBytes(nil)); len(r) != 0 {
		t.Fatalf("RegionsOf(empty) = %v", r)
	}
}
