package guest

import "testing"

// The legal forms of an alternative site (its original code with its
// padding as NOPs, each replacement with its call or jump moved to the
// site) and of a paravirt site (a call to its pv_ops entry, or nothing),
// and nothing else.
func TestAltLegal(t *testing.T) {
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	for _, c := range []struct {
		b    []byte
		want bool
	}{
		{nil, true}, {cat(nopsCanon[8], nopsCanon[3]), true}, {[]byte{0x90, 0x90}, true},
		{[]byte{0x66, 0x66, 0x90}, false}, {[]byte{0x0f, 0x1f}, false},
	} {
		if nopRun(c.b) != c.want {
			t.Errorf("nopRun(% x) = %v", c.b, !c.want)
		}
	}

	const instr = 0xffffffff81000100
	popcnt := []byte{0xf3, 0x48, 0x0f, 0xb8, 0xc7} // the replacement
	callOrig := call5(0xe8, instr, 0xffffffff81234560)
	orig := cat(callOrig, []byte{0x90, 0x90, 0x90}) // 8-byte site: call, padding
	alts := []altEntry{{instrLen: 8, repl: popcnt}, {instrLen: 8, jmp: instr + 0x40}}
	for _, c := range []struct {
		name string
		got  []byte
		want bool
	}{
		{"the image's bytes", orig, true},
		{"original with long NOP padding", cat(callOrig, nopsCanon[3]), true},
		{"replacement with NOP padding", cat(popcnt, nopsCanon[3]), true},
		{"replacement with single NOPs", cat(popcnt, []byte{0x90, 0x90, 0x90}), true},
		{"near jump recomputed to 2 bytes", cat([]byte{0xeb, 0x3e}, nopsCanon[6]), true},
		{"jump kept at 5 bytes", cat(call5(0xe9, instr, instr+0x40), nopsCanon[3]), true},
		{"jump elsewhere", cat([]byte{0xeb, 0x3f}, nopsCanon[6]), false},
		{"replacement with odd padding", cat(popcnt, []byte{0x66, 0x66, 0x90}), false},
		{"call elsewhere", cat(call5(0xe8, instr, 0xffffffff81234570), nopsCanon[3]), false},
	} {
		if got := altLegal(instr, c.got, orig, alts); got != c.want {
			t.Errorf("%s (% x): legal %v", c.name, c.got, got)
		}
	}

	img := &ImageText{Ranges: []ImageRange{{Name: "text", Start: 0xffffffff81000000, End: 0xffffffff82000000}},
		pvNop: 0xffffffff81000800, bugFunc: 0xffffffff81000900}
	const slide = 0x2000000
	at := uint64(instr)
	f := uint64(0xffffffff81234560)
	if !img.pvLegal(at, cat(call5(0xe8, at, f), nopsCanon[2]), f+slide, slide) {
		t.Error("a call to the pv_ops entry was refused")
	}
	if img.pvLegal(at, cat(call5(0xe8, at, f+16), nopsCanon[2]), f+slide, slide) {
		t.Error("a call elsewhere was accepted")
	}
	if !img.pvLegal(at, nopsCanon[7], img.pvNop+slide, slide) || img.pvLegal(at, nopsCanon[7], f+slide, slide) {
		t.Error("_paravirt_nop: NOPs only for it")
	}
	if !img.pvLegal(at, cat(call5(0xe8, at, img.bugFunc), nopsCanon[2]), 0, slide) {
		t.Error("no function: a call to BUG_func was refused")
	}
	if img.pvLegal(at, cat(call5(0xe8, at, 0xffffffffc0000000-slide), nopsCanon[2]), 0xffffffffc0000000, slide) {
		t.Error("a pv_ops entry outside kernel text was accepted")
	}
}
