package prefilter

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/bulwark-project/bulwark/internal/shareddata"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

// sharedData returns ../shared/data/sub relative to the module root (the
// directory holding go.mod), where CI and developers keep the test data; the
// data is never copied into the repository.
func sharedData(tb testing.TB, sub string) string {
	tb.Helper()
	p, err := shareddata.Dir(sub)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

var etOnce struct {
	sync.Once
	set *rules.Set
	err error
}

// etOpen loads every ET Open rule file once per test binary.
func etOpen(tb testing.TB) *rules.Set {
	tb.Helper()
	dir := sharedData(tb, "et-open")
	etOnce.Do(func() {
		cfg, err := os.ReadFile(filepath.Join(dir, "classification.config"))
		if err != nil {
			etOnce.err = err
			return
		}
		classes, err := rules.ParseClassifications(cfg)
		if err != nil {
			etOnce.err = err
			return
		}
		files, err := filepath.Glob(filepath.Join(dir, "*.rules"))
		if err != nil || len(files) == 0 {
			etOnce.err = fmt.Errorf("no rule files in %s: %v", dir, err)
			return
		}
		l := rules.NewLoader(&rules.Options{Classes: classes})
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				etOnce.err = err
				return
			}
			if err := l.Add(bytes.NewReader(data), filepath.Base(f)); err != nil {
				etOnce.err = fmt.Errorf("%s: %w", f, err)
				return
			}
		}
		etOnce.set, _ = l.Finish()
	})
	if etOnce.err != nil {
		tb.Fatal(etOnce.err)
	}
	return etOnce.set
}

// Pieces of generated HTTP traffic: common methods, paths, hosts, agents
// and headers, so the text looks like what a web server's vNIC carries.
var (
	genMethods = []string{"GET", "GET", "GET", "POST", "HEAD", "PUT", "OPTIONS"}
	genPaths   = []string{"/", "/index.html", "/wp-login.php", "/api/v1/users", "/static/js/app.min.js",
		"/images/logo.png", "/search", "/cgi-bin/status", "/admin/config.php", "/favicon.ico",
		"/login", "/cart/checkout", "/feed.xml", "/robots.txt", "/assets/css/site.css"}
	genQueries = []string{"", "", "?id=%d", "?q=test+query&page=%d", "?session=%x&lang=en", "?utm_source=mail&v=%d"}
	genHosts   = []string{"www.example.com", "api.example.net", "cdn.static-assets.org", "intranet.local",
		"shop.example.co.uk", "10.0.0.%d"}
	genAgents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
		"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
		"curl/8.5.0", "python-requests/2.31.0", "Go-http-client/1.1",
	}
	genTypes = []string{"text/html; charset=utf-8", "application/json", "application/javascript", "image/png", "text/css"}
	genWords = []string{"the", "server", "returned", "a", "page", "with", "some", "content", "about",
		"products", "and", "users", "login", "error", "welcome", "<div class=\"row\">", "</div>",
		"<script src=\"/js/app.js\"></script>", "{\"id\":", "\"name\":", "\"ok\":true}", "\r\n"}
)

// genTraffic returns about n bytes of HTTP requests and responses with
// random binary chunks mixed in (as TLS records or compressed bodies would
// be). With inject, it also inserts, about every 300 bytes, one of those
// patterns, with the case of some letters flipped.
func genTraffic(r *rand.Rand, n int, inject [][]byte) []byte {
	var b bytes.Buffer
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	for b.Len() < n {
		switch r.IntN(5) {
		case 0, 1:
			fmt.Fprintf(&b, "%s %s"+pick(genQueries)+" HTTP/1.1\r\nHost: "+pick(genHosts)+"\r\nUser-Agent: %s\r\n",
				pick(genMethods), pick(genPaths), r.IntN(100000), pick(genAgents))
			fmt.Fprintf(&b, "Accept: */*\r\nAccept-Language: en-US,en;q=0.9\r\nCookie: sid=%016x; theme=dark\r\nConnection: keep-alive\r\n\r\n", r.Uint64())
		case 2:
			body := 0
			fmt.Fprintf(&b, "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: Mon, 15 Apr 2024 10:%02d:%02d GMT\r\nContent-Type: %s\r\n",
				r.IntN(60), r.IntN(60), pick(genTypes))
			words := 20 + r.IntN(200)
			var body0 bytes.Buffer
			for i := 0; i < words; i++ {
				body0.WriteString(pick(genWords))
				body0.WriteByte(' ')
			}
			body = body0.Len()
			fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", body)
			b.Write(body0.Bytes())
		case 3:
			chunk := make([]byte, 64+r.IntN(512))
			for i := range chunk {
				chunk[i] = byte(r.Uint32())
			}
			b.Write(chunk)
		case 4:
			if len(inject) > 0 {
				p := inject[r.IntN(len(inject))]
				for _, c := range p {
					if r.IntN(4) == 0 && c|0x20 >= 'a' && c|0x20 <= 'z' {
						c ^= 0x20
					}
					b.WriteByte(c)
				}
			}
		}
	}
	return b.Bytes()[:n]
}

// applyTransforms is the test's own, independent rendering of the
// transforms the prefilter reasons about.
func applyTransforms(data []byte, ts []rules.Transform) []byte {
	for _, t := range ts {
		switch t {
		case rules.TransformDotPrefix:
			data = append([]byte{'.'}, data...)
		case rules.TransformToLower:
			data = bytes.ToLower(data)
		case rules.TransformToUpper:
			data = bytes.ToUpper(data)
		case rules.TransformStripWhitespace:
			data = bytes.Join(bytes.Fields(data), nil)
		case rules.TransformCompressWhitespace:
			data = bytes.Join(bytes.Fields(data), []byte(" "))
		}
	}
	return data
}

func containsFold(hay, needle []byte, nocase bool) bool {
	if !nocase {
		return bytes.Contains(hay, needle)
	}
	return bytes.Contains(asciiLower(hay), asciiLower(needle))
}

// TestPrefilterETOpen builds the prefilter from every loadable ET Open rule
// and checks, per buffer, on generated traffic carrying that buffer's fast
// patterns: no rule whose fast pattern occurs (after its transforms) is
// missed, and for rules without transforms the selection is exact.
func TestPrefilterETOpen(t *testing.T) {
	set := etOpen(t)
	p, err := FromSet(set, nil)
	if err != nil {
		t.Fatal(err)
	}
	byBuf := map[rules.Buffer][]*rules.Rule{}
	ids := map[*rules.Rule]int32{}
	for i, r := range set.Rules {
		ids[r] = int32(i)
		if r.Fast != nil && !r.Fast.Negated {
			byBuf[r.Fast.Buffer] = append(byBuf[r.Fast.Buffer], r)
		}
	}
	r := rand.New(rand.NewPCG(7, 8))
	var sc Scratch
	total, checked := 0, 0
	for _, st := range p.Stats() {
		t.Logf("%-20s %5d patterns %5d rules indexed, always %v; %v", st.Buffer, st.Patterns, st.Indexed, st.Always, st.Matcher)
		rs := byBuf[st.Buffer]
		if len(rs) == 0 {
			continue
		}
		var inject [][]byte
		for _, rr := range rs {
			inject = append(inject, rr.Fast.Bytes)
		}
		for round := 0; round < 3; round++ {
			data := genTraffic(r, 4096, inject)
			got := p.Candidates(st.Buffer, data, &sc)
			always := p.Always(st.Buffer)
			for _, rr := range rs {
				id := ids[rr]
				bm := rr.Buffers[rr.Fast.BufferIndex]
				want := containsFold(applyTransforms(data, bm.Transforms), rr.Fast.Bytes, rr.Fast.Nocase)
				_, in := slices.BinarySearch(got, id)
				checked++
				if want {
					total++
				}
				switch {
				case want && !in:
					t.Errorf("%s: sid %d (fast pattern %q nocase=%v transforms %v) occurs but was not selected",
						st.Buffer, rr.SID, rr.Fast.Bytes, rr.Fast.Nocase, bm.Transforms)
				case !want && in && len(bm.Transforms) == 0 && len(rr.Fast.Bytes) <= MaxPatternLen && !slices.Contains(always, id):
					t.Errorf("%s: sid %d selected but its fast pattern %q does not occur", st.Buffer, rr.SID, rr.Fast.Bytes)
				}
			}
		}
	}
	for app := rules.AppNone; app <= rules.AppTLS; app++ {
		t.Logf("rules inspecting no buffer (%s): %d", app, len(p.Unconditional(app)))
	}
	t.Logf("checked %d rule/buffer pairs, %d with the fast pattern present; prefilter holds %.1f MiB",
		checked, total, float64(p.Bytes())/(1<<20))
	if total == 0 {
		t.Fatal("generated traffic matched nothing")
	}
}

// etPatterns returns the distinct patterns the prefilter would index for
// the payload and every http.* buffer, as BenchmarkScan scans them.
func etPatterns(tb testing.TB) []Pattern {
	set := etOpen(tb)
	seen := map[string]bool{}
	var pats []Pattern
	for _, r := range set.Rules {
		if r.Fast == nil {
			continue
		}
		name := r.Fast.Buffer.String()
		if r.Fast.Buffer != rules.BufPayload && (len(name) < 5 || name[:5] != "http.") {
			continue
		}
		_, pat, reason := fastPattern(r)
		if reason != "" {
			continue
		}
		if len(pat.Bytes) > MaxPatternLen {
			pat.Bytes = pat.Bytes[:MaxPatternLen]
		}
		if k := patternKey(pat); !seen[k] {
			seen[k] = true
			pats = append(pats, pat)
		}
	}
	return pats
}

// TestMatcherETOpen compares one automaton holding all ET Open payload and
// HTTP fast patterns with the naive matcher on generated traffic.
func TestMatcherETOpen(t *testing.T) {
	pats := etPatterns(t)
	m, err := Compile(pats, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ET Open payload+http: %v", m.Stats())
	var inject [][]byte
	for _, p := range pats {
		inject = append(inject, p.Bytes)
	}
	r := rand.New(rand.NewPCG(9, 10))
	var sc Scratch
	for round := 0; round < 2; round++ {
		data := genTraffic(r, 4096, inject)
		lower := asciiLower(data)
		var want []int32
		for id, p := range pats {
			if p.Nocase && bytes.Contains(lower, asciiLower(p.Bytes)) || !p.Nocase && bytes.Contains(data, p.Bytes) {
				want = append(want, int32(id))
			}
		}
		got := m.AppendSet(nil, data, &sc)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: %d patterns found, naive finds %d", round, len(got), len(want))
		}
		t.Logf("round %d: %d of %d patterns occur", round, len(got), len(pats))
	}
}
