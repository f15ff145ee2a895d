package engine

import (
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

func mustRule(t testing.TB, text string) *rules.Rule {
	t.Helper()
	r, err := rules.Parse(text, nil)
	if err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	return r
}

// TestMatchBuffer checks the content-chain semantics on the payload.
func TestMatchBuffer(t *testing.T) {
	for _, tc := range []struct {
		opts string
		data string
		want bool
	}{
		// plain, nocase, negation
		{`content:"abc";`, "xxabcxx", true},
		{`content:"ABC";`, "xxabcxx", false},
		{`content:"ABC"; nocase;`, "xxabcxx", true},
		{`content:!"abc";`, "xxabxx", true},
		{`content:!"abc";`, "xxabcxx", false},
		{`content:"a"; content:!"b"; distance:0; within:1;`, "ab ac", true}, // backtracks to the second a
		{`content:"a"; content:!"b"; distance:0; within:1;`, "ab ab", false},
		// offset / depth edges
		{`content:"abc"; offset:2;`, "xxabc", true},
		{`content:"abc"; offset:3;`, "xxabc", false},
		{`content:"abc"; depth:5;`, "xxabc", true},
		{`content:"abc"; depth:4;`, "xxabc", false},
		{`content:"abc"; offset:1; depth:4;`, "xxabc", true},
		{`content:"abc"; offset:1; depth:3;`, "xxabc", false},
		// distance / within edges
		{`content:"ab"; content:"cd"; distance:2;`, "abxxcd", true},
		{`content:"ab"; content:"cd"; distance:3;`, "abxxcd", false},
		{`content:"ab"; content:"cd"; within:4;`, "abxxcd", true},
		{`content:"ab"; content:"cd"; within:3;`, "abxxcd", false},
		{`content:"ab"; content:"cd"; distance:1; within:3;`, "abxxcd", true},
		{`content:"ab"; content:"cd"; distance:1; within:2;`, "abxxcd", false},
		{`content:"cd"; content:"ab"; distance:-4; within:2;`, "abcd", true},
		// backtracking: the first "ab" fails the within, the second passes
		{`content:"ab"; content:"cd"; distance:0; within:2;`, "ab--abcd", true},
		{`content:"ab"; content:"cd"; distance:0; within:2; content:"ef"; distance:0; within:2;`, "abcd-abcdef", true},
		{`content:"ab"; content:"cd"; distance:0; within:2; content:"ef"; distance:0; within:2;`, "abcd-abcd-ef", false},
		// an absolute content after a failing relative one does not retry
		{`content:"a"; content:"b"; distance:0; within:1;`, "axab", true},
		// startswith / endswith
		{`content:"GET"; startswith;`, "GET /", true},
		{`content:"GET"; startswith;`, " GET /", false},
		{`content:"AAA"; endswith;`, "xxAAA", true},
		{`content:"AAA"; endswith;`, "xxAAAx", false},
		{`content:"AAA"; endswith;`, "AAAxAAA", true},
		{`content:"yYYY"; distance:2; within:8; endswith;`, "1234yYYY", true},
		{`content:"yYYY"; distance:2; within:5; endswith;`, "1234yYYY", false},
		// isdataat
		{`isdataat:3;`, "abcd", true},
		{`isdataat:4;`, "abcd", false},
		{`content:"a"; isdataat:3,relative;`, "abcd", true},
		{`content:"a"; isdataat:4,relative;`, "abcd", false},
		{`content:"a"; isdataat:!4,relative;`, "abcd", true},
		// pcre, relative
		{`pcre:"/a.c/";`, "xxabcxx", true},
		{`content:"google"; pcre:"/^\.[a-z]{2,3}$/R";`, "www.google.com", true},
		{`content:"google"; pcre:"/^\.[a-z]{2,3}$/R";`, "www.google.comx", false},
		{`content:"x"; pcre:"/^y/R";`, "xzxy", true}, // retried at the second x
		{`pcre:!"/evil/";`, "good", true},
		// byte_test / byte_jump
		{`content:"|00|"; byte_test:2,>,255,0,relative;`, "\x00\x01\x00", true},
		{`content:"|00|"; byte_test:2,>,256,0,relative;`, "\x00\x01\x00", false},
		{`byte_test:3,=,123,1,string,dec;`, "x123y", true},
		{`byte_test:1,&,2,0;`, "\x02", true},
		{`byte_jump:1,0; content:"Z"; within:1;`, "\x02abZ", true},
		{`byte_jump:1,0; content:"Z"; within:1;`, "\x03abZ", false},
		{`byte_jump:1,0; content:"Z"; within:1;`, "\x09abZ", false},
	} {
		r := mustRule(t, `alert tcp any any -> any any (`+tc.opts+` sid:1;)`)
		var m matcher
		got := true
		for _, bm := range r.Buffers {
			if !m.matchBuffer(bm, []byte(tc.data)) {
				got = false
			}
		}
		if got != tc.want {
			t.Errorf("%s on %q: got %v, want %v", tc.opts, tc.data, got, tc.want)
		}
	}
}

// TestBacktrackBound: a chain that can never succeed on a buffer full of
// first-content matches stops at the retry bound instead of trying every
// combination.
func TestBacktrackBound(t *testing.T) {
	r := mustRule(t, `alert tcp any any -> any any (content:"a"; content:"a"; distance:0; content:"a"; distance:0; content:"b"; distance:0; sid:1;)`)
	data := []byte(strings.Repeat("a", 4000))
	m := matcher{maxRetries: 100}
	if m.matchBuffer(r.Buffers[0], data) {
		t.Fatal("matched")
	}
	if m.exhausted != 1 {
		t.Fatalf("exhausted = %d, want 1", m.exhausted)
	}
	// The same chain with a reachable b matches within the bound.
	data[len(data)-1] = 'b'
	if !m.matchBuffer(r.Buffers[0], data) {
		t.Fatal("no match")
	}
}

func TestTransforms(t *testing.T) {
	for _, tc := range []struct {
		ts   []rules.Transform
		in   string
		want string
	}{
		{[]rules.Transform{rules.TransformToLower}, "AbC", "abc"},
		{[]rules.Transform{rules.TransformToUpper}, "AbC", "ABC"},
		{[]rules.Transform{rules.TransformDotPrefix}, "ab.c", ".ab.c"},
		{[]rules.Transform{rules.TransformStripWhitespace}, " a b\t\nc ", "abc"},
		{[]rules.Transform{rules.TransformCompressWhitespace}, "a  b\t\nc", "a b c"},
	} {
		if got := string(applyTransforms(nil, []byte(tc.in), tc.ts)); got != tc.want {
			t.Errorf("%v(%q) = %q, want %q", tc.ts, tc.in, got, tc.want)
		}
	}
}

func TestIndexFold(t *testing.T) {
	for _, tc := range []struct {
		s, p string
		want int
	}{
		{"xxHeLLo", "hello", 2}, {"hello", "HELLO", 0}, {"hel", "hello", -1},
		{"aaaaB", "aab", 2}, {"1234", "34", 2}, {"", "a", -1}, {"[{", "{", 1},
	} {
		if got := indexFold([]byte(tc.s), []byte(tc.p)); got != tc.want {
			t.Errorf("indexFold(%q, %q) = %d, want %d", tc.s, tc.p, got, tc.want)
		}
	}
}
