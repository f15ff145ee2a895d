package guest

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
)

// Syscall is one sys_call_table entry.
type Syscall struct {
	NR       int    `json:"nr"`
	Addr     uint64 `json:"addr"`
	Symbol   string `json:"symbol"`
	Expected string `json:"expected,omitempty"` // what the kernel image has, when it differs
	InText   bool   `json:"in_text"`
	Hooked   bool   `json:"hooked"`
	Region   string `json:"region,omitempty"` // what a hooked entry points into
}

// MaxSyscalls bounds the table read.
const MaxSyscalls = 1024

// Syscalls reads sys_call_table and checks every entry against the kernel
// image: an entry must equal the address the image's table holds for that
// number, relocated by the slide (a pointer into the middle of the right
// handler is a hook too), and lie in kernel text. A hooked entry is named
// (symbol+offset) with the image's handler and the region it points into.
func (k *Kernel) Syscalls() ([]Syscall, error) {
	table, err := k.Sym("sys_call_table")
	if err != nil {
		return nil, err
	}
	n := len(k.L.ImageSyscalls)
	if n == 0 || n > MaxSyscalls {
		return nil, fmt.Errorf("the profile holds %d sys_call_table entries", n)
	}
	raw := make([]byte, 8*n)
	if err := k.Read(table, raw); err != nil {
		return nil, err
	}
	lo, hi, err := k.textRange()
	if err != nil {
		return nil, err
	}
	region := k.regionNamer()
	out := make([]Syscall, n)
	for i := range out {
		a := binary.LittleEndian.Uint64(raw[8*i:])
		want := k.L.ImageSyscalls[i] + k.Slide
		s := Syscall{NR: i, Addr: a, Symbol: k.syscallName(a), InText: a >= lo && a < hi}
		if a != want || !s.InText {
			s.Hooked = true
			s.Expected = k.syscallName(want)
			s.Region = region(a)
			if !s.InText {
				s.Symbol = strings.TrimSpace(fmt.Sprintf("%s %#x (%s)", s.Symbol, a, s.Region))
			}
		}
		out[i] = s
	}
	return out, nil
}

func (k *Kernel) textRange() (uint64, uint64, error) {
	lo, err := k.Sym("_stext")
	if err != nil {
		return 0, 0, err
	}
	hi, err := k.Sym("_etext")
	if err != nil {
		return 0, 0, err
	}
	if hi <= lo || hi-lo > 1<<30 {
		return 0, 0, fmt.Errorf("kernel text %#x-%#x is implausible", lo, hi)
	}
	return lo, hi, nil
}

// IDTEntry is one interrupt gate and its verdict against the kernel
// image (GateCheck).
type IDTEntry struct {
	Vector  int    `json:"vector"`
	Handler uint64 `json:"handler"`
	Symbol  string `json:"symbol"`
	Present bool   `json:"present"`
	InText  bool   `json:"in_text"`
	Bits    uint16 `json:"bits"` // idt_bits: type, DPL, IST, present
	GateCheck
}

// IDT reads the interrupt descriptor table at base (from the vCPU's IDTR)
// and checks every present gate by the fallback rule alone (a function
// start in kernel text); IDTExact compares with the image.
func (k *Kernel) IDT(base uint64, limit uint32) ([]IDTEntry, error) {
	return k.IDTExact(nil, base, limit)
}

// IDTExact reads the IDT at base and checks every present gate against
// ref (the image's handler, attributes and selector for each vector), or
// by the fallback rule where ref does not define a vector.
func (k *Kernel) IDTExact(ref *GateRef, base uint64, limit uint32) ([]IDTEntry, error) {
	n := (int(limit) + 1) / 16
	if n <= 0 || n > 256 {
		return nil, fmt.Errorf("IDT limit %#x is implausible", limit)
	}
	raw := make([]byte, 16*n)
	if err := k.Read(base, raw); err != nil {
		return nil, fmt.Errorf("IDT at %#x: %w", base, err)
	}
	lo, hi, err := k.textRange()
	if err != nil {
		return nil, err
	}
	// Vectors Linux never re-programs after boot (reserved ones, or #MC
	// without machine-check support) keep their early handlers, which live
	// in init text: still the kernel image's own code.
	ilo, _ := k.Sym("_sinittext")
	ihi, _ := k.Sym("_einittext")
	inImage := func(a uint64) bool { return a >= lo && a < hi || ilo != 0 && a >= ilo && a < ihi }
	region := k.regionNamer()
	var out []IDTEntry
	for v := 0; v < n; v++ {
		g := raw[16*v:]
		h := uint64(binary.LittleEndian.Uint16(g[0:])) | uint64(binary.LittleEndian.Uint16(g[6:]))<<16 |
			uint64(binary.LittleEndian.Uint32(g[8:]))<<32
		bits := binary.LittleEndian.Uint16(g[4:])
		if bits&gatePresent == 0 {
			continue
		}
		e := IDTEntry{Vector: v, Handler: h, Symbol: k.Name(h), Present: true, InText: inImage(h), Bits: bits}
		e.GateCheck = k.checkGate(ref, v, h, bits, binary.LittleEndian.Uint16(g[2:]), e.InText)
		if e.Symbol == "" {
			e.Symbol = fmt.Sprintf("%#x", h)
		}
		if !e.OK {
			e.Region = region(h)
		}
		out = append(out, e)
	}
	return out, nil
}

// Region names a hashed range of kernel memory.
type Region struct {
	Name       string
	Start, End uint64 // runtime virtual addresses
}

// ProtectedRegions are the ranges that must not change after boot: kernel
// text and read-only data.
func (k *Kernel) ProtectedRegions() ([]Region, error) {
	var out []Region
	for _, r := range [][3]string{{"text", "_stext", "_etext"}, {"rodata", "__start_rodata", "__end_rodata"}} {
		lo, err := k.Sym(r[1])
		if err != nil {
			return nil, err
		}
		hi, err := k.Sym(r[2])
		if err != nil {
			return nil, err
		}
		if hi <= lo || hi-lo > 256<<20 {
			return nil, fmt.Errorf("%s %#x-%#x is implausible", r[0], lo, hi)
		}
		out = append(out, Region{Name: r[0], Start: lo &^ 4095, End: (hi + 4095) &^ 4095})
	}
	return out, nil
}

// PageHash is the fingerprint of one 4 KiB page: SHA-256 of the page, and
// a 64-bit FNV-1a hash of each 64-byte block so a change can be located
// (and named) without keeping the page itself.
type PageHash struct {
	Sum    [32]byte
	Blocks [64]uint64
}

// PageHashes fingerprints every 4 KiB page of the regions, keyed by page
// address; pages that cannot be read are absent. Block hashes are computed
// for every page when base is nil (taking the baseline), else only for pages
// whose SHA-256 differs from base (a scan: most pages are unchanged).
func (k *Kernel) PageHashes(regions []Region, base map[uint64]*PageHash) (map[uint64]*PageHash, error) {
	out := map[uint64]*PageHash{}
	buf := make([]byte, 4096)
	for _, r := range regions {
		for va := r.Start; va < r.End; va += 4096 {
			if err := k.Read(va, buf); err != nil {
				continue
			}
			if r.Name == "text" {
				k.mask(va, buf)
			}
			h := &PageHash{Sum: sha256.Sum256(buf)}
			if b, ok := base[va]; base == nil || !ok || b.Sum != h.Sum {
				for b := 0; b < 64; b++ {
					h.Blocks[b] = fnv64(buf[b*64 : b*64+64])
				}
			}
			out[va] = h
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no protected page could be read")
	}
	return out, nil
}

// ChangedBlocks returns the addresses of the 64-byte blocks of page va
// that differ between two fingerprints.
func ChangedBlocks(va uint64, was, now *PageHash) []uint64 {
	var out []uint64
	for b := 0; b < 64; b++ {
		if was.Blocks[b] != now.Blocks[b] {
			out = append(out, va+uint64(b)*64)
		}
	}
	return out
}

func fnv64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// syscallName names a syscall handler, preferring the x86-64 entry point
// where the compiler gave one function several names (__x64_sys_getpid,
// __ia32_sys_getpid, __do_sys_getpid), also for an address inside it
// (__x64_sys_getpid+0x10).
func (k *Kernel) syscallName(a uint64) string {
	if k.L.NamesAt == nil || k.L.Nearest == nil || a < k.Slide {
		return k.Name(a)
	}
	_, off, ok := k.L.Nearest(a - k.Slide)
	if !ok {
		return k.Name(a)
	}
	for _, n := range k.L.NamesAt(a - k.Slide - off) {
		if strings.HasPrefix(n, "__x64_sys_") {
			if off == 0 {
				return n
			}
			return fmt.Sprintf("%s+%#x", n, off)
		}
	}
	return k.Name(a)
}
