package guest

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/bulwark-project/bulwark/internal/vmi/kallsyms"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
)

// ImageText is what a kernel build's image says its text and read-only data
// must hold once loaded: the image's bytes, the relocation table that
// KASLR's slide is applied with, and the places the kernel itself rewrites
// while it boots or runs (patch sites), each with the encodings it may
// legally hold. It is derived once per build and shared by every VM that
// runs the build; addresses are link-time.
type ImageText struct {
	BuildID string
	Ranges  []ImageRange
	Relocs  *kimage.Relocs
	Sites   []PatchSite // sorted by Addr; alternatives and paravirt sites may overlap
	// Frozen are ranges the kernel writes during boot and then seals
	// (__ro_after_init data): they cannot be derived from the image, so
	// they are compared with their first-attach contents.
	Frozen []ImageRange

	text, end        uint64          // _text, _end
	returnThunks     map[uint64]bool // legal targets of a patched return site
	indirectThunks   map[uint64]int  // __x86_indirect_thunk_<reg> → register number
	itsThunks        map[uint64]bool // ITS-safe indirect thunks (legal retpoline targets)
	ftraceTrampoline map[uint64]bool // ftrace_caller, ftrace_regs_caller
	// staticKeys maps a static-call site (inline or a key's __SCT__
	// trampoline) to its key's link address with the site's flags.
	staticKeys map[uint64]uint64
	return0    uint64 // __static_call_return0
	// alts: each alternative site's entries (altsites.go).
	alts map[uint64][]altEntry
	// pv: each paravirt site's op (an index into pv_ops) and length;
	// pvOps, pvNop, bugFunc: pv_ops, _paravirt_nop, BUG_func (altsites.go).
	pv                    map[uint64]pvSite
	pvOps, pvNop, bugFunc uint64
	// Masked counts, per kind, sites compared with their first-attach
	// bytes rather than derived encodings.
	Masked map[string]int
}

// ImageRange is a link-time range and, for the image's own ranges, its bytes.
type ImageRange struct {
	Name       string // "text", "rodata", "ro_after_init"
	Start, End uint64
	Bytes      []byte
}

// SiteKind says who rewrites a patch site and so which bytes it may hold.
type SiteKind uint8

// Patch site kinds.
const (
	SiteAlternative SiteKind = iota + 1 // .altinstructions: masked, frozen at first attach
	SiteParavirt                        // .parainstructions: masked, frozen at first attach
	SiteRetpoline                       // .retpoline_sites: thunk call or the inline indirect forms
	SiteReturn                          // .return_sites: jmp to a return thunk, or ret; int3
	SiteSMPLock                         // .smp_locks: lock or ds prefix
	SiteFtrace                          // __mcount_loc: nop5 or call to an ftrace trampoline
	SiteFtraceCall                      // ftrace_call/ftrace_regs_call in the ftrace caller
	SiteStaticCall                      // static-call trampolines and inline sites
	SiteStaticKey                       // __jump_table: checked by BadJumpSites
	SiteEndbr                           // .ibt_endbr_seal: endbr64 or its poisoned NOP
)

var siteNames = map[SiteKind]string{SiteAlternative: "alternative", SiteParavirt: "paravirt", SiteRetpoline: "retpoline",
	SiteReturn: "return_thunk", SiteSMPLock: "smp_lock", SiteFtrace: "ftrace", SiteFtraceCall: "ftrace",
	SiteStaticCall: "static_call", SiteStaticKey: "static_key", SiteEndbr: "endbr"}

func (s SiteKind) String() string { return siteNames[s] }

// frozenKind reports the kinds whose legal encodings are not derived here
// (they depend on the CPU's features and the hypervisor): they are masked
// against the image and must keep their first-attach bytes.
func (s SiteKind) frozenKind() bool { return s == SiteAlternative || s == SiteParavirt }

// PatchSite is one place the kernel rewrites.
type PatchSite struct {
	Addr uint64 // link-time
	Len  uint8
	Kind SiteKind
}

// Limits on the image's tables (Debian 6.1 has about 60 000 sites in all).
const (
	maxSitesPerTable = 1 << 20
	maxSiteLen       = 64
)

var (
	nopsCanon = [9][]byte{nil, {0x90}, {0x66, 0x90}, {0x0f, 0x1f, 0x00}, {0x0f, 0x1f, 0x40, 0x00},
		{0x0f, 0x1f, 0x44, 0x00, 0x00}, {0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00},
		{0x0f, 0x1f, 0x80, 0, 0, 0, 0}, {0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0}}
	retInt3  = []byte{0xc3, 0xcc, 0xcc, 0xcc, 0xcc}
	xor5rax  = []byte{0x2e, 0x2e, 0x2e, 0x31, 0xc0}
	endbr64  = []byte{0xf3, 0x0f, 0x1e, 0xfa}
	endbrNop = []byte{0x0f, 0x1f, 0x40, 0xd6}
)

// imageSource reads link-time ranges of the decompressed image.
type imageSource struct {
	b    []byte
	segs kimage.Segments
	elf  *elf.File
	syms *kallsyms.Table
}

func (s *imageSource) at(va uint64, n int64) ([]byte, bool) {
	off, ok := s.segs.Offset(va, n)
	if !ok {
		return nil, false
	}
	return s.b[off : off+n], true
}

// table finds a section by its ELF name, else by the kallsyms symbols that
// bound it (a vmlinux without section headers), returning its link range.
func (s *imageSource) table(section, startSym, endSym string) (uint64, uint64, bool) {
	if s.elf != nil {
		if sec := s.elf.Section(section); sec != nil && sec.Type == elf.SHT_PROGBITS {
			return sec.Addr, sec.Addr + sec.Size, true
		}
	}
	lo, _, ok1 := s.syms.Lookup(startSym)
	hi, _, ok2 := s.syms.Lookup(endSym)
	if !ok1 || !ok2 || hi < lo {
		return 0, 0, false
	}
	return lo, hi, true
}

// entries returns a table's raw entries of size es, bounded.
func (s *imageSource) entries(lo, hi uint64, es int, what string) ([]byte, error) {
	if (hi-lo)%uint64(es) != 0 {
		return nil, fmt.Errorf("%s: %d bytes is not a whole number of %d-byte entries", what, hi-lo, es)
	}
	if (hi-lo)/uint64(es) > maxSitesPerTable {
		return nil, fmt.Errorf("%s: %d entries exceed %d", what, (hi-lo)/uint64(es), maxSitesPerTable)
	}
	b, ok := s.at(lo, int64(hi-lo))
	if !ok {
		return nil, fmt.Errorf("%s at %#x is not in the image", what, lo)
	}
	return b, nil
}

// RelativeSites decodes a table of 32-bit offsets, each relative to its
// own entry (.smp_locks, .retpoline_sites, .return_sites, ...), at link
// address lo.
func RelativeSites(tab []byte, lo uint64, stride int) []uint64 {
	if stride < 4 {
		return nil
	}
	out := make([]uint64, 0, len(tab)/stride)
	for i := 0; i+4 <= len(tab) && i+stride <= len(tab); i += stride {
		out = append(out, lo+uint64(i)+uint64(int64(int32(binary.LittleEndian.Uint32(tab[i:])))))
	}
	return out
}

// BuildImageText derives a build's expected text from its decompressed
// image (vmlinux plus the appended relocation table) and symbol table.
func BuildImageText(vmlinux []byte, syms *kallsyms.Table) (*ImageText, error) {
	id, err := kimage.BuildID(vmlinux)
	if err != nil {
		return nil, err
	}
	relocs, err := kimage.ParseRelocs(vmlinux)
	if err != nil {
		return nil, err
	}
	segs, err := kimage.LoadSegments(vmlinux)
	if err != nil {
		return nil, err
	}
	src := &imageSource{b: vmlinux, segs: segs, syms: syms}
	if f, err := elf.NewFile(bytes.NewReader(vmlinux)); err == nil {
		src.elf = f
		defer f.Close()
	}
	sym := func(name string) (uint64, error) {
		a, _, ok := syms.Lookup(name)
		if !ok {
			return 0, fmt.Errorf("kallsyms has no %s", name)
		}
		return a, nil
	}
	img := &ImageText{BuildID: id, Relocs: relocs, Masked: map[string]int{},
		returnThunks: map[uint64]bool{}, indirectThunks: map[uint64]int{}, itsThunks: map[uint64]bool{}, ftraceTrampoline: map[uint64]bool{},
		staticKeys: map[uint64]uint64{}}
	img.return0, _, _ = syms.Lookup("__static_call_return0")
	img.pvOps, _, _ = syms.Lookup("pv_ops")
	img.pvNop, _, _ = syms.Lookup("_paravirt_nop")
	img.bugFunc, _, _ = syms.Lookup("BUG_func")
	var bounds [6]uint64
	for i, n := range []string{"_stext", "_etext", "__start_rodata", "__end_rodata", "_text", "_end"} {
		if bounds[i], err = sym(n); err != nil {
			return nil, err
		}
	}
	img.text, img.end = bounds[4], bounds[5]
	for i, name := range []string{"text", "rodata"} {
		lo, hi := bounds[2*i], bounds[2*i+1]
		if hi <= lo || hi-lo > 256<<20 {
			return nil, fmt.Errorf("%s %#x-%#x is implausible", name, lo, hi)
		}
		// Clip to the bytes the file holds: memory past a segment's file
		// data is whatever the decompressor left there.
		for hi > lo {
			if _, ok := src.at(lo, int64(hi-lo)); ok {
				break
			}
			hi = max(lo, (hi-1)&^4095)
		}
		b, ok := src.at(lo, int64(hi-lo))
		if !ok || hi == lo {
			return nil, fmt.Errorf("%s %#x-%#x is not in the image", name, lo, hi)
		}
		img.Ranges = append(img.Ranges, ImageRange{Name: name, Start: lo, End: hi, Bytes: append([]byte(nil), b...)})
	}
	if lo, _, ok1 := syms.Lookup("__start_ro_after_init"); ok1 {
		if hi, _, ok2 := syms.Lookup("__end_ro_after_init"); ok2 && hi > lo && hi-lo < 64<<20 {
			img.Frozen = append(img.Frozen, ImageRange{Name: "ro_after_init", Start: lo, End: hi})
		}
	}
	for i := 0; i < syms.Len(); i++ {
		s := syms.At(i)
		switch {
		case strings.Contains(s.Name, "return_thunk") && (s.Type == 'T' || s.Type == 't'):
			img.returnThunks[s.Addr] = true
		case strings.HasPrefix(s.Name, "__x86_indirect_thunk_"):
			if r, ok := regNumber(strings.TrimPrefix(s.Name, "__x86_indirect_thunk_")); ok {
				img.indirectThunks[s.Addr] = r
			}
		case strings.HasPrefix(s.Name, "__x86_indirect_its_thunk_") || s.Name == "its_static_thunk":
			img.itsThunks[s.Addr] = true
		case s.Name == "ftrace_caller" || s.Name == "ftrace_regs_caller":
			img.ftraceTrampoline[s.Addr] = true
		case strings.HasPrefix(s.Name, "__SCT__"):
			img.Sites = append(img.Sites, PatchSite{Addr: s.Addr, Len: 5, Kind: SiteStaticCall})
			// A trampoline is patched as a tail site of its key.
			if key, _, ok := syms.Lookup("__SCK__" + strings.TrimPrefix(s.Name, "__SCT__")); ok {
				img.staticKeys[s.Addr] = key | staticCallTail
			}
		case s.Name == "ftrace_call" || s.Name == "ftrace_regs_call":
			img.Sites = append(img.Sites, PatchSite{Addr: s.Addr, Len: 5, Kind: SiteFtraceCall})
		}
	}
	if err := img.collectSites(src); err != nil {
		return nil, err
	}
	// Keep the sites inside the ranges compared; sort for the page walk.
	textR := img.Ranges[0]
	kept := img.Sites[:0]
	for _, s := range img.Sites {
		if s.Addr >= textR.Start && s.Addr+uint64(s.Len) <= textR.End && s.Len > 0 && s.Len <= maxSiteLen {
			kept = append(kept, s)
			if s.Kind.frozenKind() {
				img.Masked[s.Kind.String()]++
			}
		}
	}
	img.Sites = kept
	sort.Slice(img.Sites, func(i, j int) bool { return img.Sites[i].Addr < img.Sites[j].Addr })
	return img, nil
}

// collectSites reads every patch-site table the image has.
func (img *ImageText) collectSites(src *imageSource) error {
	add := func(addrs []uint64, n uint8, kind SiteKind) {
		for _, a := range addrs {
			img.Sites = append(img.Sites, PatchSite{Addr: a, Len: n, Kind: kind})
		}
	}
	rel := []struct {
		sec, lo, hi string
		kind        SiteKind
		n           uint8
	}{
		{".smp_locks", "__smp_locks", "__smp_locks_end", SiteSMPLock, 1},
		{".return_sites", "__return_sites", "__return_sites_end", SiteReturn, 5},
		{".retpoline_sites", "__retpoline_sites", "__retpoline_sites_end", SiteRetpoline, 0},
		{".ibt_endbr_seal", "__ibt_endbr_seal", "__ibt_endbr_seal_end", SiteEndbr, 4},
	}
	for _, t := range rel {
		lo, hi, ok := src.table(t.sec, t.lo, t.hi)
		if !ok {
			continue
		}
		tab, err := src.entries(lo, hi, 4, t.sec)
		if err != nil {
			return err
		}
		if t.kind != SiteRetpoline {
			add(RelativeSites(tab, lo, 4), t.n, t.kind)
			continue
		}
		// A retpoline site is a 5-byte call/jmp or a 6-byte jcc.
		for _, a := range RelativeSites(tab, lo, 4) {
			if b, ok := src.at(a, 2); ok {
				n := uint8(5)
				if b[0] == 0x0f && b[1]&0xf0 == 0x80 {
					n = 6
				}
				add([]uint64{a}, n, SiteRetpoline)
			}
		}
	}
	// .altinstructions (6.1 layout): s32 instr, s32 repl, u16 cpuid,
	// u8 instrlen, u8 replacementlen.
	if lo, hi, ok := src.table(".altinstructions", "__alt_instructions", "__alt_instructions_end"); ok {
		tab, err := src.entries(lo, hi, 12, ".altinstructions")
		if err != nil {
			return fmt.Errorf("%w (only the 12-byte alt_instr layout is known)", err)
		}
		for i := 0; i+12 <= len(tab); i += 12 {
			a := lo + uint64(i) + uint64(int64(int32(binary.LittleEndian.Uint32(tab[i:]))))
			img.Sites = append(img.Sites, PatchSite{Addr: a, Len: tab[i+10], Kind: SiteAlternative})
		}
		img.readAlternatives(src, lo, tab)
	}
	// .parainstructions: u64 instr, u8 type, u8 len, padded to 16.
	if lo, hi, ok := src.table(".parainstructions", "__parainstructions", "__parainstructions_end"); ok {
		tab, err := src.entries(lo, hi, 16, ".parainstructions")
		if err != nil {
			return err
		}
		img.pv = map[uint64]pvSite{}
		for i := 0; i+16 <= len(tab); i += 16 {
			a := binary.LittleEndian.Uint64(tab[i:])
			img.Sites = append(img.Sites, PatchSite{Addr: a, Len: tab[i+9], Kind: SiteParavirt})
			img.pv[a] = pvSite{typ: tab[i+8], n: tab[i+9]}
		}
	}
	// __mcount_loc: absolute addresses of the ftrace call sites.
	if lo, hi, ok := src.table("__mcount_loc", "__start_mcount_loc", "__stop_mcount_loc"); ok {
		tab, err := src.entries(lo, hi, 8, "__mcount_loc")
		if err != nil {
			return err
		}
		for i := 0; i+8 <= len(tab); i += 8 {
			img.Sites = append(img.Sites, PatchSite{Addr: binary.LittleEndian.Uint64(tab[i:]), Len: 5, Kind: SiteFtrace})
		}
	}
	// Inline static-call sites: {s32 addr, s32 key}; both relative.
	if lo, hi, ok := src.table(".static_call_sites", "__start_static_call_sites", "__stop_static_call_sites"); ok {
		tab, err := src.entries(lo, hi, 8, ".static_call_sites")
		if err != nil {
			return err
		}
		for i := 0; i+8 <= len(tab); i += 8 {
			entry := lo + uint64(i)
			a := entry + uint64(int64(int32(binary.LittleEndian.Uint32(tab[i:]))))
			img.Sites = append(img.Sites, PatchSite{Addr: a, Len: 5, Kind: SiteStaticCall})
			img.staticKeys[a] = entry + 4 + uint64(int64(int32(binary.LittleEndian.Uint32(tab[i+4:]))))
		}
	}
	// Static keys: {s32 code, s32 target, s64 key}; 2- or 5-byte sites.
	if lo, hi, ok := src.table("__jump_table", "__start___jump_table", "__stop___jump_table"); ok {
		tab, err := src.entries(lo, hi, 16, "__jump_table")
		if err != nil {
			return err
		}
		for _, a := range RelativeSites(tab, lo, 16) {
			n := uint8(5)
			if b, ok := src.at(a, 2); ok && (b[0] == 0xeb || b[0] == 0x66 && b[1] == 0x90) {
				n = 2
			}
			add([]uint64{a}, n, SiteStaticKey)
		}
	}
	return nil
}

// regNumber maps a thunk's register suffix to its x86 register number.
func regNumber(s string) (int, bool) {
	for i, r := range []string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"} {
		if s == r {
			return i, true
		}
	}
	var n int
	if _, err := fmt.Sscanf(s, "r%d", &n); err == nil && n >= 8 && n <= 15 && s == fmt.Sprintf("r%d", n) {
		return n, true
	}
	return 0, false
}

// bytesAt reads the image's bytes for a link range inside one of Ranges.
func (img *ImageText) bytesAt(va uint64, n int) ([]byte, bool) {
	for _, r := range img.Ranges {
		if va >= r.Start && va < r.End && uint64(n) <= r.End-va {
			return r.Bytes[va-r.Start : va-r.Start+uint64(n)], true
		}
	}
	return nil, false
}

// expected fills buf with what link range [va, va+len(buf)) must hold at
// runtime once the kernel is moved by slide.
func (img *ImageText) expected(buf []byte, va, slide uint64) bool {
	b, ok := img.bytesAt(va, len(buf))
	if !ok {
		return false
	}
	copy(buf, b)
	img.Relocs.Apply(buf, va, slide, img.bytesAt)
	return true
}

// ImageCheck verifies one running kernel against its build's ImageText.
// The slide is the attached kernel's; frozen bytes are read at attach.
type ImageCheck struct {
	Img   *ImageText
	Slide uint64
	// frozen holds the first-attach bytes of masked sites and sealed
	// ranges, concatenated in the order of frozenAt.
	frozen   []byte
	frozenAt []frozenItem
	// altBad are the alternative sites that held none of their legal
	// forms at attach (re-judged every scan); alt says how many were
	// judged.
	altBadAt []*altRegion
	alt      AltStats
}

type frozenItem struct {
	addr uint64 // link-time
	n    int
	kind string
}

// TextMismatch is a run of kernel memory that differs from what the image
// (or, for masked sites and sealed data, the first attach) says.
type TextMismatch struct {
	Addr   uint64 `json:"addr"` // runtime
	Len    int    `json:"len"`
	Region string `json:"region"`         // text, rodata
	Site   string `json:"site,omitempty"` // patch-site kind it overlaps
	Why    string `json:"why"`
	Got    []byte `json:"got"`  // at most MaxMismatchBytes
	Want   []byte `json:"want"` // expected bytes, when a single form is expected
}

// ImageStats is the cost and coverage of one verification.
type ImageStats struct {
	Pages, Unreadable, Sites, Frozen, Mismatches int
	Alt                                          AltStats // alternatives judged at attach
}

// Bounds on a verification's output.
const (
	MaxMismatches    = 256
	MaxMismatchBytes = 16
	// mergeGap joins differing bytes closer than this into one run.
	mergeGap = 16
)

// NewImageCheck checks that the image and the slide describe the running
// kernel, then records the first-attach bytes of what cannot be derived.
func (k *Kernel) NewImageCheck(img *ImageText) (*ImageCheck, error) {
	if k.L.BuildID != "" && img.BuildID != k.L.BuildID {
		return nil, fmt.Errorf("image build %s, profile build %s", img.BuildID, k.L.BuildID)
	}
	c := &ImageCheck{Img: img, Slide: k.Slide}
	if err := c.checkSlide(k); err != nil {
		return nil, err
	}
	snap := func(addr uint64, n int, kind string) error {
		off := len(c.frozen)
		c.frozen = append(c.frozen, make([]byte, n)...)
		if err := k.Read(addr+c.Slide, c.frozen[off:]); err != nil {
			return fmt.Errorf("%s at %#x: %w", kind, addr+c.Slide, err)
		}
		c.frozenAt = append(c.frozenAt, frozenItem{addr: addr, n: n, kind: kind})
		return nil
	}
	for _, s := range img.Sites {
		if s.Kind.frozenKind() {
			if err := snap(s.Addr, int(s.Len), s.Kind.String()); err != nil {
				return nil, err
			}
		}
	}
	for _, r := range img.Frozen {
		for a := r.Start; a < r.End; a += 4096 {
			if err := snap(a, int(min(4096, r.End-a)), r.Name); err != nil {
				return nil, err
			}
		}
	}
	_, st, err := c.checkAlternatives(k)
	if err != nil {
		return nil, err
	}
	c.alt = st
	return c, nil
}

// checkSlide confirms the slide without trusting VMCOREINFO: pointers the
// relocation table lists in read-only data must read back as the image's
// value plus the slide. A few may be a rootkit's edits; most may not.
func (c *ImageCheck) checkSlide(k *Kernel) error {
	list := c.Img.Relocs.Abs64
	if len(list) == 0 {
		return errors.New("the image has no 64-bit relocations to confirm the slide with")
	}
	const samples = 64
	tried, agree := 0, 0
	var got [8]byte
	for i := 0; i < len(list) && tried < samples; i += max(1, len(list)/(4*samples)) {
		p := list[i]
		if c.inFrozenRange(p, 8) {
			continue
		}
		want := make([]byte, 8)
		if !c.Img.expected(want, p, c.Slide) {
			continue
		}
		tried++
		if k.Read(p+c.Slide, got[:]) == nil && bytes.Equal(got[:], want) {
			agree++
		}
	}
	if tried < 8 || agree*4 < tried*3 {
		return fmt.Errorf("slide %#x does not relocate the image: %d of %d sampled pointers agree", c.Slide, agree, tried)
	}
	return nil
}

func (c *ImageCheck) inFrozenRange(a uint64, n uint64) bool {
	for _, r := range c.Img.Frozen {
		if a < r.End && a+n > r.Start {
			return true
		}
	}
	return false
}

// Verify compares every page of kernel text and read-only data with the
// image: bytes outside patch sites must equal the relocated image, each
// patch site must hold a legal encoding of its kind, and masked sites and
// sealed data their first-attach bytes.
func (c *ImageCheck) Verify(k *Kernel, env *SiteEnv) ([]TextMismatch, ImageStats, error) {
	var st ImageStats
	var out []TextMismatch
	push := func(m TextMismatch) {
		st.Mismatches++
		if len(out) < MaxMismatches {
			out = append(out, m)
		}
	}
	img, slide := c.Img, c.Slide
	got := make([]byte, 4096)
	want := make([]byte, 4096)
	var sb, sw [maxSiteLen]byte
	for _, r := range img.Ranges {
		for a := r.Start; a < r.End; {
			next := min((a|4095)+1, r.End)
			n := int(next - a)
			g, w := got[:n], want[:n]
			if err := k.Read(a+slide, g); err != nil {
				st.Unreadable++
				a = next
				continue
			}
			st.Pages++
			img.expected(w, a, slide)
			sites := img.sitesIn(a, next)
			for _, s := range sites {
				if s.Addr < a || s.Kind.frozenKind() || s.Kind == SiteStaticKey {
					continue // checked where it starts; or elsewhere
				}
				st.Sites++
				sg, so := sb[:s.Len], sw[:s.Len]
				if s.Addr+uint64(s.Len) <= next {
					copy(sg, g[s.Addr-a:])
					copy(so, w[s.Addr-a:])
				} else if k.Read(s.Addr+slide, sg) != nil || !img.expected(so, s.Addr, slide) {
					continue
				}
				key := uint64(0)
				if s.Kind == SiteStaticCall {
					if key = img.staticKeys[s.Addr]; key != 0 {
						key += slide
					}
				}
				judge := func(b []byte) string { return img.legal(s, s.Addr+slide, b, so, slide, env, key) }
				var why string
				if s.Kind == SiteStaticCall || s.Kind == SiteFtrace || s.Kind == SiteFtraceCall {
					why = k.settledAny(s.Addr+slide, sg, judge) // its key or ops may be changing
				} else {
					why = k.settled(s.Addr+slide, sg, judge)
				}
				if why != "" {
					push(TextMismatch{Addr: s.Addr + slide, Len: int(s.Len), Region: r.Name, Site: s.Kind.String(), Why: why,
						Got: clip(sg), Want: clip(so)})
				}
			}
			for _, s := range sites {
				for x := max(s.Addr, a); x < min(s.Addr+uint64(s.Len), next); x++ {
					w[x-a] = g[x-a]
				}
			}
			for _, fr := range img.Frozen {
				for x := max(fr.Start, a); x < min(fr.End, next); x++ {
					w[x-a] = g[x-a]
				}
			}
			if !bytes.Equal(g, w) {
				for _, d := range diffRuns(g, w) {
					m := TextMismatch{Addr: a + uint64(d[0]) + slide, Len: d[1] - d[0], Region: r.Name,
						Why: "differs from the kernel image", Got: clip(g[d[0]:d[1]]), Want: clip(w[d[0]:d[1]])}
					push(m)
				}
			}
			a = next
		}
	}
	if st.Pages == 0 {
		return nil, st, errors.New("no page of kernel text or read-only data could be read")
	}
	// Alternatives that held none of their forms at attach, while they
	// still do.
	st.Alt = c.alt
	for _, r := range c.altBadAt {
		n := int(r.hi - r.lo)
		if m, err := c.judge(k, r, make([]byte, n), make([]byte, n)); err == nil && m != nil {
			push(*m)
		}
	}
	// Masked sites and sealed data: first-attach bytes.
	off := 0
	for _, f := range c.frozenAt {
		was := c.frozen[off : off+f.n]
		off += f.n
		if c.inBadRegion(f.addr, uint64(f.n)) {
			continue // judged by its legal forms above, not by what attach saw
		}
		now := got[:f.n]
		if err := k.Read(f.addr+slide, now); err != nil {
			st.Unreadable++
			continue
		}
		st.Frozen++
		if bytes.Equal(was, now) {
			continue
		}
		region, site := "text", f.kind
		if f.kind == "ro_after_init" {
			region, site = "rodata", ""
		}
		for _, d := range diffRuns(now, was) {
			push(TextMismatch{Addr: f.addr + uint64(d[0]) + slide, Len: d[1] - d[0], Region: region, Site: site,
				Why: "changed since the first attach", Got: clip(now[d[0]:d[1]]), Want: clip(was[d[0]:d[1]])})
		}
	}
	return out, st, nil
}

// inText reports whether link address a lies in the image's text.
func (img *ImageText) inText(a uint64) bool {
	return len(img.Ranges) > 0 && a >= img.Ranges[0].Start && a < img.Ranges[0].End
}

// sitesIn returns the sites overlapping link range [lo, hi).
func (img *ImageText) sitesIn(lo, hi uint64) []PatchSite {
	// Sites are at most maxSiteLen long: start the search that far back.
	from := uint64(0)
	if lo > maxSiteLen {
		from = lo - maxSiteLen
	}
	i := sort.Search(len(img.Sites), func(i int) bool { return img.Sites[i].Addr >= from })
	j := i
	for j < len(img.Sites) && img.Sites[j].Addr < hi {
		j++
	}
	for i < j && img.Sites[i].Addr+uint64(img.Sites[i].Len) <= lo {
		i++
	}
	return img.Sites[i:j]
}

func clip(b []byte) []byte { return append([]byte(nil), b[:min(len(b), MaxMismatchBytes)]...) }

// diffRuns returns [start, end) runs where a and b differ, joining runs
// closer than mergeGap.
func diffRuns(a, b []byte) [][2]int {
	var out [][2]int
	for i := 0; i < len(a); i++ {
		if a[i] == b[i] {
			continue
		}
		j, last := i, i
		for ; j < len(a) && j-last < mergeGap; j++ {
			if a[j] != b[j] {
				last = j
			}
		}
		out = append(out, [2]int{i, last + 1})
		i = last
	}
	return out
}

// rel32Target is the target of a 5-byte call/jmp at runtime address at.
func rel32Target(at uint64, b []byte) uint64 {
	return at + 5 + uint64(int64(int32(binary.LittleEndian.Uint32(b[1:5]))))
}

// kernelHalf reports a target in the kernel's half of the address space
// (kernel text, modules, ftrace/BPF trampolines).
func kernelHalf(a uint64) bool { return a >= 0xffff800000000000 }

// legal says why got is not a legal encoding of site s ("" when it is).
// orig is the relocated image's bytes at the site; at is its runtime
// address.
func (img *ImageText) legal(s PatchSite, at uint64, got, orig []byte, slide uint64, env *SiteEnv, key uint64) string {
	if bytes.Equal(got, orig) {
		return "" // the image's own bytes (for a static call: a call to its trampoline, or the trampoline's first form)
	}
	callOrJmp := len(got) >= 5 && (got[0] == 0xe8 || got[0] == 0xe9)
	target := uint64(0)
	if callOrJmp {
		target = rel32Target(at, got)
	}
	inImage := target >= img.text+slide && target < img.end+slide
	switch s.Kind {
	case SiteSMPLock:
		if got[0] == 0xf0 || got[0] == 0x3e {
			return ""
		}
		return "neither a lock nor a ds prefix"
	case SiteReturn:
		if bytes.Equal(got, retInt3) || callOrJmp && got[0] == 0xe9 && img.returnThunks[target-slide] {
			return ""
		}
		return "neither ret nor a jump to a return thunk"
	case SiteFtrace:
		if bytes.Equal(got, nopsCanon[5]) || callOrJmp && got[0] == 0xe8 && img.ftraceTrampoline[target-slide] {
			return ""
		}
		if callOrJmp && got[0] == 0xe8 && !inImage {
			if env == nil || env.Trampolines == nil {
				if kernelHalf(target) {
					return ""
				}
			} else if env.Trampolines[target] {
				return ""
			}
		}
		return "neither a NOP nor a call to an ftrace trampoline"
	case SiteFtraceCall:
		inText := target >= img.Ranges[0].Start+slide && target < img.Ranges[0].End+slide
		if callOrJmp && got[0] == 0xe8 && (inText || (env == nil || env.OpsFuncs == nil) && kernelHalf(target) || env != nil && env.OpsFuncs[target]) {
			return ""
		}
		return "a call to neither kernel text nor a registered ftrace_ops function"
	case SiteStaticCall:
		return img.legalStaticCall(at, got, slide, env, key)
	case SiteEndbr:
		if bytes.Equal(got, endbr64) || bytes.Equal(got, endbrNop) {
			return ""
		}
		return "neither endbr64 nor its sealed NOP"
	case SiteRetpoline:
		if img.legalRetpoline(at, got, orig, slide) {
			return ""
		}
		return "not a retpoline thunk call nor its inline indirect form"
	}
	return "unknown site kind"
}

// legalRetpoline accepts what the kernel writes over a call/jmp/jcc to
// __x86_indirect_thunk_<reg>: a call/jmp to an ITS-safe thunk, or the
// inline form [jncc.d8 over] [lfence] call/jmp *%reg, int3 after a jmp,
// NOP padding (single-byte or merged).
func (img *ImageText) legalRetpoline(at uint64, got, orig []byte, slide uint64) bool {
	n := len(orig)
	var thunk uint64
	op := orig[0]
	jcc := false
	switch {
	case n == 5 && (op == 0xe8 || op == 0xe9):
		thunk = rel32Target(at, orig)
	case n == 6 && op == 0x0f && orig[1]&0xf0 == 0x80:
		jcc = true
		thunk = at + 6 + uint64(int64(int32(binary.LittleEndian.Uint32(orig[2:6]))))
	default:
		return false
	}
	reg, ok := img.indirectThunks[thunk-slide]
	if !ok {
		return false
	}
	if !jcc && got[0] == op && img.itsThunks[rel32Target(at, got)-slide] {
		return true
	}
	for _, lfence := range []bool{false, true} {
		var b []byte
		isJmp := op == 0xe9 || jcc
		if jcc {
			b = append(b, 0x70+(orig[1]&0x0f^1), byte(n-2))
		}
		if lfence {
			b = append(b, 0x0f, 0xae, 0xe8)
		}
		if reg >= 8 {
			b = append(b, 0x41)
		}
		modrm := byte(0x10)
		if isJmp {
			modrm = 0x20
		}
		b = append(b, 0xff, modrm|0xc0|byte(reg&7))
		if isJmp && len(b) < n {
			b = append(b, 0xcc)
		}
		if len(b) > n {
			continue
		}
		for len(b) < n {
			b = append(b, 0x90)
		}
		if bytes.Equal(got, b) || bytes.Equal(got, mergeNops(b)) {
			return true
		}
	}
	return false
}

// mergeNops rewrites each run of two or more single-byte NOPs as the
// kernel's longest NOPs (optimize_nops / add_nops).
func mergeNops(b []byte) []byte {
	out := append([]byte(nil), b...)
	for i := 0; i < len(out); {
		if out[i] != 0x90 {
			i++
			continue
		}
		j := i
		for j < len(out) && out[j] == 0x90 {
			j++
		}
		if j-i >= 2 {
			for p := i; p < j; {
				l := min(j-p, 8)
				copy(out[p:], nopsCanon[l])
				p += l
			}
		}
		i = j
	}
	return out
}

// inBadRegion reports whether link range [a, a+n) overlaps a site region
// that held none of its legal forms at attach.
func (c *ImageCheck) inBadRegion(a, n uint64) bool {
	for _, r := range c.altBadAt {
		if a < r.hi && a+n > r.lo {
			return true
		}
	}
	return false
}
