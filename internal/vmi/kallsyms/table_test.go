package kallsyms

import (
	"encoding/json"
	"strings"
	"testing"
)

func sampleTable(t *testing.T) *Table {
	t.Helper()
	tab, err := New([]Symbol{
		{Name: "b_func", Addr: 0x2000, Type: 't'},
		{Name: "a_func", Addr: 0x1000, Type: 'T'},
		{Name: "alias_second", Addr: 0x1000, Type: 't'},
		{Name: "dup", Addr: 0x3000, Type: 't'},
		{Name: "dup", Addr: 0x4000, Type: 'T'},
		{Name: "dup", Addr: 0x5000, Type: 't'},
		{Name: "last", Addr: 0x6000, Type: 'D'},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestLookupPrefersGlobal(t *testing.T) {
	tab := sampleTable(t)
	if a, typ, ok := tab.Lookup("dup"); !ok || a != 0x4000 || typ != 'T' {
		t.Errorf("Lookup(dup) = %#x %c %v, want the global one at 0x4000", a, typ, ok)
	}
	if got := len(tab.LookupAll("dup")); got != 3 {
		t.Errorf("LookupAll(dup) found %d", got)
	}
	if _, _, ok := tab.Lookup("missing"); ok {
		t.Error("Lookup(missing) succeeded")
	}
}

func TestNearest(t *testing.T) {
	tab := sampleTable(t)
	for _, c := range []struct {
		addr uint64
		name string
		off  uint64
		ok   bool
	}{
		{0xfff, "", 0, false},
		{0x1000, "a_func", 0, true}, // first alias in table order
		{0x1fff, "a_func", 0xfff, true},
		{0x2000, "b_func", 0, true},
		{0x4010, "dup", 0x10, true},
		{0x6000, "last", 0, true},
		{0x6001, "", 0, false}, // past the last symbol: unknown size
	} {
		name, off, ok := tab.Nearest(c.addr)
		if name != c.name || off != c.off || ok != c.ok {
			t.Errorf("Nearest(%#x) = %q+%#x %v, want %q+%#x %v", c.addr, name, off, ok, c.name, c.off, c.ok)
		}
	}
	if s, ok := tab.Next(0x1000); !ok || s.Name != "b_func" {
		t.Errorf("Next(0x1000) = %+v %v", s, ok)
	}
	if _, ok := tab.Next(0x6000); ok {
		t.Error("Next past the last symbol succeeded")
	}
	var empty Table
	if _, _, ok := empty.Nearest(1); ok {
		t.Error("Nearest on an empty table succeeded")
	}
}

func TestNewRejectsBadNames(t *testing.T) {
	for _, s := range []Symbol{
		{Name: "", Type: 'T'},
		{Name: "x", Type: '?'},
		{Name: "a\nb", Type: 'T'},
		{Name: "a b", Type: 'T'},
		{Name: strings.Repeat("x", maxNameLen), Type: 'T'},
	} {
		if _, err := New([]Symbol{s}); err == nil {
			t.Errorf("New accepted %+v", s)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	tab := sampleTable(t)
	data, err := json.Marshal(tab)
	if err != nil {
		t.Fatal(err)
	}
	var back Table
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Len() != tab.Len() {
		t.Fatalf("Len %d, want %d", back.Len(), tab.Len())
	}
	for i := range tab.Len() {
		if back.At(i) != tab.At(i) {
			t.Errorf("symbol %d: %+v, want %+v", i, back.At(i), tab.At(i))
		}
	}
}

// compact builds the JSON of a table whose decompressed data is raw.
func compact(t testing.TB, format string, count int, raw []byte) []byte {
	enc, _, err := codecs()
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(compactTable{Format: format, Count: count, Data: enc.EncodeAll(raw, nil)})
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestJSONRejectsCorruption(t *testing.T) {
	if err := json.Unmarshal(compact(t, compactFormat, 2, []byte("TT\x01\x01a\nb")), new(Table)); err != nil {
		t.Fatalf("the well-formed reference was rejected: %v", err)
	}
	for name, js := range map[string][]byte{
		"format":   compact(t, "other", 1, []byte("T\x00a")),
		"count":    compact(t, compactFormat, 2, []byte("T\x00a")),
		"zero":     compact(t, compactFormat, 0, nil),
		"huge":     compact(t, compactFormat, MaxSymbols+1, nil),
		"names":    compact(t, compactFormat, 1, []byte("T\x00a\nb")),
		"type":     compact(t, compactFormat, 1, []byte("1\x00a")),
		"deltas":   compact(t, compactFormat, 2, []byte("TT\x80")),
		"space":    compact(t, compactFormat, 1, []byte("T\x00a b")),
		"empty":    compact(t, compactFormat, 1, []byte("T\x00")),
		"overflow": compact(t, compactFormat, 2, []byte("TT\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x01a\nb")),
		"not zstd": []byte(`{"format":"kallsyms-zstd-1","count":1,"data":"AAAA"}`),
		"not json": []byte(`{"format":`),
	} {
		var tab Table
		if err := json.Unmarshal(js, &tab); err == nil {
			t.Errorf("%s: corrupt table accepted", name)
		}
	}
}
