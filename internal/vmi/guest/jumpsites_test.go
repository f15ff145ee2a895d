package guest

import (
	"encoding/binary"
	"testing"
)

// A static-key flip (NOP ↔ jump to the site's own target) leaves the page
// fingerprint unchanged and is legal; anything else at a site is reported,
// and a change next to a site still changes the fingerprint.
func TestJumpSites(t *testing.T) {
	b := make([]byte, 1<<16)
	text := uint64(pageOffset + 0x4000)
	site := text + 0x123
	target := text + 0x800
	copy(b[0x4123:], nop5)
	k := testKernel(b, map[string]uint64{"_stext": text, "_etext": text + 0x2000})
	k.L.JumpSites = []JumpSite{{Code: site, Target: target, Len: 5}, {Code: text + 0x1ffe, Target: text + 0x1fa0, Len: 2}}
	copy(b[0x5ffe:], nop2) // a 2-byte site at the end of the second page
	regions := []Region{{Name: "text", Start: text, End: text + 0x2000}}
	base, err := k.PageHashes(regions, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bad, err := k.BadJumpSites(); err != nil || len(bad) != 0 {
		t.Fatalf("NOPs reported: %v %v", bad, err)
	}
	// Enable both keys: near jump and short jump to their targets.
	b[0x4123] = 0xe9
	binary.LittleEndian.PutUint32(b[0x4124:], uint32(int32(int64(target)-int64(site+5))))
	rel8 := int8(-0x60) // to text+0x1fa0 from the end of the 2-byte jump
	b[0x5ffe], b[0x5fff] = 0xeb, byte(rel8)
	now, _ := k.PageHashes(regions, base)
	for va, h := range base {
		if now[va].Sum != h.Sum {
			t.Fatalf("a static-key flip changed page %#x", va)
		}
	}
	if bad, _ := k.BadJumpSites(); len(bad) != 0 {
		t.Fatalf("legal jumps reported: %v", bad)
	}
	// A jump elsewhere, or code, at a site is reported.
	binary.LittleEndian.PutUint32(b[0x4124:], 0x1000)
	copy(b[0x5ffe:], []byte{0xcc, 0xcc})
	if bad, _ := k.BadJumpSites(); len(bad) != 2 || bad[0].Addr != site {
		t.Fatalf("bad sites: %+v", bad)
	}
	// A byte right after the 5-byte site is not masked.
	copy(b[0x4123:], nop5)
	b[0x4128] ^= 0xff
	now, _ = k.PageHashes(regions, base)
	if now[text].Sum == base[text].Sum {
		t.Fatal("a change next to a site went unnoticed")
	}
}

// A site read while the kernel patches it (an int3 over the first byte,
// the old or new form's tail behind it) is legal only while it changes:
// an int3 that stays is reported.
func TestJumpSitePatching(t *testing.T) {
	const code, target = 0xffffffff81000000, 0xffffffff81000040
	jmp := []byte{0xe9, 0x3b, 0, 0, 0}
	for _, c := range []struct {
		b    []byte
		want siteState
	}{
		{nop5, siteLegal},
		{jmp, siteLegal},
		{[]byte{0xcc, 0x1f, 0x44, 0x00, 0x00}, sitePatching},
		{[]byte{0xcc, 0x3b, 0, 0, 0}, sitePatching},
		{[]byte{0xcc, 0x3c, 0, 0, 0}, siteBad},
		{[]byte{0xe8, 0x3b, 0, 0, 0}, siteBad},
		{[]byte{0x66, 0x90}, siteLegal},
		{[]byte{0xcc, 0x90}, sitePatching},
		{[]byte{0xcc, 0xcc}, siteBad},
	} {
		tgt := uint64(target)
		if len(c.b) == 2 {
			tgt = code + 2 + 0x10
		}
		if got := jumpSiteState(c.b, code, tgt); got != c.want {
			t.Errorf("% x: state %d, want %d", c.b, got, c.want)
		}
	}
}

// settled reads a site that starts with an int3 again until its judge
// accepts it (text_poke_bp finished) and reports an int3 that stays.
func TestSettled(t *testing.T) {
	b := make([]byte, 1<<16)
	text := uint64(pageOffset + 0x4000)
	k := testKernel(b, map[string]uint64{"_stext": text, "_etext": text + 0x2000})
	copy(b[0x4100:], []byte{0xcc, 0x1f, 0x44, 0, 0}) // int3 over a NOP5's first byte
	calls := 0
	judge := func(s []byte) string {
		calls++
		if calls == 2 {
			b[0x4100] = 0x0f // the patcher writes the first byte back
		}
		if s[0] == 0xcc {
			return "int3"
		}
		return ""
	}
	site := make([]byte, 5)
	copy(site, b[0x4100:])
	if why := k.settled(text+0x100, site, judge); why != "" || site[0] != 0x0f {
		t.Fatalf("a site the patcher finished: %q % x", why, site)
	}
	b[0x4100] = 0xcc
	calls = 10
	copy(site, b[0x4100:])
	if why := k.settled(text+0x100, site, judge); why != "int3" {
		t.Fatalf("an int3 that stays: %q", why)
	}
	if calls != 10+1+patchRereads {
		t.Fatalf("%d judgements, want %d", calls-10, 1+patchRereads)
	}
}
