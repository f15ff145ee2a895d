package safefs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestReadFileCapped(t *testing.T) {
	tests := []struct {
		name    string
		limit   int64
		want    string
		wantErr error
	}{
		{"a", 100, "inside", nil},
		{"a", 6, "inside", nil},
		{"a", 5, "", ErrTooLarge},
		{"a", 0, "", ErrTooLarge},
		{"sub/b", 1, "b", nil},
		{"fifo", 100, "", ErrNotRegular},
		{"sub", 100, "", ErrNotRegular},
		{"lnk", 100, "", ErrSymlink},
		{"rel", 100, "", ErrSymlink},
		{"dirlnk/shadow", 100, "", ErrSymlink},
		{"hard", 100, "", ErrHardlink},
		{"/etc/shadow", 100, "", ErrInvalidName},
	}
	forEachResolver(t, func(t *testing.T) {
		fx := newFixture(t)
		for _, tt := range tests {
			var b []byte
			var err error
			withinDeadline(t, func() { b, err = fx.d.ReadFileCapped(tt.name, tt.limit) })
			if !errors.Is(err, tt.wantErr) || string(b) != tt.want {
				t.Errorf("ReadFileCapped(%q, %d) = %q, %v; want %q, %v", tt.name, tt.limit, b, err, tt.want, tt.wantErr)
			}
		}
		fx.checkOutside(t)
	})
}

// TestHugeFile: a 1 TiB sparse file, as a uid could plant to exhaust the
// daemon's memory, is refused or cut without being read.
func TestHugeFile(t *testing.T) {
	fx := newFixture(t)
	const size = 1 << 40
	tail := []byte("last line of the log\n")
	p := filepath.Join(fx.root, "qemu.log")
	f, err := os.Create(p)
	must(t, err)
	if err := f.Truncate(size); err != nil {
		f.Close()
		t.Skipf("file system cannot hold a sparse 1 TiB file: %v", err)
	}
	_, err = f.WriteAt(tail, size-int64(len(tail)))
	must(t, err)
	must(t, f.Close())

	if _, err := fx.d.ReadFileCapped("qemu.log", 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ReadFileCapped = %v, want ErrTooLarge", err)
	}
	b, err := fx.d.ReadFileTail("qemu.log", int64(len(tail)))
	if err != nil || !bytes.Equal(b, tail) {
		t.Fatalf("ReadFileTail = %q, %v; want %q", b, err, tail)
	}
	b, err = fx.d.ReadFileTail("qemu.log", 4096)
	if err != nil || len(b) != 4096 || !bytes.HasSuffix(b, tail) {
		t.Fatalf("ReadFileTail(4096) = %d bytes, %v", len(b), err)
	}
}

func TestReadTail(t *testing.T) {
	fx := newFixture(t)
	f, err := fx.d.Open("a", os.O_RDONLY, 0)
	must(t, err)
	defer f.Close()
	for _, tt := range []struct {
		limit int64
		want  string
	}{{100, "inside"}, {6, "inside"}, {3, "ide"}, {0, ""}} {
		b, err := ReadTail(f, tt.limit)
		if err != nil || string(b) != tt.want {
			t.Errorf("ReadTail(%d) = %q, %v; want %q", tt.limit, b, err, tt.want)
		}
	}
	if _, err := ReadTail(f, -1); err == nil {
		t.Error("ReadTail(-1) succeeded")
	}

	r, w, err := os.Pipe()
	must(t, err)
	defer r.Close()
	defer w.Close()
	withinDeadline(t, func() {
		if _, err := ReadTail(r, 10); !errors.Is(err, ErrNotRegular) {
			t.Errorf("ReadTail(pipe) = %v, want ErrNotRegular", err)
		}
	})
	for _, name := range []string{"fifo", "sub", "missing"} {
		if _, err := fx.d.ReadFileTail(name, 10); err == nil {
			t.Errorf("ReadFileTail(%q) succeeded", name)
		}
	}
	if _, err := fx.d.ReadFileTail("missing", 10); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("ReadFileTail(missing) = %v", err)
	}
}
