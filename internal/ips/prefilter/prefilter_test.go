package prefilter

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

func loadRules(t testing.TB, text string) *rules.Set {
	t.Helper()
	set, st := rules.Load(strings.NewReader(text), nil)
	if st.ErrorTotal() != 0 || st.SkippedTotal() != 0 {
		t.Fatalf("rules did not load: %v", st.Warnings)
	}
	return set
}

const unitRules = `
alert http any any -> any any (msg:"uri evil"; http.uri; content:"/evil"; sid:1;)
alert http any any -> any any (msg:"uri evil nocase"; http.uri; content:"/EVIL"; nocase; sid:2;)
alert http any any -> any any (msg:"uri evil exact upper"; http.uri; content:"/EVIL"; sid:3;)
alert http any any -> any any (msg:"uri shares 1"; http.uri; content:"/evil"; content:"x"; distance:0; sid:4;)
alert http any any -> any any (msg:"uri pcre only"; pcre:"/^\/a+b/U"; sid:5;)
alert http any any -> any any (msg:"uri negated only"; http.uri; content:!"/good"; sid:6;)
alert dns any any -> any any (msg:"dotprefix"; dns.query; dotprefix; content:".bad.example"; endswith; sid:7;)
alert dns any any -> any any (msg:"lower"; dns.query; to_lowercase; content:"mixed.example"; sid:8;)
alert http any any -> any any (msg:"strip ws"; http.header; strip_whitespace; content:"X-A:1"; sid:9;)
alert tcp any any -> any any (msg:"no buffer"; dsize:>1000; sid:10;)
alert tcp any any -> any any (msg:"payload"; content:"|00 01|"; sid:11;)
alert dns any any -> any any (msg:"dns no buffer"; flow:to_server; sid:12;)
`

func TestCandidatesUnit(t *testing.T) {
	set := loadRules(t, unitRules)
	p, err := FromSet(set, nil)
	if err != nil {
		t.Fatal(err)
	}
	sid := func(ids []int32) []uint32 {
		var out []uint32
		for _, i := range ids {
			out = append(out, set.Rules[i].SID)
		}
		return out
	}
	var sc Scratch
	tests := []struct {
		buf  rules.Buffer
		data string
		want []uint32
	}{
		{rules.BufHTTPURI, "/index.html", []uint32{5, 6}},
		{rules.BufHTTPURI, "/evil?q", []uint32{1, 2, 4, 5, 6}},
		{rules.BufHTTPURI, "/EVIL", []uint32{2, 3, 5, 6}},
		{rules.BufHTTPURI, "/eViL", []uint32{2, 5, 6}},
		{rules.BufDNSQuery, "bad.example", []uint32{7}},     // "." + query ends with .bad.example
		{rules.BufDNSQuery, "www.bad.example", []uint32{7}}, // found in the raw query
		{rules.BufDNSQuery, "good.example", nil},
		{rules.BufDNSQuery, "MiXeD.Example", []uint32{8}},
		{rules.BufHTTPHeader, "anything", []uint32{9}},
		{rules.BufPayload, "\x00\x01", []uint32{11}},
		{rules.BufPayload, "\x01\x00", nil},
		{rules.BufTLSSNI, "no rules here", nil},
	}
	for _, tc := range tests {
		got := sid(p.Candidates(tc.buf, []byte(tc.data), &sc))
		if !slices.Equal(got, tc.want) {
			t.Errorf("Candidates(%s, %q) = sids %v, want %v", tc.buf, tc.data, got, tc.want)
		}
	}
	if got := sid(p.Unconditional(rules.AppNone)); !slices.Equal(got, []uint32{10}) {
		t.Errorf("Unconditional(none) = %v, want [10]", got)
	}
	if got := sid(p.Unconditional(rules.AppDNS)); !slices.Equal(got, []uint32{12}) {
		t.Errorf("Unconditional(dns) = %v, want [12]", got)
	}
	for _, st := range p.Stats() {
		if st.Buffer == rules.BufHTTPURI {
			// "/evil" is shared by sids 1 and 4; "/evil"/i and "/EVIL" are
			// separate patterns.
			if st.Patterns != 3 || st.Indexed != 4 || st.Always[AlwaysNoContent] != 1 || st.Always[AlwaysNegated] != 1 {
				t.Errorf("http.uri stats: %+v", st)
			}
		}
	}
}

func TestCandidatesNoAllocs(t *testing.T) {
	set := loadRules(t, unitRules)
	p, err := FromSet(set, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sc Scratch
	data := bytes.Repeat([]byte("/evil?/EVIL "), 100)
	p.Candidates(rules.BufHTTPURI, data, &sc)
	if a := testing.AllocsPerRun(100, func() { p.Candidates(rules.BufHTTPURI, data, &sc) }); a != 0 {
		t.Fatalf("Candidates: %.1f allocations per call, want 0", a)
	}
}

func TestPrefilterLongPattern(t *testing.T) {
	long := strings.Repeat("A", 300)
	set := loadRules(t, `alert tcp any any -> any any (content:"`+long+`"; sid:1;)`)
	p, err := FromSet(set, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sc Scratch
	if got := p.Candidates(rules.BufPayload, []byte(long), &sc); len(got) != 1 {
		t.Fatalf("300-byte pattern not selected: %v", got)
	}
	if st := p.Stats()[0]; st.Truncated != 1 {
		t.Fatalf("Truncated = %d, want 1", st.Truncated)
	}
}

func TestPrefilterBudget(t *testing.T) {
	set := loadRules(t, unitRules)
	if _, err := FromSet(set, &Options{MaxPatterns: 3}); err == nil {
		t.Fatal("12 rules accepted with MaxPatterns 3")
	}
	if _, err := FromSet(set, &Options{MaxBytes: 200}); err == nil {
		t.Fatal("built within 200 bytes")
	}
}

// TestStreamGroup: the payload and the body buffers share one automaton;
// one scan of the stream selects each buffer's rules as separate scans
// would, and StreamHits stands for a body's scan only while its runs are
// contiguous.
func TestStreamGroup(t *testing.T) {
	set := loadRules(t, `
alert tcp any any -> any any (content:"shared"; sid:1;)
alert http any any -> any any (file.data; content:"shared"; sid:2;)
alert http any any -> any any (http.response_body; content:"bodyonly"; sid:3;)
alert http any any -> any any (http.request_body; content:"reqonly"; sid:4;)
alert http any any -> any any (file.data; pcre:"/x+/"; sid:5;)
alert tcp any any -> any any (content:"payloadonly"; sid:6;)
`)
	p, err := FromSet(set, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sc Scratch
	data := []byte("..shared..bodyonly..reqonly..payloadonly")
	for _, b := range StreamGroup {
		want := slices.Clone(p.Candidates(b, data, &sc))
		ids := slices.Clone(p.StreamPatterns(data, &sc))
		// Repeated ids (from several scans) select each rule once.
		if got := p.SelectStream(b, append(ids, ids...), &sc); !slices.Equal(got, want) {
			t.Errorf("%s: SelectStream %v, Candidates %v", b, got, want)
		}
	}
	if got := p.SelectStream(rules.BufHTTPURI, []int32{0}, &sc); len(got) != 0 {
		t.Errorf("SelectStream of a buffer outside the group: %v", got)
	}

	var h StreamHits
	h.Add(p, 100, 150, p.StreamPatterns([]byte("..bodyonly"), &sc))
	h.Add(p, 150, 200, p.StreamPatterns([]byte("..payloadonly..shared"), &sc))
	if !h.Covers(120, 200) || h.Covers(90, 150) || h.Covers(120, 201) {
		t.Errorf("Covers wrong for runs [100,200)")
	}
	sids := func(ids []int32) (out []uint32) {
		for _, i := range ids {
			out = append(out, set.Rules[i].SID)
		}
		return out
	}
	// The payload-only pattern is not kept; body rules are selected.
	if got := sids(p.SelectStream(rules.BufFileData, h.Hits(), &sc)); !slices.Equal(got, []uint32{2, 5}) {
		t.Errorf("file.data from hits: sids %v, want [2 5]", got)
	}
	if got := sids(p.SelectStream(rules.BufHTTPResponseBody, h.Hits(), &sc)); !slices.Equal(got, []uint32{3}) {
		t.Errorf("http.response_body from hits: sids %v, want [3]", got)
	}
	h.Add(p, 180, 200, nil) // the same bytes again
	if !h.Covers(100, 200) {
		t.Error("an overlapping run broke the hits")
	}
	h.Add(p, 210, 220, nil) // a hole: no longer stands for a scan
	if h.Covers(120, 200) {
		t.Error("Covers after a hole")
	}
}
