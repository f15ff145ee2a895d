package kimage_test

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage/kimagetest"
)

// moduleDir is the installed cloud kernel's module tree.
func moduleDir(t testing.TB) string {
	v := strings.TrimPrefix(filepath.Base(kimagetest.Path(t)), "vmlinuz-")
	return filepath.Join("/lib/modules", v, "kernel")
}

func readKo(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleDir(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var debianModules = []string{"drivers/char/hw_random/virtio-rng.ko", "drivers/net/virtio_net.ko", "drivers/virtio/virtio_ring.ko", "drivers/block/virtio_blk.ko"}

// TestKoDebian parses real modules and checks the result against Go's
// debug/elf (sections, symbols, relocation counts), then the core layout's
// invariants and the relocation arithmetic.
func TestKoDebian(t *testing.T) {
	for _, rel := range debianModules {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			b := readKo(t, rel)
			ko, err := kimage.ParseKo(b)
			if err != nil {
				t.Fatal(err)
			}
			ef, err := elf.NewFile(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if len(ef.Sections) != len(ko.Sections) {
				t.Fatalf("%d sections, debug/elf %d", len(ko.Sections), len(ef.Sections))
			}
			nrela := 0
			for i, s := range ef.Sections {
				k := ko.Sections[i]
				if k.Name != s.Name || k.Size != s.Size || k.Flags != uint64(s.Flags) || k.Type != uint32(s.Type) {
					t.Errorf("section %d: %+v, debug/elf %+v", i, k, s.SectionHeader)
				}
				if s.Type == elf.SHT_RELA {
					nrela += int(s.Size / 24)
				}
			}
			syms, err := ef.Symbols()
			if err != nil {
				t.Fatal(err)
			}
			if len(syms)+1 != len(ko.Symbols) {
				t.Fatalf("%d symbols, debug/elf %d (+ the null one)", len(ko.Symbols), len(syms))
			}
			for i, s := range syms {
				if k := ko.Symbols[i+1]; k.Name != s.Name || k.Value != s.Value || k.Shndx != uint16(s.Section) {
					t.Errorf("symbol %d: %+v, debug/elf %+v", i+1, k, s)
				}
			}
			got := 0
			for _, rs := range ko.Relas {
				got += len(rs.Relas)
			}
			if got != nrela {
				t.Errorf("%d relocations, debug/elf %d", got, nrela)
			}

			l := ko.CoreLayout()
			checkLayout(t, ko, l)
			t.Logf("%s: text %d, ro %d, ro_after_init %d, core %d bytes", rel, l.TextSize, l.ROSize, l.ROAfterInitSize, l.Size)

			// Every PC-relative field decodes back to S+A: the relocation
			// arithmetic matches the ELF definition.
			const base = 0xffffffffc0400000
			resolve := func(name string) (uint64, bool) {
				if strings.HasPrefix(name, "unresolvable") {
					return 0, false
				}
				return 0xffffffff81000000 + uint64(len(name))*0x1000, true
			}
			img, masked, err := ko.Relocate(l, base, resolve)
			if err != nil {
				t.Fatal(err)
			}
			checked := 0
			for _, rs := range ko.Relas {
				off := l.Offset[rs.Target]
				if off < 0 {
					continue
				}
				for _, r := range rs.Relas {
					s := ko.Symbols[r.Sym]
					var S uint64
					switch {
					case s.Shndx == kimage.SHNUndef:
						S, _ = resolve(s.Name)
					case int(s.Shndx) < len(l.Offset) && l.Offset[s.Shndx] >= 0:
						S = base + uint64(l.Offset[s.Shndx]) + s.Value
					default:
						continue
					}
					at := uint64(off) + r.Off
					loc := base + at
					want := S + uint64(r.Addend)
					switch r.Type {
					case kimage.RX8664PC32, kimage.RX8664PLT32:
						if v := loc + uint64(int64(int32(binary.LittleEndian.Uint32(img[at:])))); v != want {
							t.Fatalf("PC32 at %#x (%s): %#x, want %#x", at, s.Name, v, want)
						}
					case kimage.RX866464:
						if v := binary.LittleEndian.Uint64(img[at:]); v != want {
							t.Fatalf("64 at %#x (%s): %#x, want %#x", at, s.Name, v, want)
						}
					}
					checked++
				}
			}
			t.Logf("%d relocations checked, %d masked", checked, len(masked))
			if checked == 0 {
				t.Fatal("no relocation checked")
			}
			if len(ko.Names(l)) == 0 {
				t.Fatal("no named symbols in the core")
			}
		})
	}
}

// checkLayout: every allocated non-init section is placed once, aligned,
// without overlap, in its class (text, read-only, sealed, data) in
// section-header order.
func checkLayout(t *testing.T, ko *kimage.Ko, l kimage.KoLayout) {
	t.Helper()
	if l.TextSize%4096 != 0 || l.ROSize%4096 != 0 || l.ROAfterInitSize%4096 != 0 || l.TextSize > l.ROSize || l.ROSize > l.ROAfterInitSize || l.ROAfterInitSize > l.Size {
		t.Fatalf("layout bounds %+v", l)
	}
	type span struct{ lo, hi uint64 }
	var spans []span
	for i, s := range ko.Sections {
		placed := l.Offset[i] >= 0
		want := s.Flags&uint64(elf.SHF_ALLOC) != 0 && !strings.HasPrefix(s.Name, ".init") &&
			s.Name != ".modinfo" && s.Name != "__versions" && s.Name != ".data..percpu"
		if placed != want {
			t.Errorf("section %s (flags %#x): placed %v", s.Name, s.Flags, placed)
			continue
		}
		if !placed {
			continue
		}
		lo := uint64(l.Offset[i])
		if s.Align > 1 && lo%s.Align != 0 {
			t.Errorf("%s at %#x, alignment %d", s.Name, lo, s.Align)
		}
		class := func(off uint64) string {
			switch {
			case off < l.TextSize:
				return "text"
			case off < l.ROSize:
				return "ro"
			case off < l.ROAfterInitSize:
				return "ro_after_init"
			}
			return "data"
		}
		want2 := "data"
		switch {
		case s.Flags&uint64(elf.SHF_EXECINSTR) != 0:
			want2 = "text"
		case s.Name == "__jump_table" || s.Name == ".data..ro_after_init":
			want2 = "ro_after_init"
		case s.Flags&uint64(elf.SHF_WRITE) == 0:
			want2 = "ro"
		}
		if s.Size > 0 && class(lo) != want2 {
			t.Errorf("%s at %#x is in %s, want %s", s.Name, lo, class(lo), want2)
		}
		for _, o := range spans {
			if lo < o.hi && lo+s.Size > o.lo && s.Size > 0 {
				t.Errorf("%s [%#x,%#x) overlaps [%#x,%#x)", s.Name, lo, lo+s.Size, o.lo, o.hi)
			}
		}
		spans = append(spans, span{lo, lo + s.Size})
	}
}

// newc writes a newc archive of files (test helper; the product's writer
// is internal/image's).
func newc(files map[string][]byte, order []string) []byte {
	var b bytes.Buffer
	ent := func(name string, mode uint32, data []byte) {
		fmt.Fprintf(&b, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x", 1, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
		b.WriteString(name + "\x00")
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
		b.Write(data)
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	ent("lib", 0o40755, nil)
	for _, n := range order {
		ent(n, 0o100644, files[n])
	}
	ent("TRAILER!!!", 0, nil)
	return b.Bytes()
}

// TestReadModuleTree: a plain archive followed by a gzip one (as early
// microcode precedes the main archive), modules indexed by kernel name.
func TestReadModuleTree(t *testing.T) {
	ko := readKo(t, debianModules[0])
	first := newc(map[string][]byte{"kernel/x86/microcode/GenuineIntel.bin": []byte("ucode")}, []string{"kernel/x86/microcode/GenuineIntel.bin"})
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(newc(map[string][]byte{"lib/modules/virtio-rng.ko": ko, "etc/x": []byte("x")}, []string{"etc/x", "lib/modules/virtio-rng.ko"}))
	w.Close()
	initrd := append(append(first, make([]byte, 512)...), gz.Bytes()...)
	tree, err := kimage.ReadModuleTree(initrd)
	if err != nil {
		t.Fatal(err)
	}
	if tree.Len() != 1 || !tree.Has("virtio_rng") {
		t.Fatalf("tree: %d modules, virtio_rng %v", tree.Len(), tree.Has("virtio_rng"))
	}
	b, err := tree.Ko("virtio_rng")
	if err != nil || !bytes.Equal(b, ko) {
		t.Fatalf("Ko: %v (%d bytes, want %d)", err, len(b), len(ko))
	}
	dup := newc(map[string][]byte{"a/x-y.ko": ko, "b/x_y.ko": ko}, []string{"a/x-y.ko", "b/x_y.ko"})
	if _, err := kimage.ReadModuleTree(dup); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate module: %v", err)
	}
	for _, bad := range [][]byte{[]byte("0707"), first[:200], []byte("\x1f\x8b\x08garbage")} {
		if _, err := kimage.ReadModuleTree(bad); err == nil {
			t.Errorf("%q accepted", bad[:min(len(bad), 16)])
		}
	}
}

// TestReadModuleTreeDebian reads Debian's own initramfs for the cloud
// kernel (zstd, after an uncompressed early archive when microcode is
// installed) and decompresses one of its modules.
func TestReadModuleTreeDebian(t *testing.T) {
	v := strings.TrimPrefix(filepath.Base(kimagetest.Path(t)), "vmlinuz-")
	b, err := os.ReadFile("/boot/initrd.img-" + v)
	if err != nil {
		t.Skipf("no Debian initramfs: %v", err)
	}
	tree, err := kimage.ReadModuleTree(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d modules", v, tree.Len())
	if tree.Len() == 0 {
		t.Fatal("no modules")
	}
	for _, n := range []string{"virtio_blk", "ext4"} {
		if !tree.Has(n) {
			continue
		}
		ko, err := tree.Ko(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kimage.ParseKo(ko); err != nil {
			t.Fatalf("%s (%s): %v", n, tree.Path(n), err)
		}
	}
}

func FuzzReadCPIO(f *testing.F) {
	f.Add(newc(map[string][]byte{"lib/modules/a.ko": []byte("\x7fELF")}, []string{"lib/modules/a.ko"}))
	f.Add([]byte("070701"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tree, err := kimage.ReadModuleTree(b)
		if err == nil {
			for _, n := range []string{"a"} {
				tree.Ko(n)
			}
		}
		kimage.ReadCPIO(b, func(kimage.CPIOEntry) error { return nil })
	})
}

func FuzzParseKo(f *testing.F) {
	f.Add(readKo(f, debianModules[0]))
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ko, err := kimage.ParseKo(b)
		if err != nil {
			return
		}
		l := ko.CoreLayout()
		ko.Relocate(l, 0xffffffffc0000000, func(string) (uint64, bool) { return 0xffffffff81000000, true })
		ko.Names(l)
		ko.Exports(l)
		for _, all := range []bool{true, false} {
			if cs, err := ko.CoreSymbols(l, 0xffffffffc0000000, all); err == nil && (cs.N*kimage.SymtabEntry != len(cs.Symtab) || cs.End < cs.TypeOff) {
				t.Fatalf("kept symbols: %d entries in %d bytes, end %d", cs.N, len(cs.Symtab), cs.End)
			}
		}
	})
}
