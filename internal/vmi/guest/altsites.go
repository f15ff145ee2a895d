package guest

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Alternatives (.altinstructions) from the image. At boot the kernel
// leaves each site's original instructions (their 0x90 padding turned into
// long NOPs) or writes one of its replacements: the replacement's bytes, a
// 5-byte call's displacement moved to the site, a 5-byte jump recomputed
// for the site (2 bytes when the target is near), the rest NOPs. Which one
// depends on the CPU's features, so every form is legal, and no other. A
// site is judged once, at attach (alternatives are never rewritten after
// boot); from then on its bytes are held to what was seen, like before.
// Sites the derivation cannot cover are left to the first-attach
// comparison alone and counted: a replacement with a KASLR relocation in
// it, or a site another kind of patch site overlaps (a retpoline or
// return site inside an alternative is rewritten after it).

// altEntry is one alternative for a site (link addresses).
type altEntry struct {
	instrLen uint8
	repl     []byte // call displacement already moved to the site
	jmp      uint64 // for a 5-byte jump replacement: its target; else 0
	reloc    bool   // the replacement holds a KASLR relocation
}

// readAlternatives records every alternative of every site from the 6.1
// 12-byte table: s32 instr, s32 repl, u16 cpuid, u8 instrlen, u8 repllen.
func (img *ImageText) readAlternatives(src *imageSource, lo uint64, tab []byte) {
	img.alts = map[uint64][]altEntry{}
	le := binary.LittleEndian
	for i := 0; i+12 <= len(tab); i += 12 {
		e := lo + uint64(i)
		instr := e + uint64(int64(int32(le.Uint32(tab[i:]))))
		repl := e + 4 + uint64(int64(int32(le.Uint32(tab[i+4:]))))
		il, rl := tab[i+10], tab[i+11]
		if il == 0 || il > maxSiteLen || rl > il {
			continue // the kernel BUGs on a replacement longer than its site
		}
		a := altEntry{instrLen: il}
		if b, ok := src.at(repl, int64(rl)); ok {
			a.repl = append([]byte(nil), b...)
		} else {
			a.reloc = true // unreadable: not derived
		}
		a.reloc = a.reloc || img.Relocs.Touches(repl, uint64(rl))
		switch {
		case rl == 5 && a.repl != nil && a.repl[0] == 0xe8:
			d := int64(int32(le.Uint32(a.repl[1:]))) + int64(repl) - int64(instr)
			le.PutUint32(a.repl[1:], uint32(int32(d)))
		case rl == 5 && a.repl != nil && a.repl[0] == 0xe9:
			a.jmp = repl + 5 + uint64(int64(int32(le.Uint32(a.repl[1:]))))
		}
		if len(img.alts[instr]) < 8 {
			img.alts[instr] = append(img.alts[instr], a)
		}
	}
}

// nopRun reports whether b is a run of the kernel's NOPs (single 0x90s or
// the canonical long NOPs, in any order: optimize_nops and add_nops).
func nopRun(b []byte) bool {
	for len(b) > 0 {
		n := 0
		for l := len(nopsCanon) - 1; l >= 1; l-- {
			if len(b) >= l && bytes.Equal(b[:l], nopsCanon[l]) {
				n = l
				break
			}
		}
		if n == 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

// altLegal says whether got (read at link address instr, orig the
// relocated image bytes there) is the site's original code or one of its
// replacements, each padded with NOPs.
func altLegal(instr uint64, got, orig []byte, alts []altEntry) bool {
	if bytes.Equal(got, orig) {
		return true
	}
	code := bytes.TrimRight(orig, "\x90")
	if bytes.HasPrefix(got, code) && nopRun(got[len(code):]) {
		return true
	}
	for _, a := range alts {
		n := int(a.instrLen)
		if n > len(got) {
			continue
		}
		g := got[:n]
		switch {
		case a.jmp != 0:
			if g[0] == 0xeb && instr+2+uint64(int64(int8(g[1]))) == a.jmp && nopRun(g[2:]) ||
				g[0] == 0xe9 && rel32Target(instr, g) == a.jmp && nopRun(g[5:]) {
				return true
			}
		case bytes.HasPrefix(g, a.repl) && nopRun(g[len(a.repl):]):
			return true
		}
	}
	return false
}

// pvSite is a paravirt patch site: its op's index into pv_ops and its
// length.
type pvSite struct{ typ, n uint8 }

// pvLegal says whether got (at link address at) is what apply_paravirt
// writes for op function f (runtime): a direct call to it (to BUG_func
// for no function), nothing for _paravirt_nop, NOPs after.
func (img *ImageText) pvLegal(at uint64, got []byte, f, slide uint64) bool {
	if f == img.pvNop+slide && img.pvNop != 0 {
		return nopRun(got)
	}
	if f == 0 {
		f = img.bugFunc + slide
	}
	return len(got) >= 5 && got[0] == 0xe8 && rel32Target(at, got)+slide == f && img.inText(f-slide) && nopRun(got[5:])
}

// AltStats is how the alternative sites were judged at attach.
type AltStats struct {
	Derived   int // judged against the original and every replacement
	Underived int // left to the first-attach comparison: Reloc + Overlap
	Reloc     int // a replacement holds a KASLR relocation
	Overlap   int // another kind of patch site lies inside
	OverlapBy map[string]int
}

// checkAlternatives judges every alternative and paravirt site at attach
// and returns the ones that hold none of their legal forms. A paravirt
// site holds a direct call to its pv_ops entry (read from the guest; it
// must lie in kernel text); an alternative over a paravirt site (the
// PVOP_ALT sites: native code unless the guest is a Xen PV domain) holds
// that call or one of its replacements.
func (c *ImageCheck) checkAlternatives(k *Kernel) ([]TextMismatch, AltStats, error) {
	img := c.Img
	var st AltStats
	var out []TextMismatch
	var regions []altRegion
	for _, s := range img.Sites { // sorted by address
		if s.Kind != SiteAlternative && s.Kind != SiteParavirt {
			continue
		}
		end := s.Addr + uint64(s.Len)
		if n := len(regions); n > 0 && s.Addr < regions[n-1].hi {
			regions[n-1].hi = max(regions[n-1].hi, end)
		} else {
			regions = append(regions, altRegion{lo: s.Addr, hi: end})
		}
		r := &regions[len(regions)-1]
		if s.Kind == SiteAlternative {
			if len(r.alts) == 0 || r.alts[len(r.alts)-1] != s.Addr {
				r.alts = append(r.alts, s.Addr)
			}
		} else {
			r.pvs = append(r.pvs, s.Addr)
		}
	}
	under := func(why string) {
		st.Underived++
		if st.OverlapBy == nil {
			st.OverlapBy = map[string]int{}
		}
		st.OverlapBy[why]++
	}
	got, orig := make([]byte, 4*maxSiteLen), make([]byte, 4*maxSiteLen)
	for i := range regions {
		r := &regions[i]
		n := int(r.hi - r.lo)
		if n > len(got) || !img.inText(r.lo) || !img.inText(r.hi-1) {
			continue
		}
		overlap := ""
		for _, s := range img.sitesIn(r.lo, r.hi) {
			if s.Kind != SiteAlternative && s.Kind != SiteParavirt {
				overlap = s.Kind.String()
			}
		}
		var alts []altEntry
		for _, a := range r.alts {
			alts = append(alts, img.alts[a]...)
		}
		reloc := false
		for _, a := range alts {
			reloc = reloc || a.reloc
		}
		// The shapes derived: alternatives of one site, one paravirt
		// site, or alternatives of exactly one paravirt site's bytes.
		shape := len(r.pvs) == 0 && len(r.alts) == 1 || len(r.alts) == 0 && len(r.pvs) == 1 ||
			len(r.pvs) == 1 && len(r.alts) == 1 && r.alts[0] == r.pvs[0] && r.hi-r.lo == uint64(img.pv[r.pvs[0]].n)
		switch {
		case reloc:
			st.Underived++
			st.Reloc++
			continue
		case overlap != "":
			under(overlap)
			continue
		case !shape:
			under("shape")
			continue
		}
		m, err := c.judge(k, r, got[:n], orig[:n])
		if err != nil {
			return out, st, err
		}
		if m == nil && r.unreadable {
			under("unreadable")
			continue
		}
		if m != nil && m.Why == "no pv_ops" {
			under("no_pv_ops")
			continue
		}
		st.Derived++
		if m != nil {
			out = append(out, *m)
			c.altBadAt = append(c.altBadAt, r)
		}
	}
	return out, st, nil
}

// altRegion is a run of overlapping alternative and paravirt sites.
type altRegion struct {
	lo, hi     uint64
	alts       []uint64 // alternative sites (instr) in it
	pvs        []uint64 // paravirt sites in it
	unreadable bool     // the image's bytes could not be had
}

// judge reads region r (into g and o, its length) and returns a mismatch
// when it holds none of its legal forms, nil when it does.
func (c *ImageCheck) judge(k *Kernel, r *altRegion, g, o []byte) (*TextMismatch, error) {
	img, slide := c.Img, c.Slide
	var alts []altEntry
	for _, a := range r.alts {
		alts = append(alts, img.alts[a]...)
	}
	if err := k.Read(r.lo+slide, g); err != nil {
		return nil, fmt.Errorf("patch site at %#x: %w", r.lo+slide, err)
	}
	if !img.expected(o, r.lo, slide) {
		r.unreadable = true
		return nil, nil
	}
	legal, kind, why := false, SiteAlternative, ""
	if len(r.pvs) == 1 {
		kind = SiteParavirt
		if img.pvOps == 0 {
			return &TextMismatch{Why: "no pv_ops"}, nil
		}
		typ := img.pv[r.pvs[0]].typ
		f, err := k.U64(img.pvOps + slide + 8*uint64(typ))
		if err != nil {
			return nil, fmt.Errorf("pv_ops entry %d: %w", typ, err)
		}
		legal = bytes.Equal(g, o) || img.pvLegal(r.lo, g, f, slide)
		why = fmt.Sprintf("neither the original code nor a call to its pv_ops entry %#x", f)
		if len(alts) > 0 {
			why = fmt.Sprintf("neither the original code, a call to its pv_ops entry %#x, nor any of its %d replacements", f, len(alts))
		}
	} else {
		why = fmt.Sprintf("neither the original code nor any of its %d replacements", len(alts))
	}
	if len(alts) > 0 {
		legal = legal || altLegal(r.lo, g, o, alts)
	}
	if legal {
		return nil, nil
	}
	return &TextMismatch{Addr: r.lo + slide, Len: len(g), Region: "text", Site: kind.String(), Why: why, Got: clip(g), Want: clip(o)}, nil
}
