package guest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
)

// ModuleRef is what a module's object file says its loaded core must hold:
// the parsed .ko, where the kernel lays out each section, its symbol
// names (to name a mismatch) and its exports (to resolve other modules'
// relocations). It is derived once per object and shared.
type ModuleRef struct {
	Ko      *kimage.Ko
	Layout  kimage.KoLayout
	Names   []kimage.KoName
	Exports map[string]uint64 // core offsets
}

// NewModuleRef parses a module object.
func NewModuleRef(ko []byte) (*ModuleRef, error) {
	k, err := kimage.ParseKo(ko)
	if err != nil {
		return nil, err
	}
	l := k.CoreLayout()
	if l.ROSize > kimage.MaxModuleFile {
		return nil, fmt.Errorf("module text and read-only data of %d bytes", l.ROSize)
	}
	return &ModuleRef{Ko: k, Layout: l, Names: k.Names(l), Exports: k.Exports(l)}, nil
}

// Name gives core offset off as symbol+offset from the object's symbols.
func (r *ModuleRef) Name(off uint64) string {
	i := sort.Search(len(r.Names), func(i int) bool { return r.Names[i].Off > off }) - 1
	// Prefer the function containing off over a label at the same place.
	for j := i; j >= 0 && r.Names[j].Off == r.Names[max(i, 0)].Off; j-- {
		if r.Names[j].Func {
			i = j
		}
	}
	if i < 0 {
		return fmt.Sprintf("+%#x", off)
	}
	if d := off - r.Names[i].Off; d != 0 {
		return fmt.Sprintf("%s+%#x", r.Names[i].Name, d)
	}
	return r.Names[i].Name
}

// Sections the kernel rewrites while loading a module, so their bytes
// cannot be compared with the object: exception, ftrace and ORC tables
// are sorted in place (sort_extable, ftrace_process_locs,
// unwind_module_init). They are masked whole.
var moduleSortedTables = []string{"__ex_table", "__mcount_loc", ".orc_unwind", ".orc_unwind_ip"}

// ModuleMismatch is a run of a loaded module's text or read-only data that
// differs from its object file (relocated at the module's base), or a
// layout that does not match it.
type ModuleMismatch struct {
	Module string `json:"module"`
	Addr   uint64 `json:"addr"` // runtime
	Len    int    `json:"len"`
	Where  string `json:"where"`          // symbol+offset from the object
	Region string `json:"region"`         // text, rodata, layout
	Site   string `json:"site,omitempty"` // patch-site kind it overlaps
	Why    string `json:"why"`
	Got    []byte `json:"got,omitempty"`
	Want   []byte `json:"want,omitempty"`
}

// ModuleStats is the coverage of one module's verification.
type ModuleStats struct {
	Bytes   int            // text and read-only bytes compared
	Relocs  int            // relocated fields compared
	Sites   int            // patch sites checked by encoding or first sight
	Masked  map[string]int // relocated fields not compared, by reason
	Skipped int            // bytes of sorted tables not compared
}

// ModuleCheck verifies loaded modules against their objects with the
// kernel's image (for the legal targets of patch sites: return and
// retpoline thunks, ftrace trampolines). It keeps, per VM, the bytes of
// each module's alternative and paravirt sites as first seen: their
// encodings depend on the CPU and are not derived.
type ModuleCheck struct {
	Img   *ImageText
	Slide uint64

	frozen map[uint64][]byte // runtime site address → first-seen bytes

	// symsAll: the kernel keeps data symbols of modules too
	// (CONFIG_KALLSYMS_ALL); nil until a module shows which.
	symsAll *bool
	syms    map[coreSymsKey]*kimage.KoCoreSymbols
	derived map[*ModuleRef]*derivedCore
}

// derivedCore is a module's relocated core and its patch sites at one
// base, reused while every undefined symbol resolves as it did: relocating
// every module at every scan was most of the module check's cost.
type derivedCore struct {
	base   uint64
	undef  []string
	values []uint64 // per undef at derivation; 0: unresolved
	core   []byte   // read only
	masked []kimage.KoRange
	sites  []moduleSite
	alts   map[uint64][]altEntry
}

// derive returns ref relocated at base, from the cache when still valid.
func (c *ModuleCheck) derive(ref *ModuleRef, base uint64, resolve func(string) (uint64, bool)) (*derivedCore, error) {
	d := c.derived[ref]
	if d != nil && d.base == base {
		same := true
		for i, name := range d.undef {
			v, ok := resolve(name)
			if !ok {
				v = 0
			}
			if v != d.values[i] {
				same = false
				break
			}
		}
		if same {
			return d, nil
		}
	}
	core, masked, err := ref.Ko.Relocate(ref.Layout, base, resolve)
	if err != nil {
		return nil, err
	}
	d = &derivedCore{base: base, core: core, masked: masked}
	seen := map[string]bool{}
	for _, s := range ref.Ko.Symbols {
		if s.Shndx == kimage.SHNUndef && s.Name != "" && !seen[s.Name] {
			seen[s.Name] = true
			v, ok := resolve(s.Name)
			if !ok {
				v = 0
			}
			d.undef, d.values = append(d.undef, s.Name), append(d.values, v)
		}
	}
	d.sites = moduleSites(ref, core, base, masked)
	d.alts = moduleAlternatives(ref, core, base, masked)
	if c.derived == nil || len(c.derived) > MaxModules {
		c.derived = map[*ModuleRef]*derivedCore{}
	}
	c.derived[ref] = d
	return d, nil
}

// NewModuleCheck returns a check for a kernel verified against img.
func NewModuleCheck(img *ImageText, slide uint64) *ModuleCheck {
	return &ModuleCheck{Img: img, Slide: slide, frozen: map[uint64][]byte{}}
}

// maxFrozenSites bounds the first-sight store (alternatives of all
// modules together).
const maxFrozenSites = 1 << 18

// KernelExport resolves a symbol exported by the kernel to its runtime
// address: through its __ksymtab entry where kallsyms lists one (exact
// even when static functions share the name), else by name.
func (c *ModuleCheck) KernelExport(k *Kernel, name string) (uint64, bool) {
	if k.L.Lookup == nil {
		return 0, false
	}
	if ks, ok := k.L.Lookup("__ksymtab_" + name); ok {
		if b, ok := c.Img.bytesAt(ks, 4); ok {
			return c.runtime(ks + uint64(int64(int32(binary.LittleEndian.Uint32(b))))), true
		}
	}
	if a, ok := k.L.Lookup(name); ok {
		return c.runtime(a), true
	}
	return 0, false
}

// runtime moves a kernel link address by the slide. Per-CPU symbols are
// offsets into each CPU's area (zero-based on x86-64), not addresses:
// KASLR does not move them (the image's inverse relocations keep them).
func (c *ModuleCheck) runtime(link uint64) uint64 {
	if !kernelHalf(link) {
		return link
	}
	return link + c.Slide
}

// Verify compares module m's core text and read-only data with ref
// relocated at m.Base (resolve gives undefined symbols' runtime
// addresses). Relocated fields whose value cannot be computed and the
// sorted tables are masked; patch sites are checked for the encodings
// the kernel may write there (alternatives and paravirt: their first-seen
// bytes).
func (c *ModuleCheck) Verify(k *Kernel, m Module, ref *ModuleRef, resolve func(string) (uint64, bool), env *SiteEnv) ([]ModuleMismatch, ModuleStats, error) {
	st := ModuleStats{Masked: map[string]int{}}
	l := ref.Layout
	if m.Base == 0 || m.Base&0xfff != 0 || !kernelHalf(m.Base) {
		return nil, st, fmt.Errorf("module %s: core base %#x is not a kernel page", m.Name, m.Base)
	}
	sizeOff, err := k.Off("module.core_layout.size")
	if err != nil {
		return nil, st, errors.New("only kernels with module.core_layout (before 6.4) are supported")
	}
	// struct module_layout: base, size, text_size, ro_size, ... (u32s).
	var sz [12]byte
	if err := k.Read(m.Module+sizeOff, sz[:]); err != nil {
		return nil, st, fmt.Errorf("module %s layout: %w", m.Name, err)
	}
	text, ro := uint64(binary.LittleEndian.Uint32(sz[4:])), uint64(binary.LittleEndian.Uint32(sz[8:]))
	if text != l.TextSize || ro != l.ROSize {
		return []ModuleMismatch{{Module: m.Name, Addr: m.Base, Region: "layout",
			Why: fmt.Sprintf("text %d and read-only %d bytes, the object lays out %d and %d", text, ro, l.TextSize, l.ROSize)}}, st, nil
	}
	d, err := c.derive(ref, m.Base, resolve)
	if err != nil {
		return nil, st, fmt.Errorf("module %s: %w", m.Name, err)
	}
	want, masked := d.core[:l.ROSize], d.masked
	got := make([]byte, l.ROSize)
	if err := k.Read(m.Base, got); err != nil {
		return nil, st, fmt.Errorf("module %s: %w", m.Name, err)
	}
	skip := make([]bool, len(got)) // bytes checked elsewhere or masked
	for _, r := range masked {
		st.Masked[r.Reason]++
		for i := r.Off; i < r.Off+uint64(r.Len) && i < uint64(len(skip)); i++ {
			skip[i] = true
		}
	}
	for _, name := range moduleSortedTables {
		if off, n, ok := ref.Ko.SectionRange(l, name); ok && off+n <= uint64(len(skip)) {
			for i := off; i < off+n; i++ {
				skip[i] = true
			}
			st.Skipped += int(n)
		}
	}
	for _, rs := range ref.Ko.Relas {
		if l.Offset[rs.Target] >= 0 && uint64(l.Offset[rs.Target]) < l.ROSize {
			st.Relocs += len(rs.Relas)
		}
	}
	var out []ModuleMismatch
	push := func(mm ModuleMismatch) {
		if len(out) < MaxMismatches {
			mm.Module = m.Name
			mm.Where = ref.Name(mm.Addr - m.Base)
			out = append(out, mm)
		}
	}
	region := func(off uint64) string {
		if off < l.TextSize {
			return "text"
		}
		return "rodata"
	}
	sites, alts := d.sites, d.alts
	for _, s := range sites {
		off := s.Addr - m.Base
		if off+uint64(s.Len) > l.TextSize {
			continue // sites lie in text; a table entry pointing elsewhere is not one
		}
		st.Sites++
		g, w := got[off:off+uint64(s.Len)], want[off:off+uint64(s.Len)]
		for i := off; i < off+uint64(s.Len); i++ {
			skip[i] = true
		}
		why := ""
		switch {
		case s.Kind.frozenKind():
			if was, ok := c.frozen[s.Addr]; ok {
				if !bytes.Equal(was, g) {
					why = "changed since the module was first seen"
					w = was
				}
			} else if why = c.firstSight(k, s, g, w, sites, alts); why == "" && len(c.frozen) < maxFrozenSites {
				// Legal when first seen: held to these bytes from now on.
				// An illegal site is judged again at every scan.
				c.frozen[s.Addr] = append([]byte(nil), g...)
			}
		case s.Kind == SiteStaticKey:
			g = append([]byte(nil), g...) // a re-read must not touch got
			why = k.settled(s.Addr, g, func(b []byte) string { return legalJump(s, b) })
		default:
			g = append([]byte(nil), g...)
			ps := PatchSite{Addr: s.Addr - c.Slide, Len: s.Len, Kind: s.Kind}
			key := uint64(0)
			if s.Kind == SiteStaticCall {
				key = c.staticCallKey(s.Target)
			}
			judge := func(b []byte) string { return c.Img.legal(ps, s.Addr, b, w, c.Slide, env, key) }
			if s.Kind == SiteStaticCall || s.Kind == SiteFtrace {
				why = k.settledAny(s.Addr, g, judge)
			} else {
				why = k.settled(s.Addr, g, judge)
			}
		}
		if why != "" {
			push(ModuleMismatch{Addr: s.Addr, Len: int(s.Len), Region: "text", Site: s.Kind.String(), Why: why, Got: clip(g), Want: clip(w)})
		}
	}
	st.Bytes = len(got)
	for i := 0; i < len(got); i++ {
		if skip[i] || got[i] == want[i] {
			continue
		}
		j, last := i, i
		for ; j < len(got) && j-last < mergeGap; j++ {
			if !skip[j] && got[j] != want[j] {
				last = j
			}
		}
		push(ModuleMismatch{Addr: m.Base + uint64(i), Len: last + 1 - i, Region: region(uint64(i)),
			Why: "differs from the module's object", Got: clip(got[i : last+1]), Want: clip(want[i : last+1])})
		i = last
	}
	return out, st, nil
}

// staticCallKey resolves a module's static-call site key field (runtime,
// with the site's flags). A module may name an exported key; for a key
// that is not exported it names the kernel's trampoline instead, and
// static_call_add_module looks the key up from it: so does this, through
// the trampoline's __SCK__ twin. 0 when unknown.
func (c *ModuleCheck) staticCallKey(field uint64) uint64 {
	addr, flags := field&^staticCallFlags, field&staticCallFlags
	if !c.Img.inText(addr - c.Slide) {
		return field
	}
	if k := c.Img.staticKeys[addr-c.Slide]; k != 0 {
		return (k&^staticCallFlags + c.Slide) | flags
	}
	return 0
}

// moduleSite is a patch site at a runtime address; Target is a static
// key's jump target, or a static call's key (runtime, with the site's
// flags).
type moduleSite struct {
	PatchSite
	Target uint64
	Typ    uint8 // a paravirt site's op (index into pv_ops)
}

// moduleSites reads the module's patch-site tables from its relocated
// core (runtime addresses). Entries whose relocation was masked are
// dropped: their site is unknown.
func moduleSites(ref *ModuleRef, img []byte, base uint64, masked []kimage.KoRange) []moduleSite {
	isMasked := func(off uint64) bool {
		i := sort.Search(len(masked), func(i int) bool { return masked[i].Off+uint64(masked[i].Len) > off })
		return i < len(masked) && masked[i].Off <= off
	}
	var out []moduleSite
	table := func(name string, stride int, fn func(entry uint64, e []byte)) {
		off, n, ok := ref.Ko.SectionRange(ref.Layout, name)
		if !ok || off+n > uint64(len(img)) {
			return
		}
		for i := uint64(0); i+uint64(stride) <= n; i += uint64(stride) {
			if isMasked(off + i) {
				continue
			}
			fn(base+off+i, img[off+i:off+i+uint64(stride)])
		}
	}
	rel := func(entry uint64, e []byte) uint64 {
		return entry + uint64(int64(int32(binary.LittleEndian.Uint32(e))))
	}
	at := func(a uint64, n uint64) []byte {
		if a < base || a-base+n > uint64(len(img)) {
			return nil
		}
		return img[a-base : a-base+n]
	}
	add := func(a uint64, n uint8, kind SiteKind) {
		if n > 0 && n <= maxSiteLen {
			out = append(out, moduleSite{PatchSite: PatchSite{Addr: a, Len: n, Kind: kind}})
		}
	}
	for _, t := range []struct {
		sec  string
		kind SiteKind
		n    uint8
	}{{".smp_locks", SiteSMPLock, 1}, {".return_sites", SiteReturn, 5}, {".ibt_endbr_seal", SiteEndbr, 4}, {".retpoline_sites", SiteRetpoline, 0}} {
		table(t.sec, 4, func(entry uint64, e []byte) {
			a, n := rel(entry, e), t.n
			if t.kind == SiteRetpoline {
				n = 5
				if b := at(a, 2); b != nil && b[0] == 0x0f && b[1]&0xf0 == 0x80 {
					n = 6
				}
			}
			add(a, n, t.kind)
		})
	}
	table(".altinstructions", 12, func(entry uint64, e []byte) { add(rel(entry, e), e[10], SiteAlternative) })
	table(".parainstructions", 16, func(_ uint64, e []byte) {
		if e[9] > 0 && e[9] <= maxSiteLen {
			out = append(out, moduleSite{PatchSite: PatchSite{Addr: binary.LittleEndian.Uint64(e), Len: e[9], Kind: SiteParavirt}, Typ: e[8]})
		}
	})
	table(".static_call_sites", 8, func(entry uint64, e []byte) {
		out = append(out, moduleSite{PatchSite: PatchSite{Addr: rel(entry, e), Len: 5, Kind: SiteStaticCall}, Target: rel(entry+4, e[4:])})
	})
	table("__jump_table", 16, func(entry uint64, e []byte) {
		a := rel(entry, e)
		n := uint8(5)
		if b := at(a, 2); b != nil && (b[0] == 0xeb || b[0] == 0x66 && b[1] == 0x90) {
			n = 2
		}
		out = append(out, moduleSite{PatchSite: PatchSite{Addr: a, Len: n, Kind: SiteStaticKey}, Target: rel(entry+4, e[4:])})
	})
	// __mcount_loc is sorted in place at load, but it is read here from
	// the object's order: the set of sites is the same.
	table("__mcount_loc", 8, func(_ uint64, e []byte) { add(binary.LittleEndian.Uint64(e), 5, SiteFtrace) })
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}

// legalJump says why a static-key site holds neither its NOP nor a jump to
// its own target ("" when it does).
func legalJump(s moduleSite, b []byte) string {
	if s.Len == 5 {
		if bytes.Equal(b, nop5) || b[0] == 0xe9 && s.Addr+5+uint64(int64(int32(binary.LittleEndian.Uint32(b[1:])))) == s.Target {
			return ""
		}
	} else if bytes.Equal(b, nop2) || b[0] == 0xeb && s.Addr+2+uint64(int64(int8(b[1]))) == s.Target {
		return ""
	}
	return "neither the static key's NOP nor a jump to its target"
}

// moduleAlternatives reads a module's .altinstructions from its relocated
// core (runtime addresses): each site's replacements, a call's
// displacement moved to the site, a jump's target kept. A replacement
// outside the core or holding a masked relocation cannot be derived.
func moduleAlternatives(ref *ModuleRef, img []byte, base uint64, masked []kimage.KoRange) map[uint64][]altEntry {
	off, n, ok := ref.Ko.SectionRange(ref.Layout, ".altinstructions")
	if !ok || off+n > uint64(len(img)) {
		return nil
	}
	isMasked := func(lo, hi uint64) bool {
		i := sort.Search(len(masked), func(i int) bool { return masked[i].Off+uint64(masked[i].Len) > lo })
		return i < len(masked) && masked[i].Off < hi
	}
	out := map[uint64][]altEntry{}
	le := binary.LittleEndian
	for i := uint64(0); i+12 <= n; i += 12 {
		e := img[off+i : off+i+12]
		if isMasked(off+i, off+i+8) {
			continue
		}
		instr := base + off + i + uint64(int64(int32(le.Uint32(e))))
		repl := base + off + i + 4 + uint64(int64(int32(le.Uint32(e[4:]))))
		il, rl := e[10], e[11]
		if il == 0 || il > maxSiteLen || rl > il {
			continue
		}
		a := altEntry{instrLen: il}
		if repl < base || repl-base+uint64(rl) > uint64(len(img)) || isMasked(repl-base, repl-base+uint64(rl)) {
			a.reloc = true
		} else {
			a.repl = append([]byte(nil), img[repl-base:repl-base+uint64(rl)]...)
			switch {
			case rl == 5 && a.repl[0] == 0xe8:
				d := int64(int32(le.Uint32(a.repl[1:]))) + int64(repl) - int64(instr)
				le.PutUint32(a.repl[1:], uint32(int32(d)))
			case rl == 5 && a.repl[0] == 0xe9:
				a.jmp = repl + 5 + uint64(int64(int32(le.Uint32(a.repl[1:]))))
			}
		}
		if len(out[instr]) < 8 {
			out[instr] = append(out[instr], a)
		}
	}
	return out
}

// firstSight judges a module's alternative or paravirt site the first
// time it is seen, as the kernel's are at attach: its original code, one
// of its replacements, or a call to its pv_ops entry (for a site shared
// by both, any of these). A site another kind of site overlaps, or whose
// replacement cannot be derived, is accepted as seen ("" ) and held to
// it, as before.
func (c *ModuleCheck) firstSight(k *Kernel, s moduleSite, got, orig []byte, sites []moduleSite, alts map[uint64][]altEntry) string {
	end := s.Addr + uint64(s.Len)
	var pv *moduleSite
	for i := range sites {
		o := &sites[i]
		if o.Addr >= end || o.Addr+uint64(o.Len) <= s.Addr {
			continue
		}
		switch {
		case o.Kind == SiteParavirt && o.Addr == s.Addr && o.Len == s.Len:
			pv = o
		case o.Kind == SiteAlternative && o.Addr == s.Addr && o.Len == s.Len:
		default:
			return "" // overlapped: not derived
		}
	}
	as := alts[s.Addr]
	for _, a := range as {
		if a.reloc || a.instrLen != s.Len {
			return ""
		}
	}
	if bytes.Equal(got, orig) || len(as) > 0 && altLegal(s.Addr, got, orig, as) {
		return ""
	}
	if pv != nil {
		if c.Img.pvOps == 0 {
			return ""
		}
		f, err := k.U64(c.Img.pvOps + c.Slide + 8*uint64(pv.Typ))
		if err != nil {
			return ""
		}
		if c.Img.pvLegal(s.Addr-c.Slide, got, f, c.Slide) {
			return ""
		}
		if len(as) == 0 {
			return fmt.Sprintf("neither the original code nor a call to its pv_ops entry %#x", f)
		}
		return fmt.Sprintf("neither the original code, a call to its pv_ops entry %#x, nor any of its %d replacements", f, len(as))
	}
	if len(as) == 0 {
		return ""
	}
	return fmt.Sprintf("neither the original code nor any of its %d replacements", len(as))
}
