package fsaudit

import (
	"reflect"
	"strings"
	"testing"
)

// TestScanFile checks the scanner itself on small sources.
func TestScanFile(t *testing.T) {
	tests := []struct {
		desc string
		src  string
		want map[string]int
	}{
		{
			desc: "plain calls, counted per function",
			src: `package p
import "os"
func F() { os.Remove("a"); os.Remove("b"); os.Stat("c") }
func G() { os.Open("x") }`,
			want: map[string]int{"f.go F os.Remove": 2, "f.go G os.Open": 1},
		},
		{
			desc: "methods, pointer and generic receivers",
			src: `package p
import "net"
type T struct{}
type L[K any] struct{}
func (t *T) M() { net.Dial("unix", "s") }
func (l L[K]) N() { net.Listen("unix", "s") }
func (l *L[K]) O() { net.ListenUnixgram("unixgram", nil) }`,
			want: map[string]int{"f.go T.M net.Dial": 1, "f.go L.N net.Listen": 1, "f.go L.O net.ListenUnixgram": 1},
		},
		{
			desc: "aliased imports, x/sys/unix, syscall",
			src: `package p
import (
	sys "syscall"
	u "golang.org/x/sys/unix"
	stdos "os"
)
func F() { sys.Mkfifo("f", 0); u.Openat(0, "x", 0, 0); u.Mount("", "", "", 0, ""); stdos.Chown("x", 1, 1) }`,
			want: map[string]int{"f.go F syscall.Mkfifo": 1, "f.go F unix.Openat": 1, "f.go F unix.Mount": 1, "f.go F os.Chown": 1},
		},
		{
			desc: "closures, function values and package-level uses",
			src: `package p
import "os"
var rm = os.RemoveAll
func F() { defer func() { os.Remove("x") }(); g(os.Truncate) }`,
			want: map[string]int{"f.go - os.RemoveAll": 1, "f.go F os.Remove": 1, "f.go F os.Truncate": 1},
		},
		{
			desc: "DialContext on anything",
			src: `package p
import "net"
func F(d *net.Dialer, x struct{ DialContext func() }) { d.DialContext(nil, "unix", "s"); x.DialContext() }`,
			want: map[string]int{"f.go F *.DialContext": 2},
		},
		{
			desc: "names that only look alike",
			src: `package p
import "os"
type fake struct{}
func (fake) Open(string) {}
func F(f fake, osx fake) { f.Open("x"); osx.Open("y"); os.Getenv("HOME") }`,
			want: map[string]int{},
		},
	}
	for _, tt := range tests {
		got, err := scanFile("f.go", []byte(tt.src))
		if err != nil {
			t.Errorf("%s: %v", tt.desc, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.desc, got, tt.want)
		}
	}
	if _, err := scanFile("f.go", []byte("package p\nimport . \"os\"\nfunc F() { Remove(\"x\") }")); err == nil {
		t.Error("dot import of os accepted")
	}
}

func TestParseEntry(t *testing.T) {
	tests := []struct {
		line string
		want entry
		ok   bool
	}{
		{"a.go F os.Open — host-wide config file", entry{"a.go F os.Open", 1, "host-wide config file"}, true},
		{"a.go T.M os.Remove x3 — in the state directory", entry{"a.go T.M os.Remove", 3, "in the state directory"}, true},
		{"a.go F os.Open -- ascii dashes", entry{"a.go F os.Open", 1, "ascii dashes"}, true},
		{"a.go F os.Open", entry{}, false},
		{"a.go os.Open — too few fields", entry{}, false},
		{"a.go F os.Open x1 — count of one is implicit", entry{}, false},
		{"a.go F os.Open xx — bad count", entry{}, false},
	}
	for _, tt := range tests {
		got, err := parseEntry(tt.line)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseEntry(%q) = %+v, %v", tt.line, got, err)
		}
		if tt.ok && got.line() != strings.Replace(tt.line, " -- ", " — ", 1) {
			t.Errorf("line() = %q, want %q", got.line(), tt.line)
		}
	}
}

func TestCompareAndMerge(t *testing.T) {
	found := map[string]int{"a.go F os.Open": 1, "a.go G os.Remove": 3, "b.go H net.Dial": 1}
	list := []entry{
		{"a.go F os.Open", 1, "fine"},
		{"a.go G os.Remove", 2, "two were fine"},
		{"c.go Gone os.Open", 1, "stale"},
		{"b.go H net.Dial", 1, "TODO: review"},
	}
	probs := compare(list, found)
	want := []string{"a.go G os.Remove: 3 call sites, 2 reviewed", "stale entry", "b.go H net.Dial: no reason yet"}
	if len(probs) != len(want) {
		t.Fatalf("compare: %q", probs)
	}
	for i, w := range want {
		if !strings.Contains(probs[i], w) {
			t.Errorf("problem %d = %q, want it to mention %q", i, probs[i], w)
		}
	}
	merged := merge(list, found)
	wantMerged := []entry{
		{"a.go F os.Open", 1, "fine"},
		{"a.go G os.Remove", 3, "TODO: review (was x2: two were fine)"},
		{"b.go H net.Dial", 1, "TODO: review"},
	}
	if !reflect.DeepEqual(merged, wantMerged) {
		t.Errorf("merge = %+v", merged)
	}
	if got := compare(nil, map[string]int{"n.go F os.Open": 2}); len(got) != 1 ||
		!strings.Contains(got[0], "n.go F os.Open x2 — <reason>") || !strings.Contains(got[0], "internal/safefs") {
		t.Errorf("compare for a new call = %q", got)
	}
}
