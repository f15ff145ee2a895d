package kallsyms

import (
	"encoding/json"
	"testing"
)

// FuzzParse feeds mutated kallsyms data to the parser: it must never panic or
// run away, and whatever it accepts must satisfy the table's invariants.
func FuzzParse(f *testing.F) {
	f.Add(buildKallsyms(f, sampleSymbols(40), buildOpts{markerSize: 4, mode: ModeAbsolutePercpu, seqs: true}))
	f.Add(buildKallsyms(f, sampleSymbols(300), buildOpts{markerSize: 4, mode: ModeAbsolutePercpu}))
	f.Add(buildKallsyms(f, sampleSymbols(20), buildOpts{markerSize: 8, mode: ModeAbsolute, lead: 16}))
	f.Add(buildKallsyms(f, sampleSymbols(20)[3:], buildOpts{markerSize: 4, mode: ModeRelative, reordered: true}))
	f.Add([]byte("0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := Parse(b)
		if err != nil {
			return
		}
		checkInvariants(t, tab)
	})
}

// FuzzTableJSON checks that decoding a cached table never panics and that an
// accepted table re-encodes to something that decodes the same.
func FuzzTableJSON(f *testing.F) {
	f.Add(compact(f, compactFormat, 2, []byte("TT\x01\x01a\nb")))
	if js, err := json.Marshal(sampleTableF(f)); err == nil {
		f.Add(js)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var tab Table
		if tab.UnmarshalJSON(b) != nil {
			return
		}
		checkInvariants(t, &tab)
		again, err := tab.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var back Table
		if err := back.UnmarshalJSON(again); err != nil || back.Len() != tab.Len() {
			t.Fatalf("re-encoded table does not decode: %v", err)
		}
	})
}

func sampleTableF(tb testing.TB) *Table {
	tab, err := New(sampleSymbols(300))
	if err != nil {
		tb.Fatal(err)
	}
	return tab
}
