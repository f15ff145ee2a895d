package vmcoreinfo

import (
	"bytes"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/mem"
)

func TestFind(t *testing.T) {
	ram := make([]byte, 2<<20)
	copy(ram[0x1000:], "OSRELEASE=%s\n\x00") // the kernel's format string
	copy(ram[0x2000:], strings.Replace(string(sample(t)), "PAGESIZE=4096", "PAGESIZE=8192", 1)+"\x00")
	copy(ram[0x10000:], "OSRELEASE="+strings.Repeat("A", 5000)) // no NUL within a page
	copy(ram[0x100000:], append(sample(t), 0))
	copy(ram[0x102018:], append(sample(t), 0))   // the ELF note's copy
	copy(ram[len(ram)-16:], "OSRELEASE=6.1.0\n") // runs into the end of RAM
	info, at, err := Find(mem.FromBytes(ram))
	if err != nil {
		t.Fatal(err)
	}
	if at != 0x100000 || info.Rejected != 3 || info.OSRelease != "6.1.0-28-cloud-amd64" {
		t.Fatalf("Find = %#x, rejected %d, %q", at, info.Rejected, info.OSRelease)
	}
	// Without the real ones, every candidate is rejected and counted.
	clear(ram[0x100000:0x104000])
	_, _, err = Find(mem.FromBytes(ram))
	if err == nil || !strings.Contains(err.Error(), "4 candidates rejected") {
		t.Fatalf("only fakes: %v", err)
	}
	if _, _, err := Find(mem.FromBytes(make([]byte, 8192))); err == nil {
		t.Fatal("found in zeroed RAM")
	}
}

func TestFindGivesUp(t *testing.T) {
	fakes := bytes.Repeat([]byte("OSRELEASE=6.1\x00"), MaxCandidates+10)
	ram := append(fakes, append(sample(t), 0)...)
	_, _, err := Find(mem.FromBytes(ram))
	if err == nil || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("Find = %v, want giving up", err)
	}
}

// split is RAM at [0, 64 KiB) and [1 MiB, 1 MiB + 64 KiB).
type split struct{ lo, hi []byte }

func (s split) Size() uint64 { return 1<<20 + uint64(len(s.hi)) }
func (s split) Regions() []mem.Region {
	return []mem.Region{{GPA: 0, Size: uint64(len(s.lo))}, {GPA: 1 << 20, Size: uint64(len(s.hi))}}
}
func (s split) ReadPhys(p []byte, gpa uint64) error {
	if err := mem.FromBytes(s.lo).ReadPhys(p, gpa); err == nil {
		return nil
	}
	if gpa < 1<<20 {
		return mem.FromBytes(nil).ReadPhys(p, gpa)
	}
	return mem.FromBytes(s.hi).ReadPhys(p, gpa-1<<20)
}

func TestFindAcrossHole(t *testing.T) {
	s := split{lo: make([]byte, 64<<10), hi: make([]byte, 64<<10)}
	copy(s.lo[len(s.lo)-100:], "OSRELEASE=6.1.0-28-cloud-amd64\nPAGESIZE=4096\n") // cut by the hole
	copy(s.hi[0x1000:], append(sample(t), 0))
	info, at, err := Find(s)
	if err != nil || at != 1<<20+0x1000 || info.Rejected != 1 {
		t.Fatalf("Find = %#x, %v", at, err)
	}
}

// FuzzFind plants fuzzed text around real VMCOREINFO in a small RAM: Find
// must not panic, and a result must validate.
func FuzzFind(f *testing.F) {
	f.Add([]byte("OSRELEASE=%s\n"), []byte("OSRELEASE=6.1\nPAGESIZE=4096\x00"), uint16(100))
	f.Fuzz(func(t *testing.T, before, after []byte, gap uint16) {
		ram := make([]byte, 0, 64<<10)
		ram = append(ram, before...)
		ram = append(ram, make([]byte, int(gap)%4096)...)
		ram = append(ram, sample(t)...)
		ram = append(ram, after...)
		info, _, err := Find(mem.FromBytes(ram))
		if err != nil {
			return
		}
		if err := info.Validate(); err != nil {
			t.Fatalf("Find returned an invalid text: %v", err)
		}
	})
}
