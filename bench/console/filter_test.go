package main

import (
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/console"
)

// The benchmark program sends keystrokes with the clipboard policy
// "allow", because the default "deny" refuses input faster than a person
// types. These measure what the deny path's checks cost per message:
//
//	go test -run '^$' -bench . -benchmem ./bench/console

// BenchmarkInputFilterDenyKey is one typed key, admitted (keys 100 ms apart,
// so the token bucket never runs dry).
func BenchmarkInputFilterDenyKey(b *testing.B) {
	f := console.NewInputFilter(console.DefaultPolicy().Input)
	now := time.Unix(1e9, 0)
	key := []byte("a")
	for b.Loop() {
		now = now.Add(100 * time.Millisecond)
		if err := f.Check(key, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInputFilterDenyEscape is a cursor key (ESC [ A), admitted.
func BenchmarkInputFilterDenyEscape(b *testing.B) {
	f := console.NewInputFilter(console.DefaultPolicy().Input)
	now := time.Unix(1e9, 0)
	key := []byte("\x1b[A")
	for b.Loop() {
		now = now.Add(100 * time.Millisecond)
		if err := f.Check(key, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInputFilterDenyPaste is a bracketed paste, refused.
func BenchmarkInputFilterDenyPaste(b *testing.B) {
	f := console.NewInputFilter(console.DefaultPolicy().Input)
	now := time.Unix(1e9, 0)
	paste := []byte("\x1b[200~rm -rf /tmp/x\x1b[201~")
	for b.Loop() {
		now = now.Add(100 * time.Millisecond)
		if f.Check(paste, now) == nil {
			b.Fatal("paste admitted")
		}
	}
}

// BenchmarkInputFilterAllow is the policy the benchmark program uses.
func BenchmarkInputFilterAllow(b *testing.B) {
	f := console.NewInputFilter(benchPolicy().Input)
	now := time.Unix(1e9, 0)
	key := []byte("a")
	for b.Loop() {
		if err := f.Check(key, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSanitize4K is the output sanitiser on one 4 KiB chunk of the
// throughput phase's text (the largest CPU cost of broker.Output there,
// with the recording's JSON encoding).
func BenchmarkSanitize4K(b *testing.B) {
	var s console.Sanitizer
	p := text(4096, "vm000")
	var dst []byte
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		dst = s.Write(dst[:0], p)
	}
	if len(dst) != len(p) {
		b.Fatalf("sanitiser changed the text: %d bytes → %d", len(p), len(dst))
	}
}

// TestText checks the throughput text passes the sanitiser unchanged, so
// produced and delivered bytes compare one for one.
func TestText(t *testing.T) {
	var s console.Sanitizer
	for _, n := range []int{1, 100, 4096, 10000} {
		p := text(n, "vm001")
		if len(p) != n {
			t.Fatalf("text(%d) is %d bytes", n, len(p))
		}
		if got := s.Write(nil, p); string(got) != string(p) {
			t.Fatalf("sanitiser changed text(%d)", n)
		}
	}
}

// TestMarkerAccounting checks the reader's drop-marker parsing.
func TestMarkerAccounting(t *testing.T) {
	var r reader
	r.account([]byte("abc\r\n[bulwark: 1234 bytes of output dropped: this client reads too slowly]\r\ndef[bulwark: x\r\n[bulwark: 5 bytes of output dropped: this client reads too slowly]\r\n"))
	if got, want := r.payload.Load(), int64(len("abcdef[bulwark: x")); got != want {
		t.Errorf("payload %d, want %d", got, want)
	}
	if r.markers.Load() != 2 || r.dropped.Load() != 1239 {
		t.Errorf("markers %d dropped %d, want 2 and 1239", r.markers.Load(), r.dropped.Load())
	}
}
