package mem

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// holey is a Physical with RAM at [0,100) and [200,300) for Scan tests.
type holey struct{ b []byte }

func (h holey) Size() uint64      { return 300 }
func (h holey) Regions() []Region { return []Region{{0, 100}, {200, 100}} }
func (h holey) ReadPhys(p []byte, gpa uint64) error {
	for _, r := range h.Regions() {
		if gpa >= r.GPA && gpa+uint64(len(p)) <= r.End() && gpa+uint64(len(p)) >= gpa {
			copy(p, h.b[gpa:])
			return nil
		}
	}
	return notRAM(gpa, len(p))
}

func TestScan(t *testing.T) {
	b := make([]byte, 1000)
	copy(b[0:], "AB")
	copy(b[63:], "ABCD") // across the first chunk boundary at 64
	copy(b[996:], "ABCD")
	m := FromBytes(b)
	cases := []struct {
		from, limit uint64
		want        uint64
		found       bool
	}{
		{0, 1000, 63, true}, {64, 1000, 996, true}, {0, 66, 0, false},
		{0, 67, 63, true}, {997, 1000, 0, false}, {64, 999, 0, false},
		{996, 1 << 40, 996, true}, {2000, 3000, 0, false},
	}
	for _, c := range cases {
		got, err := Scan(m, []byte("ABCD"), c.from, c.limit, 64)
		if c.found && (err != nil || got != c.want) {
			t.Errorf("Scan(%d, %d) = %d, %v, want %d", c.from, c.limit, got, err, c.want)
		}
		if !c.found && !errors.Is(err, ErrNotFound) {
			t.Errorf("Scan(%d, %d) = %d, %v, want ErrNotFound", c.from, c.limit, got, err)
		}
	}
	for _, chunk := range []int{0, 3, MaxScanChunk + 1} {
		if _, err := Scan(m, []byte("ABCD"), 0, 1000, chunk); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("chunk %d accepted", chunk)
		}
	}
	if _, err := Scan(m, nil, 0, 1000, 64); err == nil || errors.Is(err, ErrNotFound) {
		t.Error("empty pattern accepted")
	}
}

func TestScanHoles(t *testing.T) {
	b := make([]byte, 300)
	copy(b[98:], "XYXY") // straddles the hole: not RAM, never a match
	copy(b[250:], "XYXY")
	got, err := Scan(holey{b}, []byte("XYXY"), 0, 300, 16)
	if err != nil || got != 250 {
		t.Fatalf("Scan = %d, %v, want 250", got, err)
	}
}

// refScan is the obvious definition of Scan over a flat image.
func refScan(b, pat []byte, from, limit uint64) (uint64, bool) {
	limit = min(limit, uint64(len(b)))
	if from >= limit {
		return 0, false
	}
	i := bytes.Index(b[from:limit], pat)
	return from + uint64(i), i >= 0
}

func FuzzScan(f *testing.F) {
	f.Add([]byte("hello world hello"), []byte("lo"), uint64(0), uint64(100), 4)
	f.Add([]byte("aaaaaaaaab"), []byte("ab"), uint64(3), uint64(10), 2)
	f.Fuzz(func(t *testing.T, data, pat []byte, from, limit uint64, chunk int) {
		if len(pat) == 0 || chunk < len(pat) || chunk > 1<<12 {
			return
		}
		got, err := Scan(FromBytes(data), pat, from, limit, chunk)
		want, ok := refScan(data, pat, from, limit)
		if ok != (err == nil) || (ok && got != want) {
			t.Fatalf("Scan = %d, %v; want %d, %v", got, err, want, ok)
		}
	})
}

// FuzzLayoutRead checks ReadPhys over arbitrary layouts against a byte by
// byte model, and that it never panics.
func FuzzLayoutRead(f *testing.F) {
	f.Add([]byte{0, 2, 0, 2, 2, 0}, uint64(1000), uint16(20))
	f.Fuzz(func(t *testing.T, spec []byte, gpa uint64, n uint16) {
		// Each 3 bytes of spec: GPA gap, size, file offset, in units of 100.
		var l Layout
		next := uint64(0)
		for i := 0; i+2 < len(spec) && len(l.Ranges) < MaxRanges; i += 3 {
			r := Range{GPA: next + uint64(spec[i]%4)*100, Size: uint64(spec[i+1]%4) * 100, Offset: uint64(spec[i+2]%8) * 100}
			l.Ranges = append(l.Ranges, r)
			next = r.GPA + r.Size
		}
		file := pattern(1200)
		if l.Validate(uint64(len(file))) != nil {
			return
		}
		gpa %= 4000
		p := make([]byte, int(n%600))
		err := fakeRAM(l, file).ReadPhys(p, gpa)
		// Model: each byte on its own.
		ok := true
		want := make([]byte, len(p))
		for k := range p {
			i := l.find(gpa + uint64(k))
			if i < 0 {
				ok = false
				break
			}
			r := l.Ranges[i]
			want[k] = file[r.Offset+gpa+uint64(k)-r.GPA]
		}
		if ok != (err == nil) || (ok && !bytes.Equal(p, want)) {
			t.Fatalf("layout %v read %d at %d: err %v, model ok %v", l.Ranges, len(p), gpa, err, ok)
		}
	})
}

// fakeRAM is a RAM over an in-memory slice instead of a mapping.
func fakeRAM(l Layout, b []byte) *RAM {
	return &RAM{data: b, layout: l, size: l.size(), regions: l.regions()}
}

// FuzzScanEach checks that ScanEach reports every occurrence, overlapping
// ones included, exactly once and in order.
func FuzzScanEach(f *testing.F) {
	f.Add([]byte("aaaaaaaaaa"), []byte("aa"), uint64(1), uint64(9), 3)
	f.Fuzz(func(t *testing.T, data, pat []byte, from, limit uint64, chunk int) {
		if len(pat) == 0 || chunk < len(pat) || chunk > 1<<12 {
			return
		}
		var got []uint64
		if err := ScanEach(FromBytes(data), pat, from, limit, chunk, func(gpa uint64) bool {
			got = append(got, gpa)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		var want []uint64
		for at := from; ; at++ {
			w, ok := refScan(data, pat, at, limit)
			if !ok {
				break
			}
			want = append(want, w)
			at = w
		}
		if !slices.Equal(got, want) {
			t.Fatalf("ScanEach = %v, want %v", got, want)
		}
	})
}
