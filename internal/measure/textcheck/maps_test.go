package textcheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseMaps(t *testing.T) {
	good := "558d12d4a000-558d12d4f000 r-xp 00002000 fe:00 247766                     /usr/bin/sleep\n" +
		"7f294f34f000-7f294f352000 rw-p 00000000 00:00 0 \n" +
		"7f294f546000-7f294f548000 r-xp 00000000 00:00 0                          [vdso]\n" +
		"7f294f550000-7f294f551000 r-xp 00000000 103:0a 12 /tmp/a b (deleted)\n" +
		"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n"
	ms, err := ParseMaps([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{0x558d12d4a000, 0x558d12d4f000, "r-xp", 0x2000, 0xfe, 0, 247766, "/usr/bin/sleep"},
		{0x7f294f34f000, 0x7f294f352000, "rw-p", 0, 0, 0, 0, ""},
		{0x7f294f546000, 0x7f294f548000, "r-xp", 0, 0, 0, 0, "[vdso]"},
		{0x7f294f550000, 0x7f294f551000, "r-xp", 0, 0x103, 0xa, 12, "/tmp/a b (deleted)"},
		{0xffffffffff600000, 0xffffffffff601000, "--xp", 0, 0, 0, 0, "[vsyscall]"},
	}
	if fmt.Sprint(ms) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", ms, want)
	}
	if !ms[0].Exec() || ms[1].Exec() || !ms[2].Anonymous() || ms[3].Anonymous() {
		t.Error("Exec/Anonymous wrong")
	}
	for _, bad := range []string{
		"1000-2000 r-xp 0 fe:00 1 /a",                                // no newline
		"2000-1000 r-xp 0 fe:00 1 /a\n",                              // inverted
		"1000-1000 r-xp 0 fe:00 1 /a\n",                              // empty
		"1000-2000 rxxp 0 fe:00 1 /a\n",                              // perms
		"1000-2000 r-xp 0 fe00 1 /a\n",                               // device
		"1000-2000 r-xp 0 fe:00 -1 /a\n",                             // inode
		"1000-2000 r-xp 0 fe:00  /a\n",                               // empty inode
		"1000-2000 r-xp 0 fe:00 1 /a\n1500-3000 r-xp 0 fe:00 1 /a\n", // overlap
		"10000000000000000-10000000000000001 r-xp 0 fe:00 1 /a\n",    // too wide
		"1000-2000 r-xp 0 fe:00 1 /" + strings.Repeat("a", maxLine) + "\n",
		"g000-2000 r-xp 0 fe:00 1 /a\n",
	} {
		if _, err := ParseMaps([]byte(bad)); err == nil {
			t.Errorf("accepted %.60q", bad)
		}
	}
	var b strings.Builder
	for i := 0; i <= MaxMappings; i++ {
		fmt.Fprintf(&b, "%x-%x r-xp 0 0:0 0\n", (i+1)*0x1000, (i+1)*0x1000+0x800)
	}
	if _, err := ParseMaps([]byte(b.String())); !errors.Is(err, ErrMapsTooLarge) {
		t.Errorf("%d mappings: %v, want ErrMapsTooLarge", MaxMappings+1, err)
	}
	if _, err := ParseMaps(make([]byte, MaxMapsBytes+1)); !errors.Is(err, ErrMapsTooLarge) {
		t.Errorf("over MaxMapsBytes: %v", err)
	}
}

func FuzzParseMaps(f *testing.F) {
	f.Add([]byte("558d12d4a000-558d12d4f000 r-xp 00002000 fe:00 247766                     /usr/bin/sleep\n"))
	f.Add([]byte("7f294f546000-7f294f548000 r-xp 00000000 00:00 0                          [vdso]\n1-2 ---s 0 0:0 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseMaps(b)
		if err != nil {
			return
		}
		if len(ms) > MaxMappings {
			t.Fatalf("%d mappings", len(ms))
		}
		var prev uint64
		for i, m := range ms {
			if m.Start >= m.End || (i > 0 && m.Start < prev) || len(m.Perms) != 4 || strings.HasPrefix(m.Name, " ") {
				t.Fatalf("invalid mapping accepted: %+v", m)
			}
			prev = m.End
			_ = m.Exec()
		}
	})
}

func TestDiffer(t *testing.T) {
	want := make([]byte, 64)
	got := make([]byte, 64)
	got[3] = 1
	got[5] = 1  // 1 equal byte between: merged with 3
	got[20] = 1 // far: its own run
	got[40] = 1 // masked
	var d differ
	d.feed(0x1000, want[:32], got[:32], []span{{0x1000 + 40, 0x1000 + 48}})
	d.feed(0x1020, want[32:], got[32:], []span{{0x1000 + 40, 0x1000 + 48}})
	d.close()
	if d.total != 2 || fmt.Sprint(d.runs) != "[{4099 4102} {4116 4117}]" || d.masked != 8 {
		t.Fatalf("runs %v total %d masked %d", d.runs, d.total, d.masked)
	}
	// A run across chunks stays one run; the report cap counts the rest.
	d = differ{}
	all := make([]byte, 4*MaxReported*mergeGap)
	diff := make([]byte, len(all))
	for i := 0; i < len(diff); i += 2 * mergeGap {
		diff[i] = 1
	}
	diff[len(diff)/2-1], diff[len(diff)/2] = 1, 1
	d.feed(0, all[:len(all)/2], diff[:len(all)/2], nil)
	d.feed(uint64(len(all)/2), all[len(all)/2:], diff[len(all)/2:], nil)
	d.close()
	if d.total != 2*MaxReported || len(d.runs) != MaxReported {
		t.Fatalf("total %d, listed %d", d.total, len(d.runs))
	}
}

func TestFirstUncovered(t *testing.T) {
	cov := []span{{0x1000, 0x3000}, {0x3000, 0x4000}, {0x5000, 0x6000}}
	for _, c := range []struct {
		t    span
		off  uint64
		miss bool
	}{
		{span{0x1000, 0x4000}, 0, false},
		{span{0x1000, 0x5000}, 0x4000, true},
		{span{0x0, 0x2000}, 0x0, true},
		{span{0x5000, 0x6001}, 0x6000, true},
	} {
		off, miss := firstUncovered(mergeSpans(append([]span(nil), cov...)), c.t)
		if off != c.off || miss != c.miss {
			t.Errorf("%v: %#x %t, want %#x %t", c.t, off, miss, c.off, c.miss)
		}
	}
}

// TestRelocationMasks: relocations into code (DT_TEXTREL objects) are
// masked by their size; RELR bitmaps are decoded.
func TestRelocationMasks(t *testing.T) {
	o := &object{segs: []segment{{off: 0x1000, filesz: 0x1000, vaddr: 0x401000, exec: true}, {off: 0x2000, filesz: 0x1000, vaddr: 0x403000}}}
	var raw []byte
	put := func(v uint64) { raw = binary.LittleEndian.AppendUint64(raw, v) }
	put(0x401010)        // address: one word at code
	put(1 | 1<<1 | 1<<3) // bitmap: words 0 and 2 after 0x401018
	put(0x403000)        // data: not masked
	got := mergeSpans(o.relrMasks(binary.LittleEndian, raw, nil))
	if fmt.Sprint(got) != "[{4112 4128} {4136 4144}]" {
		t.Fatalf("relr masks %v", got)
	}
	if relocSize(0x3e, 2) != 4 || relocSize(0x3e, 1) != 8 || relocSize(0x3e, 0) != 0 {
		t.Error("relocSize")
	}
}

func TestLookupSymbol(t *testing.T) {
	syms := []symbol{{0x100, 0x50, 2, "f"}, {0x200, 0x10, 1, "weak_g"}, {0x200, 0x10, 2, "g"}}
	for va, want := range map[uint64]string{0x100: "f+0x0", 0x14f: "f+0x4f", 0x150: "", 0x205: "g+0x5", 0x50: ""} {
		if got := lookupSymbol(syms, va); got != want {
			t.Errorf("%#x: %q, want %q", va, got, want)
		}
	}
}
