package kallsyms

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseSyntheticLayouts(t *testing.T) {
	for _, n := range []int{10, 256, 257, 1000} {
		for _, o := range []buildOpts{
			{markerSize: 4, mode: ModeAbsolutePercpu, seqs: true},
			{markerSize: 4, mode: ModeAbsolutePercpu},
			{markerSize: 8, mode: ModeAbsolutePercpu},
			{markerSize: 8, mode: ModeRelative, seqs: true},
			{markerSize: 4, mode: ModeRelative, reordered: true, seqs: true},
			{markerSize: 4, mode: ModeAbsolutePercpu, reordered: true},
			{markerSize: 8, mode: ModeAbsolute},
			{markerSize: 4, mode: ModeAbsolute, reordered: true},
		} {
			o.lead = 4096
			name := fmt.Sprintf("n=%d/w=%d/%v/seqs=%v/reordered=%v", n, o.markerSize, o.mode, o.seqs, o.reordered)
			t.Run(name, func(t *testing.T) {
				syms := sampleSymbols(n)
				if o.mode == ModeRelative {
					syms = syms[3:] // no per-CPU symbols without ABSOLUTE_PERCPU
				}
				buf := buildKallsyms(t, syms, o)
				tab, err := Parse(buf)
				if err != nil {
					t.Fatal(err)
				}
				if tab.Len() != len(syms) {
					t.Fatalf("Len = %d, want %d", tab.Len(), len(syms))
				}
				for i, want := range syms {
					if got := tab.At(i); got != want {
						t.Fatalf("symbol %d = %+v, want %+v", i, got, want)
					}
				}
				l := tab.Layout()
				// With a single marker a u64 0 reads the same as a u32 0
				// plus padding; and seqs_of_names is only located when it
				// sits between the markers and the token table.
				wantW := o.markerSize
				if len(syms) <= 256 {
					wantW = l.MarkerSize
				}
				wantSeqs := o.seqs && !o.reordered
				if l.MarkerSize != wantW || l.Mode != o.mode || l.Reordered != o.reordered || (l.SeqsOfNames.Size != 0) != wantSeqs {
					t.Errorf("layout %+v does not match %+v", l, o)
				}
				if l.TokenTable.Off < int64(o.lead) {
					t.Errorf("token table at %#x, inside the junk prefix", l.TokenTable.Off)
				}
			})
		}
	}
}

func TestParseRejectsJunk(t *testing.T) {
	for name, buf := range map[string][]byte{
		"empty":  nil,
		"zeros":  make([]byte, 1<<16),
		"digits": []byte("0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00"),
	} {
		if _, err := Parse(buf); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", name, err)
		}
	}
}

// Every truncation and many single-byte corruptions of a valid table must
// fail cleanly or still decode sorted symbols; never panic.
func TestParseTruncatedAndCorrupted(t *testing.T) {
	buf := buildKallsyms(t, sampleSymbols(300), buildOpts{markerSize: 4, mode: ModeAbsolutePercpu, seqs: true, lead: 64})
	for cut := 0; cut < len(buf); cut += 7 {
		if tab, err := Parse(buf[:cut]); err == nil {
			checkInvariants(t, tab)
		}
	}
	for i := 0; i < len(buf); i += 3 {
		c := append([]byte(nil), buf...)
		c[i] ^= 0x5a
		if tab, err := Parse(c); err == nil {
			checkInvariants(t, tab)
		}
	}
}

func TestParseRejectsBadNames(t *testing.T) {
	syms := sampleSymbols(20)
	buf := buildKallsyms(t, syms, buildOpts{markerSize: 4, mode: ModeAbsolutePercpu, lead: 64})
	tab, err := Parse(buf)
	if err != nil {
		t.Fatal(err)
	}
	// Turn the multi-character token "task" into one with a newline: the
	// table still parses structurally but the names must be refused.
	tt := tab.Layout().TokenTable
	c := append([]byte(nil), buf...)
	for i := tt.Off; i < tt.Off+tt.Size-4; i++ {
		if string(c[i:i+4]) == "sys_" {
			c[i+1] = '\n'
		}
	}
	if _, err := Parse(c); err == nil {
		t.Fatal("a name with a control character was accepted")
	}
}

func checkInvariants(t *testing.T, tab *Table) {
	t.Helper()
	if tab.Len() <= 0 || tab.Len() > MaxSymbols {
		t.Fatalf("Len = %d", tab.Len())
	}
	for i := 1; i < tab.Len(); i++ {
		if tab.At(i).Addr < tab.At(i-1).Addr {
			t.Fatalf("symbols %d and %d out of order", i-1, i)
		}
	}
	for i := range tab.Len() {
		s := tab.At(i)
		if err := checkName(s.Name, s.Type); err != nil {
			t.Fatalf("symbol %d: %v", i, err)
		}
	}
}
