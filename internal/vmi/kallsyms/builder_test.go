package kallsyms

import (
	"cmp"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// This file builds synthetic kallsyms data the way scripts/kallsyms.c lays
// it out, so the parser can be tested on every layout without a kernel.

type buildOpts struct {
	seqs       bool // kallsyms_seqs_of_names between markers and token table (6.2-6.3, Debian 6.1)
	reordered  bool // the 6.4+ order; seqs then go at the end
	markerSize int  // 4 or 8
	mode       AddrMode
	lead       int // junk bytes before the tables (rounded up to 8)
}

// multiTokens fill the byte values that never occur in names, like the
// kernel's pair-merging compressor does.
var multiTokens = []string{"__x64_sys_", "sys_", "init_", "task", "_t", "pfx_", "do_", "kernel"}

type builder struct {
	b []byte
}

func (w *builder) align() {
	for len(w.b)%8 != 0 {
		w.b = append(w.b, 0)
	}
}
func (w *builder) u16(v uint16) { w.b = binary.LittleEndian.AppendUint16(w.b, v) }
func (w *builder) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *builder) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }

// tokenSet returns the 256 tokens: printable ASCII maps to itself, some free
// slots get multi-character tokens, the rest are empty.
func tokenSet() [256]string {
	var toks [256]string
	for c := 0x21; c <= 0x7e; c++ {
		toks[c] = string(rune(c))
	}
	free := 0
	for _, t := range multiTokens {
		for toks[free] != "" {
			free++
		}
		toks[free] = t
	}
	return toks
}

// encodeName compresses "<type><name>" greedily with the token set.
func encodeName(s string, toks [256]string) []byte {
	var out []byte
	for len(s) > 0 {
		best, bestLen := -1, 0
		for i, t := range toks {
			if len(t) > bestLen && len(t) <= len(s) && s[:len(t)] == t {
				best, bestLen = i, len(t)
			}
		}
		if best < 0 {
			panic("unencodable byte in " + s)
		}
		out = append(out, byte(best))
		s = s[bestLen:]
	}
	return out
}

// buildKallsyms lays out syms (sorted by address) and returns the buffer.
func buildKallsyms(tb testing.TB, syms []Symbol, o buildOpts) []byte {
	tb.Helper()
	if !slices.IsSortedFunc(syms, func(a, b Symbol) int { return cmp.Compare(a.Addr, b.Addr) }) {
		tb.Fatal("builder: symbols not sorted")
	}
	toks := tokenSet()
	n := len(syms)
	rng := rand.New(rand.NewPCG(1, 2))
	w := &builder{}
	for range alignUp(o.lead, 8) {
		w.b = append(w.b, byte(rng.IntN(255)+1))
	}

	// Address encoding.
	var base uint64
	for _, s := range syms {
		if s.Addr >= kernelHalf {
			base = s.Addr
			break
		}
	}
	if o.mode == ModeRelative {
		base = syms[0].Addr
	}
	writeAddrs := func() {
		w.align()
		for _, s := range syms {
			switch o.mode {
			case ModeAbsolute:
				w.u64(s.Addr)
			case ModeRelative:
				w.u32(uint32(s.Addr - base))
			case ModeAbsolutePercpu:
				if s.Addr < 1<<31 {
					w.u32(uint32(s.Addr))
				} else {
					w.u32(uint32(base - 1 - s.Addr))
				}
			}
		}
		if o.mode != ModeAbsolute {
			w.align()
			w.u64(base)
		}
	}

	// Names in address order; markers every 256.
	var names []byte
	var markers []uint64
	for i, s := range syms {
		if i%256 == 0 {
			markers = append(markers, uint64(len(names)))
		}
		enc := encodeName(string(s.Type)+s.Name, toks)
		if len(enc) < 0x80 {
			names = append(names, byte(len(enc)))
		} else {
			names = append(names, byte(len(enc)&0x7f|0x80), byte(len(enc)>>7))
		}
		names = append(names, enc...)
	}
	// seqs_of_names: symbol indexes sorted by name.
	seqs := make([]int, n)
	for i := range seqs {
		seqs[i] = i
	}
	sort.SliceStable(seqs, func(a, b int) bool { return syms[seqs[a]].Name < syms[seqs[b]].Name })
	writeSeqs := func() {
		w.align()
		for _, s := range seqs {
			w.b = append(w.b, byte(s>>16), byte(s>>8), byte(s))
		}
	}

	if !o.reordered {
		writeAddrs()
	}
	w.align()
	w.u32(uint32(n))
	w.align()
	w.b = append(w.b, names...)
	w.align()
	for _, m := range markers {
		if o.markerSize == 8 {
			w.u64(m)
		} else {
			w.u32(uint32(m))
		}
	}
	if o.seqs && !o.reordered {
		writeSeqs()
	}
	w.align()
	var index []uint16
	start := len(w.b)
	for _, t := range toks {
		index = append(index, uint16(len(w.b)-start))
		w.b = append(w.b, t...)
		w.b = append(w.b, 0)
	}
	w.align()
	for _, v := range index {
		w.u16(v)
	}
	if o.reordered {
		writeAddrs()
		if o.seqs {
			writeSeqs()
		}
	}
	for range 64 {
		w.b = append(w.b, byte(rng.IntN(256)))
	}
	return w.b
}

// sampleSymbols returns n sorted symbols: a few per-CPU ones at small
// offsets, then kernel text and data, with aliases, duplicates, a name
// long enough for a two-byte length, and the digit-bearing names real
// kernels have.
func sampleSymbols(n int) []Symbol {
	syms := []Symbol{
		{Name: "fixed_percpu_data", Addr: 0, Type: 'A'},
		{Name: "__per_cpu_start", Addr: 0, Type: 'A'},
		{Name: "current_task", Addr: 0x1fb80, Type: 'A'},
		{Name: "startup_64", Addr: 0xffffffff81000000, Type: 'T'},
		{Name: "_stext", Addr: 0xffffffff81000000, Type: 'T'},
		{Name: "_text", Addr: 0xffffffff81000000, Type: 'T'},
	}
	addr := uint64(0xffffffff81000040)
	for i := 0; len(syms) < n-4; i++ {
		typ := byte("TtDdRrBb"[i%8])
		syms = append(syms, Symbol{Name: "sym_" + itoa(i) + "_x86_64", Addr: addr, Type: typ})
		addr += uint64(16 + i%64)
	}
	syms = append(syms,
		Symbol{Name: "__x64_sys_read", Addr: addr, Type: 'T'},
		Symbol{Name: "dup_name", Addr: addr + 0x10, Type: 't'},
		Symbol{Name: "dup_name", Addr: addr + 0x20, Type: 'T'},
		Symbol{Name: "very_long_" + string(make40('q')) + string(make40('w')) + string(make40('e')) + string(make40('r')), Addr: addr + 0x40, Type: 't'},
	)
	return syms
}

func make40(c byte) []byte {
	b := make([]byte, 40)
	for i := range b {
		b[i] = c
	}
	return b
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
