package prefilter

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// hit is one reported occurrence.
type hit struct{ id, end int }

// naiveHits is the reference: every pattern tried at every offset.
func naiveHits(pats []Pattern, text []byte) []hit {
	var out []hit
	lower := asciiLower(text)
	for id, p := range pats {
		n := len(p.Bytes)
		lp := asciiLower(p.Bytes)
		for end := n; end <= len(text); end++ {
			w := text[end-n : end]
			if p.Nocase {
				if bytes.Equal(lower[end-n:end], lp) {
					out = append(out, hit{id, end})
				}
			} else if bytes.Equal(w, p.Bytes) {
				out = append(out, hit{id, end})
			}
		}
	}
	sortHits(out)
	return out
}

func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = fold[c]
	}
	return out
}

func sortHits(h []hit) {
	slices.SortFunc(h, func(a, b hit) int {
		if a.end != b.end {
			return a.end - b.end
		}
		return a.id - b.id
	})
}

func scanHits(m *Matcher, text []byte) []hit {
	var out []hit
	m.Scan(text, func(id, end int) bool {
		out = append(out, hit{id, end})
		return true
	})
	sortHits(out)
	return out
}

func naiveSet(pats []Pattern, text []byte) []int32 {
	var ids []int32
	for _, h := range naiveHits(pats, text) {
		if !slices.Contains(ids, int32(h.id)) {
			ids = append(ids, int32(h.id))
		}
	}
	slices.Sort(ids)
	return ids
}

// checkAgainstNaive compiles pats (with the given dense budget) and
// compares Scan and AppendSet with the naive matcher on each text.
func checkAgainstNaive(t *testing.T, pats []Pattern, texts [][]byte, opts *Options) {
	t.Helper()
	m, err := Compile(pats, opts)
	if err != nil {
		t.Fatal(err)
	}
	var sc Scratch
	for _, text := range texts {
		want := naiveHits(pats, text)
		got := scanHits(m, text)
		if !slices.Equal(got, want) {
			t.Fatalf("Scan(%q) with %d patterns %v:\n got %v\nwant %v", text, len(pats), pats, got, want)
		}
		set := m.AppendSet(nil, text, &sc)
		slices.Sort(set)
		if ws := naiveSet(pats, text); !slices.Equal(set, ws) {
			t.Fatalf("AppendSet(%q): got %v, want %v (patterns %v)", text, set, ws, pats)
		}
	}
}

func (p Pattern) String() string {
	if p.Nocase {
		return fmt.Sprintf("%q/i", p.Bytes)
	}
	return fmt.Sprintf("%q", p.Bytes)
}

func TestMatcherTable(t *testing.T) {
	P := func(s string) Pattern { return Pattern{Bytes: []byte(s)} }
	I := func(s string) Pattern { return Pattern{Bytes: []byte(s), Nocase: true} }
	tests := []struct {
		name  string
		pats  []Pattern
		texts []string
	}{
		{"classic", []Pattern{P("he"), P("she"), P("his"), P("hers")}, []string{"ushers", "ahishers", "", "h"}},
		{"prefixes", []Pattern{P("a"), P("ab"), P("abc"), P("abcd")}, []string{"abcd", "aabcabcd", "xxabx"}},
		{"suffixes", []Pattern{P("d"), P("cd"), P("bcd"), P("abcd")}, []string{"abcdabcd", "bcd"}},
		{"nocase vs exact", []Pattern{P("GET"), I("get"), P("get"), I("GeT")}, []string{"GET /", "get /", "gEt", "GETget"}},
		{"duplicates", []Pattern{P("x"), P("x"), I("X")}, []string{"xXx"}},
		{"binary", []Pattern{P("\x00\x01"), P("\xff"), P("\x00"), P("A\x00b")}, []string{"\x00\x00\x01\xff", "A\x00b a\x00B"}},
		{"non-letters under nocase", []Pattern{I("[@"), I("{`")}, []string{"[@{`", "{@[`"}},
		{"repeats", []Pattern{P("aa"), P("aaa"), I("A")}, []string{"aaaaaa", "AaAa"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var texts [][]byte
			for _, s := range tc.texts {
				texts = append(texts, []byte(s))
			}
			checkAgainstNaive(t, tc.pats, texts, nil)
			// All-sparse below the root: exercise the failure walk.
			checkAgainstNaive(t, tc.pats, texts, &Options{DenseBytes: 1})
		})
	}
}

// randomPatterns draws n patterns over a small alphabet (so they overlap,
// share prefixes and are suffixes of each other) with some binary bytes.
func randomPatterns(r *rand.Rand, n, maxLen int, alphabet []byte) []Pattern {
	pats := make([]Pattern, n)
	for i := range pats {
		b := make([]byte, 1+r.IntN(maxLen))
		for j := range b {
			b[j] = alphabet[r.IntN(len(alphabet))]
		}
		pats[i] = Pattern{Bytes: b, Nocase: r.IntN(2) == 0}
	}
	return pats
}

func randomText(r *rand.Rand, n int, alphabet []byte, pats []Pattern) []byte {
	var b []byte
	for len(b) < n {
		if len(pats) > 0 && r.IntN(4) == 0 {
			p := pats[r.IntN(len(pats))].Bytes
			for _, c := range p {
				if r.IntN(3) == 0 {
					c ^= 0x20 // flip the case of letters (and break others)
				}
				b = append(b, c)
			}
			continue
		}
		b = append(b, alphabet[r.IntN(len(alphabet))])
	}
	return b
}

func TestMatcherRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabets := [][]byte{
		[]byte("aAbB"),
		[]byte("abcABC\x00\xff"),
		[]byte("xyzXYZ019 \r\n"),
	}
	full := make([]byte, 256)
	for i := range full {
		full[i] = byte(i)
	}
	alphabets = append(alphabets, full)
	for iter := 0; iter < 300; iter++ {
		alpha := alphabets[iter%len(alphabets)]
		pats := randomPatterns(r, 1+r.IntN(40), 1+r.IntN(8), alpha)
		var texts [][]byte
		for k := 0; k < 4; k++ {
			texts = append(texts, randomText(r, r.IntN(200), alpha, pats))
		}
		opts := []*Options{nil, {DenseBytes: 1}, {DenseBytes: 64 * 4 * 3}}[iter%3]
		checkAgainstNaive(t, pats, texts, opts)
	}
}

// TestMatcherInterleaved covers AppendSet's two-walk path (buffers of at
// least interleaveMin bytes), with occurrences across the middle.
func TestMatcherInterleaved(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for iter := 0; iter < 40; iter++ {
		alpha := []byte("abcAB\x00")
		pats := randomPatterns(r, 1+r.IntN(30), 1+r.IntN(12), alpha)
		if iter%4 == 0 {
			pats = append(pats, Pattern{Bytes: bytes.Repeat([]byte("ab"), 100)})
		}
		text := randomText(r, interleaveMin+r.IntN(3000), alpha, pats)
		if iter%4 == 0 {
			mid := len(text) / 2
			copy(text[mid-100:], bytes.Repeat([]byte("ab"), 100))
		}
		opts := []*Options{nil, {DenseBytes: 1}}[iter%2]
		checkAgainstNaive(t, pats, [][]byte{text}, opts)
	}
}

func TestMatcherLongPatterns(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alpha := []byte("ab")
	pats := randomPatterns(r, 20, MaxPatternLen, alpha)
	pats = append(pats, Pattern{Bytes: bytes.Repeat([]byte("a"), MaxPatternLen)})
	texts := [][]byte{bytes.Repeat([]byte("a"), 600), randomText(r, 2000, alpha, pats)}
	checkAgainstNaive(t, pats, texts, &Options{DenseBytes: 1 << 10})
}

func TestCompileErrors(t *testing.T) {
	long := make([]byte, MaxPatternLen+1)
	tests := []struct {
		name string
		pats []Pattern
		opts *Options
		want string
		err  error
	}{
		{"empty", []Pattern{{Bytes: []byte("a")}, {}}, nil, "pattern 1 is empty", nil},
		{"too long", []Pattern{{Bytes: long}}, nil, "pattern 0 is 256 bytes", nil},
		{"too many", []Pattern{{Bytes: []byte("a")}, {Bytes: []byte("b")}}, &Options{MaxPatterns: 1}, "2 patterns, limit 1", ErrTooLarge},
		{"too big", []Pattern{{Bytes: long[:200]}}, &Options{MaxBytes: 1000}, "pattern bytes need", ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.pats, tc.opts)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want errors.Is %v", err, tc.err)
			}
		})
	}
	m, err := Compile(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := scanHits(m, []byte("anything")); len(got) != 0 {
		t.Fatalf("empty matcher reported %v", got)
	}
}

func TestScanStops(t *testing.T) {
	m, err := Compile([]Pattern{{Bytes: []byte("a")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	m.Scan([]byte("aaaa"), func(id, end int) bool { n++; return n < 2 })
	if n != 2 {
		t.Fatalf("callback ran %d times after asking to stop at 2", n)
	}
}

// TestAppendSetRepeated: a buffer matching the same nested patterns at every
// offset must still report each once, and the work must stay linear (the
// chain of a done state is skipped).
func TestAppendSetRepeated(t *testing.T) {
	var pats []Pattern
	for n := 1; n <= 50; n++ {
		pats = append(pats, Pattern{Bytes: bytes.Repeat([]byte("a"), n), Nocase: true})
	}
	pats = append(pats, Pattern{Bytes: []byte("AAA")}) // exact, fails on "aaa"
	m, err := Compile(pats, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sc Scratch
	text := bytes.Repeat([]byte("a"), 1<<16)
	got := m.AppendSet(nil, text, &sc)
	if len(got) != 50 {
		t.Fatalf("got %d patterns, want 50", len(got))
	}
	text[100], text[101], text[102] = 'A', 'A', 'A'
	got = m.AppendSet(got[:0], text, &sc)
	if len(got) != 51 {
		t.Fatalf("got %d patterns, want 51", len(got))
	}
}

func TestScratchGenerationWrap(t *testing.T) {
	m, err := Compile([]Pattern{{Bytes: []byte("ab")}, {Bytes: []byte("b")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sc Scratch
	_ = m.AppendSet(nil, []byte("ab"), &sc)
	sc.gen = ^uint32(0) - 1
	for i := 0; i < 4; i++ {
		got := m.AppendSet(nil, []byte("xxab"), &sc)
		if len(got) != 2 {
			t.Fatalf("round %d (gen %d): got %v", i, sc.gen, got)
		}
	}
}

func TestAppendSetNoAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	pats := randomPatterns(r, 500, 6, []byte("abcdefgh"))
	m, err := Compile(pats, nil)
	if err != nil {
		t.Fatal(err)
	}
	text := randomText(r, 4096, []byte("abcdefghij"), pats)
	var sc Scratch
	dst := make([]int32, 0, len(pats))
	dst = m.AppendSet(dst[:0], text, &sc)
	allocs := testing.AllocsPerRun(50, func() {
		dst = m.AppendSet(dst[:0], text, &sc)
	})
	if allocs != 0 {
		t.Fatalf("AppendSet: %.1f allocations per scan, want 0", allocs)
	}
	n := 0
	allocs = testing.AllocsPerRun(50, func() {
		m.Scan(text, func(id, end int) bool { n++; return true })
	})
	if allocs != 0 {
		t.Fatalf("Scan: %.1f allocations per scan, want 0", allocs)
	}
}

// FuzzMatch splits the input into patterns and a text and compares the
// automaton with the naive matcher. The first byte picks nocase bits and
// the dense budget; then patterns are separated by 0xfe and the text
// follows the first 0xfd.
func FuzzMatch(f *testing.F) {
	f.Add([]byte("\x05he\xfeshe\xfehis\xfehers\xfdushers"))
	f.Add([]byte("\x00a\xfeab\xfeb\xfdabab"))
	f.Add([]byte("\xffGeT\xfeget\xfe\x00\xfdGET get \x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 || len(data) > 4096 {
			return
		}
		ctl := data[0]
		pdata, text, _ := bytes.Cut(data[1:], []byte{0xfd})
		var pats []Pattern
		for i, p := range bytes.Split(pdata, []byte{0xfe}) {
			if len(p) == 0 || len(p) > MaxPatternLen || len(pats) >= 64 {
				continue
			}
			pats = append(pats, Pattern{Bytes: p, Nocase: ctl>>(i%8)&1 == 1})
		}
		opts := &Options{DenseBytes: 1 + int(ctl&3)*4*40}
		checkAgainstNaive(t, pats, [][]byte{text, data}, opts)
	})
}
