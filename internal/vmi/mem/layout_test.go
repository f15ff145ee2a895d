package mem

import (
	"math"
	"reflect"
	"testing"
)

const gib = 1 << 30

func TestMicrovmLayout(t *testing.T) {
	cases := []struct {
		ram  uint64
		want []Range
	}{
		{0, nil},
		{0x1000, []Range{{0, 0x1000, 0}}},
		{0xf8000, []Range{{0, 0xf0000, 0}}},
		{0x100000, []Range{{0, 0xf0000, 0}}},
		{0x101000, []Range{{0, 0xf0000, 0}, {0x100000, 0x1000, 0x100000}}},
		{256 << 20, []Range{{0, 0xf0000, 0}, {0x100000, 255 << 20, 0x100000}}},
		{3 * gib, []Range{{0, 0xf0000, 0}, {0x100000, 3*gib - 0x100000, 0x100000}}},
		{3*gib + 4096, []Range{{0, 0xf0000, 0}, {0x100000, 3*gib - 0x100000, 0x100000}, {4 * gib, 4096, 3 * gib}}},
		{8 * gib, []Range{{0, 0xf0000, 0}, {0x100000, 3*gib - 0x100000, 0x100000}, {4 * gib, 5 * gib, 3 * gib}}},
	}
	for _, c := range cases {
		got := MicrovmLayout(c.ram)
		if !reflect.DeepEqual(got.Ranges, c.want) {
			t.Errorf("MicrovmLayout(%#x) = %v, want %v", c.ram, got.Ranges, c.want)
		}
		if c.ram == 0 {
			continue
		}
		if err := got.Validate(c.ram); err != nil {
			t.Errorf("MicrovmLayout(%#x) does not validate: %v", c.ram, err)
		}
		if got.fileSpan() != c.ram && c.ram > 0x100000 {
			t.Errorf("MicrovmLayout(%#x) spans %#x file bytes", c.ram, got.fileSpan())
		}
	}
}

func TestLayoutValidate(t *testing.T) {
	many := Layout{}
	for i := range MaxRanges + 1 {
		many.Ranges = append(many.Ranges, Range{GPA: uint64(i) * 8192, Size: 4096, Offset: 0})
	}
	bad := map[string]Layout{
		"empty":        {},
		"zero size":    {Ranges: []Range{{0, 0, 0}}},
		"overlap":      {Ranges: []Range{{0, 8192, 0}, {4096, 4096, 0}}},
		"out of order": {Ranges: []Range{{8192, 4096, 0}, {0, 4096, 0}}},
		"past file":    {Ranges: []Range{{0, 4096, 4096}}},
		"gpa wraps":    {Ranges: []Range{{math.MaxUint64 - 10, 4096, 0}}},
		"offset wraps": {Ranges: []Range{{0, 4096, math.MaxUint64 - 10}}},
		"too many":     many,
		"too large":    {Ranges: []Range{{0, MaxRAM + 1, 0}}},
	}
	for name, l := range bad {
		if err := l.Validate(1 << 62); err == nil && name != "past file" {
			t.Errorf("%s: Validate accepted %v", name, l.Ranges)
		}
	}
	if err := bad["past file"].Validate(4096); err == nil {
		t.Errorf("range past the file accepted")
	}
}

func TestLayoutCovers(t *testing.T) {
	l := Layout{Ranges: []Range{{0, 100, 500}, {100, 50, 0}, {200, 10, 300}}}
	cases := []struct {
		gpa, n uint64
		want   bool
	}{
		{0, 100, true}, {0, 150, true}, {90, 20, true}, {0, 151, false},
		{149, 1, true}, {150, 1, false}, {149, 52, false}, {200, 10, true},
		{205, 10, false}, {300, 1, false}, {math.MaxUint64, 2, false},
	}
	for _, c := range cases {
		if got := l.covers(c.gpa, c.n); got != c.want {
			t.Errorf("covers(%d, %d) = %v, want %v", c.gpa, c.n, got, c.want)
		}
	}
	if r := l.regions(); !reflect.DeepEqual(r, []Region{{0, 150}, {200, 10}}) {
		t.Errorf("regions = %v", r)
	}
}
