package consolelog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// pattern returns n bytes that differ by position, so a reordering or a lost
// chunk shows up in a comparison.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
		if i%97 == 96 {
			b[i] = '\n'
		}
	}
	return b
}

// files returns the sizes of path and every path.N that exists, keyed by suffix.
func files(t *testing.T, path string) map[string]int64 {
	t.Helper()
	matches, err := filepath.Glob(path + "*")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil {
			t.Fatal(err)
		}
		out[m[len(path):]] = fi.Size()
	}
	return out
}

func TestRotationBound(t *testing.T) {
	const maxSize = 1000
	chunks := []int{1, 7, 333, 999, 1000, 1001, 2500, 13}
	for _, keep := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("keep=%d", keep), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "console.log")
			l, err := Open(path, maxSize, keep)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			data := pattern(10 * maxSize)
			for off, i := 0, 0; off < len(data); i++ {
				n := min(chunks[i%len(chunks)], len(data)-off)
				w, err := l.Write(data[off : off+n])
				if err != nil || w != n {
					t.Fatalf("Write(%d bytes) = %d, %v", n, w, err)
				}
				off += n
				// The bound holds after every write, not only at the end.
				var total int64
				for name, size := range files(t, path) {
					if size > maxSize {
						t.Fatalf("after %d bytes: %s is %d bytes, over MaxSize %d", off, path+name, size, maxSize)
					}
					total += size
				}
				if total > int64(maxSize*(keep+1)) {
					t.Fatalf("after %d bytes: %d bytes on disk, bound %d", off, total, maxSize*(keep+1))
				}
			}
			got := files(t, path)
			want := map[string]int64{"": maxSize}
			for i := 1; i <= keep; i++ {
				want[fmt.Sprintf(".%d", i)] = maxSize
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("files = %v, want %v", got, want)
			}

			// Tail across files, oldest first, for several lengths.
			retained := int64(maxSize * (keep + 1))
			for _, n := range []int64{1, 10, maxSize - 1, maxSize, maxSize + 1, 2*maxSize + 17, retained, retained + 1, 1 << 20} {
				b, err := Tail(path, keep, n)
				if err != nil {
					t.Fatalf("Tail(%d): %v", n, err)
				}
				wantN := min(n, retained)
				if !bytes.Equal(b, data[int64(len(data))-wantN:]) {
					t.Errorf("Tail(%d) = %d bytes, not the last %d bytes written", n, len(b), wantN)
				}
			}
		})
	}
}

// Reopening appends to the live file and keeps counting towards MaxSize.
func TestReopenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	l, err := Open(path, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(250)
	if _, err := l.Write(data[:60]); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := l.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}

	l, err = Open(path, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Write(data[60:]); err != nil {
		t.Fatal(err)
	}
	got := files(t, path)
	if want := map[string]int64{"": 50, ".1": 100, ".2": 100}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("files = %v, want %v", got, want)
	}
	b, err := Tail(path, 2, 1000)
	if err != nil || !bytes.Equal(b, data) {
		t.Errorf("Tail = %q, %v; want everything written", b, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}

func TestOpenDefaults(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		maxSize  int64
		keep     int
		wantMax  int64
		wantKeep int
	}{
		{0, -1, DefaultMaxSize, DefaultKeep},
		{-5, 0, DefaultMaxSize, 0},
		{10, 5, 10, 5},
	}
	for i, tc := range tests {
		l, err := Open(filepath.Join(dir, fmt.Sprint(i)), tc.maxSize, tc.keep)
		if err != nil {
			t.Fatal(err)
		}
		if l.MaxSize != tc.wantMax || l.Keep != tc.wantKeep {
			t.Errorf("Open(%d, %d): MaxSize %d Keep %d, want %d %d", tc.maxSize, tc.keep, l.MaxSize, l.Keep, tc.wantMax, tc.wantKeep)
		}
		l.Close()
	}
	if _, err := Open(filepath.Join(dir, "missing", "x.log"), 10, 1); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

func TestTailMissingAndEmpty(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "console.log")
	b, err := Tail(path, 3, 100)
	if err != nil || len(b) != 0 {
		t.Errorf("Tail of a missing log = %q, %v; want empty", b, err)
	}
	// Live file gone (rotated just now) but .1 present.
	if err := os.WriteFile(path+".1", []byte("older"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err = Tail(path, 3, 100)
	if err != nil || string(b) != "older" {
		t.Errorf("Tail = %q, %v; want %q", b, err, "older")
	}
	// Files beyond keep are ignored.
	if err := os.WriteFile(path+".2", []byte("ancient"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("live"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err = Tail(path, 1, 100)
	if err != nil || string(b) != "olderlive" {
		t.Errorf("Tail(keep=1) = %q, %v; want %q", b, err, "olderlive")
	}
	b, err = Tail(path, 0, 100)
	if err != nil || string(b) != "live" {
		t.Errorf("Tail(keep=0) = %q, %v; want %q", b, err, "live")
	}
	b, err = Tail(path, 3, 0)
	if err != nil || len(b) != 0 {
		t.Errorf("Tail(n=0) = %q, %v; want empty", b, err)
	}
}

// Concurrent writers never break the bound or lose bytes inside it.
func TestConcurrentWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	const maxSize, keep = 512, 2
	l, err := Open(path, maxSize, keep)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chunk := bytes.Repeat([]byte{byte('0' + g)}, 37)
			for i := 0; i < 50; i++ {
				if _, err := l.Write(chunk); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var total int64
	for name, size := range files(t, path) {
		if size > maxSize {
			t.Errorf("%s is %d bytes", name, size)
		}
		total += size
	}
	// 8*50*37 bytes: the rotated files are full, the live one holds the rest.
	written := int64(8 * 50 * 37)
	live := written % maxSize
	if live == 0 {
		live = maxSize
	}
	if want := live + keep*maxSize; total != want {
		t.Errorf("%d bytes retained, want %d", total, want)
	}
}

func BenchmarkWrite(b *testing.B) {
	l, err := Open(filepath.Join(b.TempDir(), "console.log"), 1<<20, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	buf := pattern(4096)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := l.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}
