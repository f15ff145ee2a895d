package guest

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
)

// debianKo reads a module of the installed cloud kernel.
func debianKo(t testing.TB, rel string) []byte {
	t.Helper()
	m, _ := filepath.Glob("/lib/modules/*-cloud-amd64/kernel/" + rel)
	if len(m) == 0 {
		t.Fatalf("no %s under /lib/modules/*-cloud-amd64 (install linux-image-cloud-amd64)", rel)
	}
	sort.Strings(m)
	b, err := os.ReadFile(m[len(m)-1])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestModuleVerify loads a real module into a synthetic guest (relocated
// at its base, ftrace sites turned into NOPs as the kernel does) and
// checks: clean is clean, a flipped byte in a function is named, a
// rodata byte is rodata, an illegal ftrace site is named with its kind,
// and a layout that does not match the object is reported.
func TestModuleVerify(t *testing.T) {
	ref, err := NewModuleRef(debianKo(t, "drivers/net/virtio_net.ko"))
	if err != nil {
		t.Fatal(err)
	}
	l := ref.Layout
	const modPA, basePA, sizeOff = 0x1000, 0x10000, 0x100
	base := uint64(pageOffset + basePA)
	kernelSyms := map[string]uint64{}
	resolve := func(name string) (uint64, bool) {
		a, ok := kernelSyms[name]
		if !ok {
			a = 0xffffffff81000000 + uint64(len(kernelSyms))*64
			kernelSyms[name] = a
		}
		return a, true
	}
	img, _, err := ref.Ko.Relocate(l, base, resolve)
	if err != nil {
		t.Fatal(err)
	}
	phys := make([]byte, basePA+len(img)+4096)
	copy(phys[basePA:], img)
	sites := moduleSites(ref, img, base, nil)
	nf := 0
	for _, s := range sites {
		if s.Kind == SiteFtrace && s.Addr-base+5 <= l.TextSize {
			copy(phys[basePA+s.Addr-base:], nopsCanon[5])
			nf++
		}
	}
	if nf == 0 {
		t.Fatal("no ftrace sites in virtio_net")
	}
	put32 := func(off uint64, v uint32) {
		phys[off], phys[off+1], phys[off+2], phys[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	put32(modPA+sizeOff+4, uint32(l.TextSize))
	put32(modPA+sizeOff+8, uint32(l.ROSize))
	k := testKernel(phys, nil)
	k.L.Offsets = map[string]uint64{"module.core_layout.size": sizeOff}
	rt := kernelSyms["__x86_return_thunk"]
	ii := &ImageText{returnThunks: map[uint64]bool{rt: true}, indirectThunks: map[uint64]int{}, itsThunks: map[uint64]bool{}, ftraceTrampoline: map[uint64]bool{}}
	c := NewModuleCheck(ii, 0)
	m := Module{Name: "virtio_net", Base: base, Module: pageOffset + modPA}

	verify := func() []ModuleMismatch {
		t.Helper()
		mm, st, err := c.Verify(k, m, ref, resolve, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Bytes != int(l.ROSize) || st.Sites == 0 {
			t.Fatalf("stats %+v", st)
		}
		return mm
	}
	if mm := verify(); len(mm) != 0 {
		t.Fatalf("clean module: %+v", mm)
	}

	// A byte in the middle of a function, away from sites.
	var fn kimage.KoName
	for _, n := range ref.Names {
		if n.Func && strings.HasPrefix(n.Name, "virtnet_") && n.Off+0x20 < l.TextSize {
			fn = n
			break
		}
	}
	at := basePA + fn.Off + 0x11
	phys[at] ^= 0xff
	mm := verify()
	if len(mm) != 1 || mm[0].Region != "text" || mm[0].Where != fn.Name+"+0x11" {
		t.Fatalf("flipped byte in %s: %+v", fn.Name, mm)
	}
	phys[at] ^= 0xff

	// Read-only data.
	ro := basePA + l.TextSize + 3
	phys[ro] ^= 1
	if mm := verify(); len(mm) != 1 || mm[0].Region != "rodata" {
		t.Fatalf("rodata byte: %+v", mm)
	}
	phys[ro] ^= 1

	// An ftrace site holding a jump instead of its NOP or a call.
	var ft moduleSite
	for _, s := range sites {
		if s.Kind == SiteFtrace && s.Addr-base+5 <= l.TextSize {
			ft = s
			break
		}
	}
	copy(phys[basePA+ft.Addr-base:], []byte{0xe9, 1, 2, 3, 4})
	if mm := verify(); len(mm) != 1 || mm[0].Site != "ftrace" {
		t.Fatalf("bad ftrace site: %+v", mm)
	}
	// A call into a module or trampoline (outside the kernel image) is
	// what tracing writes: legal.
	copy(phys[basePA+ft.Addr-base:], []byte{0xe8, 0, 0, 0, 0x10})
	if mm := verify(); len(mm) != 0 {
		t.Fatalf("traced ftrace site: %+v", mm)
	}
	copy(phys[basePA+ft.Addr-base:], nopsCanon[5])

	// A layout that is not the object's.
	put32(modPA+sizeOff+4, uint32(l.TextSize+4096))
	if mm, _, err := c.Verify(k, m, ref, resolve, nil); err != nil || len(mm) != 1 || mm[0].Region != "layout" {
		t.Fatalf("layout: %+v %v", mm, err)
	}
}

// TestModuleAlternatives: a module's alternative sites are judged when
// first seen (as the kernel's are at attach): a fresh check of a module
// already patched finds a site that holds neither its original code nor
// a replacement, keeps finding it until it is restored, and then holds
// it to what it holds.
func TestModuleAlternatives(t *testing.T) {
	ref, err := NewModuleRef(debianKo(t, "net/netfilter/x_tables.ko"))
	if err != nil {
		t.Fatal(err)
	}
	l := ref.Layout
	const modPA, basePA, sizeOff = 0x1000, 0x10000, 0x100
	base := uint64(pageOffset + basePA)
	resolve := func(name string) (uint64, bool) { return 0xffffffff81000000 + uint64(len(name))*64, true }
	img, _, err := ref.Ko.Relocate(l, base, resolve)
	if err != nil {
		t.Fatal(err)
	}
	phys := make([]byte, basePA+len(img)+4096)
	copy(phys[basePA:], img)
	binary.LittleEndian.PutUint32(phys[modPA+sizeOff+4:], uint32(l.TextSize))
	binary.LittleEndian.PutUint32(phys[modPA+sizeOff+8:], uint32(l.ROSize))
	k := testKernel(phys, nil)
	k.L.Offsets = map[string]uint64{"module.core_layout.size": sizeOff}
	ii := &ImageText{returnThunks: map[uint64]bool{}, indirectThunks: map[uint64]int{}, itsThunks: map[uint64]bool{}, ftraceTrampoline: map[uint64]bool{},
		pvOps: pageOffset + 0x800} // pv_ops entries read as 0: BUG_func, outside this image's (empty) text
	m := Module{Name: "x_tables", Base: base, Module: pageOffset + modPA}
	sites := moduleSites(ref, img, base, nil)
	alts := moduleAlternatives(ref, img, base, nil)
	var alt moduleSite
	for _, s := range sites {
		if s.Kind != SiteAlternative || s.Len < 2 || len(alts[s.Addr]) == 0 || s.Addr-base+uint64(s.Len) > l.TextSize {
			continue
		}
		over := false
		for _, o := range sites {
			same := o.Kind == SiteParavirt && o.Addr == s.Addr && o.Len == s.Len // a PVOP_ALT site
			if o.Kind != SiteAlternative && !same && o.Addr < s.Addr+uint64(s.Len) && o.Addr+uint64(o.Len) > s.Addr {
				over = true
			}
		}
		if !over {
			alt = s
			break
		}
	}
	if alt.Len == 0 {
		t.Fatalf("no alternative site in x_tables without another kind of site inside (%d alternatives)", len(alts))
	}
	c := NewModuleCheck(ii, 0)
	verify := func() []ModuleMismatch {
		t.Helper()
		mm, _, err := c.Verify(k, m, ref, resolve, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []ModuleMismatch
		for _, x := range mm {
			if x.Site == "alternative" || x.Site == "paravirt" {
				out = append(out, x)
			}
		}
		return out
	}
	if mm := verify(); len(mm) != 0 {
		t.Fatalf("clean alternatives: %+v", mm)
	}
	at := basePA + alt.Addr - base
	was := append([]byte(nil), phys[at:at+uint64(alt.Len)]...)
	copy(phys[at:], []byte{0xeb, 0xfe}) // jmp $: neither form
	c = NewModuleCheck(ii, 0)
	for i := 0; i < 2; i++ {
		if mm := verify(); len(mm) != 1 || mm[0].Addr != alt.Addr || !strings.Contains(mm[0].Why, "replacements") {
			t.Fatalf("patched alternative, scan %d: %+v", i, mm)
		}
	}
	copy(phys[at:], was)
	if mm := verify(); len(mm) != 0 {
		t.Fatalf("restored alternative: %+v", mm)
	}
	copy(phys[at:], []byte{0xeb, 0xfe})
	if mm := verify(); len(mm) != 1 || !strings.Contains(mm[0].Why, "first seen") {
		t.Fatalf("changed after it was held: %+v", mm)
	}
}
