package prefilter

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

// BenchmarkBuildETOpen builds the whole prefilter (one automaton per
// buffer) from every loadable ET Open rule; loading the rules is not timed.
// Reported: alloc-MB, the bytes allocated per build; held-MB, what the
// finished prefilter holds; peak-build-MB, the construction memory of the
// largest automaton on top of it; patterns and states over all buffers.
func BenchmarkBuildETOpen(b *testing.B) {
	set := etOpen(b)
	var p *Prefilter
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		p, err = FromSet(set, nil)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	pats, states, peak := 0, 0, 0
	for _, st := range p.Stats() {
		pats += st.Patterns
		states += st.Matcher.States
		peak = max(peak, st.Matcher.BuildBytes)
	}
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/1e6, "alloc-MB")
	b.ReportMetric(float64(p.Bytes())/1e6, "held-MB")
	b.ReportMetric(float64(peak)/1e6, "peak-build-MB")
	b.ReportMetric(float64(pats), "patterns")
	b.ReportMetric(float64(states), "states")
}

// scanText is 64 KiB of generated HTTP traffic mixed with random bytes,
// with no pattern injected: whatever matches, matches naturally.
func scanText() []byte {
	return genTraffic(rand.New(rand.NewPCG(11, 12)), 64<<10, nil)
}

// naiveScan is the peer: one bytes.Contains pass per pattern, case-insensitive
// patterns searched in a lower-cased copy of the text. It returns the
// number of patterns found.
func naiveScan(pats []Pattern, lowered [][]byte, text, lowerBuf []byte) int {
	for i, c := range text {
		lowerBuf[i] = fold[c]
	}
	n := 0
	for i, p := range pats {
		hay := text
		if p.Nocase {
			hay = lowerBuf
		}
		if bytes.Contains(hay, lowered[i]) {
			n++
		}
	}
	return n
}

// mbps times fn over text for at least d and returns MB/s.
func mbps(d time.Duration, size int, fn func()) float64 {
	start := time.Now()
	n := 0
	for time.Since(start) < d || n == 0 {
		fn()
		n++
	}
	return float64(n) * float64(size) / time.Since(start).Seconds() / 1e6
}

// BenchmarkScan scans 64 KiB of generated traffic with one automaton
// holding every ET Open payload and http.* fast pattern (about 9,900
// distinct patterns), reporting MB/s for the timed loop. After it, in the
// same run and on the same text, it times the automaton and the naive peer
// (a bytes.Contains per pattern) on a 1,000-pattern subset: ac1k-MB/s,
// naive1k-MB/s, and the ratios x-naive1k (full automaton against the naive
// subset) and x-naive1k-same (same 1,000 patterns).
func BenchmarkScan(b *testing.B) {
	pats := etPatterns(b)
	m, err := Compile(pats, nil)
	if err != nil {
		b.Fatal(err)
	}
	text := scanText()
	var sc Scratch
	dst := make([]int32, 0, len(pats))
	found := 0
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst = m.AppendSet(dst[:0], text, &sc)
		found = len(dst)
	}
	b.StopTimer()

	sub := make([]Pattern, 0, 1000)
	for i := 0; i < len(pats) && len(sub) < 1000; i += max(1, len(pats)/1000) {
		sub = append(sub, pats[i])
	}
	m1k, err := Compile(sub, nil)
	if err != nil {
		b.Fatal(err)
	}
	lowered := make([][]byte, len(sub))
	for i, p := range sub {
		lowered[i] = p.Bytes
		if p.Nocase {
			lowered[i] = asciiLower(p.Bytes)
		}
	}
	lowerBuf := make([]byte, len(text))
	if a, w := len(m1k.AppendSet(nil, text, &sc)), naiveScan(sub, lowered, text, lowerBuf); a != w {
		b.Fatalf("1k subset: automaton finds %d patterns, naive %d", a, w)
	}
	const d = 150 * time.Millisecond
	full := mbps(d, len(text), func() { dst = m.AppendSet(dst[:0], text, &sc) })
	ac1k := mbps(d, len(text), func() { dst = m1k.AppendSet(dst[:0], text, &sc) })
	naive := mbps(d, len(text), func() { naiveScan(sub, lowered, text, lowerBuf) })
	b.ReportMetric(float64(len(pats)), "patterns")
	b.ReportMetric(float64(found), "found")
	b.ReportMetric(full, "acfull-MB/s")
	b.ReportMetric(ac1k, "ac1k-MB/s")
	b.ReportMetric(naive, "naive1k-MB/s")
	b.ReportMetric(full/naive, "x-naive1k")
	b.ReportMetric(ac1k/naive, "x-naive1k-same")
}

// BenchmarkScanCallback is BenchmarkScan's automaton reporting every
// occurrence through Scan's callback instead of the deduplicated set.
func BenchmarkScanCallback(b *testing.B) {
	m, err := Compile(etPatterns(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	text := scanText()
	hits := 0
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		hits = 0
		m.Scan(text, func(id, end int) bool { hits++; return true })
	}
	b.ReportMetric(float64(hits), "hits")
}

// BenchmarkCandidates runs the full ET Open prefilter over a 64 KiB payload
// buffer and a typical request URI, as the engine will per buffer.
func BenchmarkCandidates(b *testing.B) {
	p, err := FromSet(etOpen(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		buf  rules.Buffer
		data []byte
	}{
		{"payload-64KiB", rules.BufPayload, scanText()},
		{"uri", rules.BufHTTPURI, []byte("/wp-content/plugins/contact-form/upload.php?id=1234&action=view")},
		{"dns", rules.BufDNSQuery, []byte("update.software-vendor.example.com")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var sc Scratch
			n := 0
			b.SetBytes(int64(len(bc.data)))
			for i := 0; i < b.N; i++ {
				n = len(p.Candidates(bc.buf, bc.data, &sc))
			}
			b.ReportMetric(float64(n), "rules")
		})
	}
}
