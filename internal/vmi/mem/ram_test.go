package mem

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// ramFile writes b to a new file and returns its path.
func ramFile(t *testing.T, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mem")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestOpenRAMSmall(t *testing.T) {
	data := pattern(3 * 4096)
	r, err := OpenRAM(ramFile(t, data), uint64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != uint64(len(data)) {
		t.Fatalf("Size = %d", r.Size())
	}
	p := make([]byte, 5000)
	if err := r.ReadPhys(p, 4000); err != nil || !bytes.Equal(p, data[4000:9000]) {
		t.Fatalf("ReadPhys: %v", err)
	}
	if err := r.ReadPhys(p, uint64(len(data))-4999); !errors.Is(err, ErrNotRAM) {
		t.Fatalf("read past the end: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadPhys(p, 0); err == nil {
		t.Fatal("read after Close succeeded")
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestOpenRAMMicrovmHigh maps a sparse file larger than 3 GiB and checks
// that file offset 3 GiB appears at GPA 4 GiB and the hole reads nothing.
func TestOpenRAMMicrovmHigh(t *testing.T) {
	const size = 3<<30 + 8192
	path := filepath.Join(t.TempDir(), "mem")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("low-end!"), 3<<30-8); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("high"), 3<<30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r, err := OpenRAM(path, size)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if want := uint64(4<<30 + 8192); r.Size() != want {
		t.Fatalf("Size = %#x, want %#x", r.Size(), want)
	}
	if rg := r.Regions(); len(rg) != 3 || rg[0] != (Region{0, 0xf0000}) || rg[2] != (Region{4 << 30, 8192}) {
		t.Fatalf("Regions = %v", rg)
	}
	p := make([]byte, 8)
	if err := r.ReadPhys(p, 3<<30-8); err != nil || string(p) != "low-end!" {
		t.Fatalf("end of low RAM: %q, %v", p, err)
	}
	if err := r.ReadPhys(p[:4], 4<<30); err != nil || string(p[:4]) != "high" {
		t.Fatalf("GPA 4 GiB: %q, %v", p[:4], err)
	}
	for _, gpa := range []uint64{3<<30 - 4, 3 << 30, 4<<30 - 1, 4<<30 + 8190, 0xeffff, 0xf0000, 0xffff8} {
		if err := r.ReadPhys(p, gpa); !errors.Is(err, ErrNotRAM) {
			t.Errorf("ReadPhys(%#x) = %v, want ErrNotRAM", gpa, err)
		}
	}
	at, err := Scan(r, []byte("high"), 3<<30-4096, r.Size(), 1<<20)
	if err != nil || at != 4<<30 {
		t.Fatalf("Scan = %#x, %v", at, err)
	}
}

func TestMapRAMAdjacentRanges(t *testing.T) {
	data := pattern(8192)
	f, err := os.Open(ramFile(t, data))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// GPA 0..4095 is the second file page, 4096..8191 the first.
	r, err := MapRAM(f, Layout{Ranges: []Range{{0, 4096, 4096}, {4096, 4096, 0}}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := make([]byte, 16)
	if err := r.ReadPhys(p, 4088); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte(nil), data[8184:8192]...), data[0:8]...)
	if !bytes.Equal(p, want) {
		t.Fatalf("read across ranges = %x, want %x", p, want)
	}
	if rg := r.Regions(); len(rg) != 1 || rg[0] != (Region{0, 8192}) {
		t.Fatalf("Regions = %v", rg)
	}
}

func TestMapRAMRefuses(t *testing.T) {
	dir := t.TempDir()
	path := ramFile(t, pattern(4096))
	if _, err := OpenRAM(path, 8192); err == nil {
		t.Error("RAM larger than the file accepted")
	}
	if _, err := OpenRAM(path, 0); err == nil {
		t.Error("zero RAM accepted")
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRAM(link, 4096); err == nil {
		t.Error("symbolic link followed")
	}
	if _, err := OpenRAM(dir, 4096); err == nil {
		t.Error("directory accepted")
	}
	rw, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if _, err := MapRAM(rw, MicrovmLayout(4096)); err == nil {
		t.Error("writable descriptor accepted")
	}
}

// TestReadAfterTruncate checks that a RAM file shrinking under the mapping
// (SIGBUS) is an error, not a crash.
func TestReadAfterTruncate(t *testing.T) {
	path := ramFile(t, pattern(4*4096))
	r, err := OpenRAM(path, 4*4096)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 8)
	if err := r.ReadPhys(p, 0); err != nil {
		t.Fatalf("read of the remaining page: %v", err)
	}
	if err := r.ReadPhys(p, 2*4096); !errors.Is(err, ErrFault) {
		t.Fatalf("read of a truncated page = %v, want ErrFault", err)
	}
}

// TestMappingReadOnly checks the mapping cannot be written: the kernel
// refuses PROT_WRITE on a shared mapping of a read-only descriptor.
func TestMappingReadOnly(t *testing.T) {
	r, err := OpenRAM(ramFile(t, pattern(4096)), 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := mprotectRW(r.data); err == nil {
		t.Fatal("mprotect(PROT_WRITE) of the RAM mapping succeeded")
	}
}

func mprotectRW(b []byte) error { return unix.Mprotect(b, unix.PROT_READ|unix.PROT_WRITE) }
