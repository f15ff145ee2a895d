package rules

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func mustParse(t *testing.T, opts string) *Rule {
	t.Helper()
	r, err := Parse("alert tcp any any -> any any ("+opts+")", nil)
	if err != nil {
		t.Fatalf("Parse(%q): %v", opts, err)
	}
	return r
}

func parseErr(text string) *Error {
	_, err := Parse(text, nil)
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

func TestHeader(t *testing.T) {
	for _, tc := range []struct {
		text  string
		check func(*Rule) bool
	}{
		{"alert tcp any any -> any any (sid:1;)", func(r *Rule) bool {
			return r.Action == ActionAlert && r.Proto == ProtoTCP && r.Src.IsAny() && r.DstPorts.IsAny()
		}},
		{"drop udp any any -> any 53 (sid:1;)", func(r *Rule) bool {
			return r.Action == ActionDrop && r.Proto == ProtoUDP && r.DstPorts.Contains(53) && !r.DstPorts.Contains(54)
		}},
		{"reject icmp any any -> any any (sid:1;)", func(r *Rule) bool { return r.Action == ActionReject && r.Proto == ProtoICMP }},
		{"pass ip any any <> 2.2.2.2 any (sid:1;)", func(r *Rule) bool { return r.Action == ActionPass && r.Bidirectional }},
		{"alert http any any -> any any (sid:1;)", func(r *Rule) bool { return r.AppProto == AppHTTP }},
		{"alert dns any any -> any any (sid:1;)", func(r *Rule) bool { return r.AppProto == AppDNS }},
		{"alert tls any any -> any any (sid:1;)", func(r *Rule) bool { return r.AppProto == AppTLS }},
		{"alert tcp-pkt any any -> any any (sid:1;)", func(r *Rule) bool { return r.Proto == ProtoTCPPkt }},
		{"alert tcp $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS (sid:1;)", func(r *Rule) bool {
			return r.Src.Contains(netip.MustParseAddr("10.1.2.3")) && !r.Dst.Contains(netip.MustParseAddr("10.1.2.3")) &&
				r.Dst.Contains(netip.MustParseAddr("8.8.8.8")) && r.DstPorts.Contains(80) && !r.DstPorts.Contains(81)
		}},
		{"alert tcp [10.0.0.0/8, !10.1.0.0/16] any -> any any (sid:1;)", func(r *Rule) bool {
			return r.Src.Contains(netip.MustParseAddr("10.2.0.1")) && !r.Src.Contains(netip.MustParseAddr("10.1.2.3")) && !r.Src.Contains(netip.MustParseAddr("11.0.0.1"))
		}},
		{"alert tcp [!1.2.3.4] any -> any any (sid:1;)", func(r *Rule) bool {
			return !r.Src.Contains(netip.MustParseAddr("1.2.3.4")) && r.Src.Contains(netip.MustParseAddr("1.2.3.5")) && r.Src.Contains(netip.MustParseAddr("::1"))
		}},
		{"alert tcp [2001:db8::/32,::1] any -> any any (sid:1;)", func(r *Rule) bool {
			return r.Src.Contains(netip.MustParseAddr("2001:db8::5")) && r.Src.Contains(netip.MustParseAddr("::1")) && !r.Src.Contains(netip.MustParseAddr("2001:db9::"))
		}},
		{"alert tcp 10.0.0.0/255.0.0.0 any -> any any (sid:1;)", func(r *Rule) bool { return r.Src.Contains(netip.MustParseAddr("10.9.9.9")) }},
		{"alert tcp any [1024:] -> any :1023 (sid:1;)", func(r *Rule) bool {
			return r.SrcPorts.Contains(1024) && !r.SrcPorts.Contains(1023) && r.DstPorts.Contains(0) && !r.DstPorts.Contains(1024)
		}},
		{"alert tcp any [1:100,!50] -> any !80 (sid:1;)", func(r *Rule) bool {
			return r.SrcPorts.Contains(49) && !r.SrcPorts.Contains(50) && !r.DstPorts.Contains(80) && r.DstPorts.Contains(81)
		}},
		{"alert udp $EXTERNAL_NET :1024 <> $HOME_NET 0 (sid:1;)", func(r *Rule) bool { return r.DstPorts.Contains(0) && r.SrcPorts.Contains(1024) }},
	} {
		r, err := Parse(tc.text, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.text, err)
			continue
		}
		if !tc.check(r) {
			t.Errorf("%s: unexpected %+v", tc.text, r.Header)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		text        string
		key         string
		unsupported bool
	}{
		{"alert smtp any any -> any any (sid:1;)", "protocol smtp", true},
		{"alert foo any any -> any any (sid:1;)", "protocol: unknown protocol", false},
		{"hello tcp any any -> any any (sid:1;)", "action: unknown action", false},
		{"alert tcp any any => any any (sid:1;)", "direction: bad direction", false},
		{"alert tcp any any -> any (sid:1;)", "header: malformed header", false},
		{"alert tcp $NOPE any -> any any (sid:1;)", "source: bad address", false},
		{"alert tcp any 70000 -> any any (sid:1;)", "source port: bad port", false},
		{"alert tcp [1.2.3.4 any -> any any (sid:1;)", "header: unbalanced brackets", false},
		{"alert tcp any any -> any any sid:1;", "malformed rule", false},
		{"alert tcp any any -> any any (msg:\"x\")", "option not terminated by ';'", false},
		{"alert tcp any any -> any any (msg:\"x\";)", "sid: missing", false},
		{"alert tcp any any -> any any (xbits:set,a,track ip_src; sid:1;)", "keyword xbits", true},
		{"alert tcp any any -> any any (content:\"a\\x\"; sid:1;)", "content: invalid escape", false},
		{"alert tcp any any -> any any (content:\"|4|\"; sid:1;)", "content: odd number of hex digits", false},
		{"alert tcp any any -> any any (content:\"|41\"; sid:1;)", "content: unterminated hex run", false},
		{"alert tcp any any -> any any (content:\"|4G|\"; sid:1;)", "content: bad hex digit", false},
		{"alert tcp any any -> any any (content:abc; sid:1;)", "content: value must be a quoted string", false},
		{"alert tcp any any -> any any (nocase; sid:1;)", "nocase: needs a preceding content", false},
		{"alert tcp any any -> any any (content:\"abcd\"; depth:2; sid:1;)", "depth: smaller than the pattern", false},
		{"alert tcp any any -> any any (content:\"a\"; content:\"abcd\"; within:2; sid:1;)", "within: smaller than the pattern", false},
		{"alert tcp any any -> any any (content:\"a\"; offset:1; distance:2; sid:1;)", "distance: mixes absolute and relative modifiers", false},
		{"alert tcp any any -> any any (content:\"a\"; depth:4; depth:5; sid:1;)", "depth: repeated", false},
		{"alert tcp any any -> any any (content:\"a\"; startswith; offset:3; sid:1;)", "offset: conflicts with startswith", false},
		{"alert tcp any any -> any any (content:\"a\"; offset:3; startswith; sid:1;)", "startswith: conflicts with offset, depth, distance or within", false},
		{"alert tcp any any -> any any (content:\"a\"; fast_pattern; content:\"b\"; fast_pattern; sid:1;)", "fast_pattern: set twice", false},
		{"alert tcp any any -> any any (content:\"abc\"; fast_pattern:2,5; sid:1;)", "fast_pattern: chop beyond the pattern", false},
		{"alert tcp any any -> any any (content:\"a\"; content:!\"b\"; distance:0; fast_pattern; sid:1;)", "fast_pattern: negated relative content", false},
		{"alert tcp any any -> any any (content:\"a\"; distance:x; sid:1;)", "distance: byte_extract variables", true},
		{"alert tcp any any -> any any (pcre:\"/(a)\\1/\"; sid:1;)", "pcre: backreference", true},
		{"alert tcp any any -> any any (pcre:\"/a(?=b)/\"; sid:1;)", "pcre: lookaround", true},
		{"alert tcp any any -> any any (pcre:\"/(?<!b)a/\"; sid:1;)", "pcre: lookaround", true},
		{"alert tcp any any -> any any (pcre:\"/(?>a+)b/\"; sid:1;)", "pcre: atomic group", true},
		{"alert tcp any any -> any any (pcre:\"/a++b/\"; sid:1;)", "pcre: possessive quantifier", true},
		{"alert tcp any any -> any any (pcre:\"/\\xff/\"; sid:1;)", "pcre: byte above 0x7f", true},
		{"alert tcp any any -> any any (pcre:\"/a{2000}/\"; sid:1;)", "pcre: beyond RE2 size limits", true},
		{"alert tcp any any -> any any (pcre:\"/(a{1,500}){5}/\"; sid:1;)", "pcre: beyond RE2 size limits", true},
		{"alert tcp any any -> any any (pcre:\"/" + strings.Repeat(`\\w{1000}`, 11) + "/\"; sid:1;)", "pcre: beyond RE2 size limits", true},
		{"alert tcp any any -> any any (pcre:\"/a\\Kb/\"; sid:1;)", "pcre: match start reset", true},
		{"alert tcp any any -> any any (pcre:\"/a/UH\"; sid:1;)", "pcre: two buffer flags", false},
		{"alert tcp any any -> any any (pcre:\"/a/q\"; sid:1;)", "pcre: unknown flag", false},
		{"alert tcp any any -> any any (pcre:\"a\"; sid:1;)", "pcre: want /regex/flags", false},
		{"alert tcp any any -> any any (pcre:\"/[a/\"; sid:1;)", "pcre: unterminated character class", false},
		{"alert tcp any any -> any any (http.uri; pcre:\"/a/H\"; sid:1;)", "pcre: buffer flag conflicts with sticky buffer", false},
		{"alert tcp any any -> any any (flow:to_server,to_client; sid:1;)", "flow: conflicting options", false},
		{"alert tcp any any -> any any (flow:established,stateless; sid:1;)", "flow: conflicting options", false},
		{"alert tcp any any -> any any (flow:sideways; sid:1;)", "flow: unknown flow option", false},
		{"alert tcp any any -> any any (flowbits:set; sid:1;)", "flowbits: missing name", false},
		{"alert tcp any any -> any any (flowbits:flip,a; sid:1;)", "flowbits: unknown command", false},
		{"alert tcp any any -> any any (flowbits:set,a|b; sid:1;)", "flowbits: OR/AND lists only for isset and isnotset", false},
		{"alert tcp any any -> any any (threshold:type limit, track by_src, count 1; sid:1;)", "threshold: incomplete", false},
		{"alert tcp any any -> any any (threshold:type often, track by_src, count 1, seconds 1; sid:1;)", "threshold: bad type", false},
		{"alert tcp any any -> any any (detection_filter:track by_src, count 1, seconds 1; threshold:type limit, track by_src, count 1, seconds 1; sid:1;)", "threshold: repeated", false},
		{"alert tcp any any -> any any (detection_filter:type limit, track by_src, count 1, seconds 1; sid:1;)", "detection_filter: type not allowed", false},
		{"alert tcp any any -> any any (dsize:10<>5; sid:1;)", "dsize: empty range", false},
		{"alert tcp any any -> any any (dsize:70000; sid:1;)", "dsize: bad number", false},
		{"alert tcp any any -> any any (itype:300; sid:1;)", "itype: bad number", false},
		{"alert tcp any any -> any any (flags:SX; sid:1;)", "flags: unknown flag", false},
		{"alert tcp any any -> any any (flags:+*S; sid:1;)", "flags: two modifiers", false},
		{"alert tcp any any -> any any (bsize:10; sid:1;)", "bsize: needs a sticky buffer", false},
		{"alert tcp any any -> any any (urilen:5,odd; sid:1;)", "urilen: bad mode", false},
		{"alert tcp any any -> any any (byte_test:9,=,1,0; sid:1;)", "byte_test: bad byte count", false},
		{"alert tcp any any -> any any (byte_test:2,~,1,0; sid:1;)", "byte_test: bad operator", false},
		{"alert tcp any any -> any any (byte_test:2,=,1,0,hex; sid:1;)", "byte_test: base without string", false},
		{"alert tcp any any -> any any (byte_test:2,=,1,0,dce; sid:1;)", "byte_test: dce option", true},
		{"alert tcp any any -> any any (byte_test:2,=,var,0; sid:1;)", "byte_test: byte_extract variables", true},
		{"alert tcp any any -> any any (byte_jump:2,0,from_beginning,from_end; sid:1;)", "byte_jump: conflicting flags", false},
		{"alert tcp any any -> any any (byte_jump:2; sid:1;)", "byte_jump: too few fields", false},
		{"alert tcp any any -> any any (isdataat:x1; sid:1;)", "isdataat: byte_extract variables", true},
		{"alert tcp any any -> any any (isdataat:1,sideways; sid:1;)", "isdataat: bad flag", false},
		{"alert tcp any any -> any any (http.uri; sid:1;)", "http.uri: sticky buffer without a match", false},
		{"alert tcp any any -> any any (dotprefix; content:\"a\"; sid:1;)", "dotprefix: transform needs a sticky buffer", false},
		{"alert dns any any -> any any (dns.query; content:\"a\"; dotprefix; sid:1;)", "dotprefix: transform after a match", false},
		{"alert dns any any -> any any (http.uri; content:\"a\"; sid:1;)", "http.uri: protocol conflict", false},
		{"alert udp any any -> any any (http.uri; content:\"a\"; sid:1;)", "http.uri: protocol conflict", false},
		{"alert tcp any any -> any any (http.uri; content:\"a\"; dns.query; content:\"b\"; sid:1;)", "dns.query: protocol conflict", false},
		{"alert http any any -> any any (http.uri; content:\"a\"; http.stat_code; content:\"200\"; sid:1;)", "http.stat_code: direction conflict", false},
		{"alert http any any -> any any (flow:to_client; http.uri; content:\"a\"; sid:1;)", "flow: direction conflict", false},
		{"alert http any any -> any any (content:\"a\"; http_uri; http_header; sid:1;)", "http_header: modifier conflicts with buffer", false},
		{"alert http any any -> any any (http.uri; content:\"a\"; rawbytes; sid:1;)", "rawbytes: only for the payload", false},
		{"alert tcp any any -> any any (priority:0; sid:1;)", "priority: bad priority", false},
		{"alert tcp any any -> any any (target:both; sid:1;)", "target: bad target", false},
		{"alert tcp any any -> any any (sid:0;)", "sid: bad sid", false},
		{"alert tcp any any -> any any (content:\"\"; sid:1;)", "content: empty pattern", false},
		{"alert tcp any any -> any any (reference:cve; sid:1;)", "reference: bad reference", false},
	} {
		e := parseErr(tc.text)
		if e == nil {
			t.Errorf("%s: parsed, want error %q", tc.text, tc.key)
			continue
		}
		if e.Key() != tc.key || e.Unsupported != tc.unsupported {
			t.Errorf("%s:\n got %q (unsupported %v): %v\nwant %q (unsupported %v)", tc.text, e.Key(), e.Unsupported, e, tc.key, tc.unsupported)
		}
	}
}

func TestMeta(t *testing.T) {
	classes, err := ParseClassifications([]byte("# c\nconfig classification: trojan-activity,A Network Trojan was detected,1\nconfig classification: misc-activity,Misc activity,3\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(`alert tcp any any -> any any (msg:"a \"quoted\"\; msg"; sid:7; rev:3; gid:2; classtype:trojan-activity; reference:url,example.com/a; reference:cve,2020-1; metadata:created_at 2020_01_01, deployment Perimeter; target:dest_ip;)`, &Options{Classes: classes})
	if err != nil {
		t.Fatal(err)
	}
	if r.Msg != `a "quoted"; msg` || r.SID != 7 || r.Rev != 3 || r.GID != 2 || r.Priority != 1 || r.Target != TargetDst {
		t.Errorf("got %+v", r)
	}
	if len(r.References) != 2 || r.References[1] != (Reference{"cve", "2020-1"}) {
		t.Errorf("references %+v", r.References)
	}
	if len(r.Metadata) != 2 || r.Metadata[1] != (MetaPair{"deployment", "Perimeter"}) {
		t.Errorf("metadata %+v", r.Metadata)
	}
	r, _ = Parse(`alert tcp any any -> any any (classtype:trojan-activity; priority:4; sid:1;)`, &Options{Classes: classes})
	if r.Priority != 4 {
		t.Errorf("explicit priority %d, want 4", r.Priority)
	}
	if r := mustParse(t, "sid:1;"); r.Priority != 3 || r.GID != 1 {
		t.Errorf("default priority %d gid %d", r.Priority, r.GID)
	}
	if _, err := Parse(`alert tcp any any -> any any (classtype:nope; sid:1;)`, &Options{Classes: classes}); err == nil {
		t.Error("unknown classtype accepted")
	}
	for _, bad := range []string{"config classification: a,b\n", "config classification: a,b,x\n", "classification: a,b,1\n"} {
		if _, err := ParseClassifications([]byte(bad)); err == nil {
			t.Errorf("ParseClassifications(%q) accepted", bad)
		}
	}
}

func TestContent(t *testing.T) {
	r := mustParse(t, `content:"GET |2f 41|B\;C\\"; nocase; offset:2; depth:20; content:!"x"; distance:-3; within:10; content:"end"; endswith; content:"st"; startswith; fast_pattern; sid:1;`)
	ms := r.Buffers[0].Matches
	if len(ms) != 4 {
		t.Fatalf("%d matches", len(ms))
	}
	c := ms[0].Content
	if string(c.Pattern) != `GET /AB;C\` || !c.Nocase || !c.HasOffset || c.Offset != 2 || c.Depth != 20 || c.Relative() {
		t.Errorf("content 0: %+v", c)
	}
	c = ms[1].Content
	if !c.Negated || c.Distance != -3 || c.Within != 10 || !c.Relative() {
		t.Errorf("content 1: %+v", c)
	}
	if !ms[2].Content.EndsWith || !ms[3].Content.StartsWith {
		t.Errorf("startswith/endswith lost")
	}
	if r.Fast == nil || string(r.Fast.Bytes) != "st" || !r.Fast.Explicit {
		t.Errorf("fast pattern %+v", r.Fast)
	}
	r = mustParse(t, `content:"abcdef"; fast_pattern:1,3; sid:1;`)
	if string(r.Fast.Bytes) != "bcd" {
		t.Errorf("chop %q", r.Fast.Bytes)
	}
	r = mustParse(t, `content:"abcdef"; fast_pattern:only; sid:1;`)
	if !r.Buffers[0].Matches[0].Content.FastPatternOnly {
		t.Error("fast_pattern:only lost")
	}
	r = mustParse(t, `content:"a"; rawbytes; uricontent:"/x"; sid:1;`)
	if !r.Buffers[0].Matches[0].Content.Rawbytes || r.Buffers[1].Buffer != BufHTTPURI || r.AppProto != AppHTTP {
		t.Errorf("rawbytes/uricontent: %+v", r.Buffers)
	}
}

func TestBuffers(t *testing.T) {
	r := mustParse(t, `content:"POST"; http_method; content:"/a.php"; http_uri; nocase; content:"x"; content:"Mozilla"; http_user_agent; sid:1;`)
	want := []Buffer{BufPayload, BufHTTPMethod, BufHTTPURI, BufHTTPUserAgent}
	if len(r.Buffers) != len(want) {
		t.Fatalf("buffers %v", r.Buffers)
	}
	for i, b := range want {
		if r.Buffers[i].Buffer != b {
			t.Errorf("buffer %d is %s, want %s", i, r.Buffers[i].Buffer, b)
		}
	}
	if len(r.Buffers[0].Matches) != 1 || string(r.Buffers[0].Matches[0].Content.Pattern) != "x" {
		t.Errorf("payload kept %+v", r.Buffers[0].Matches)
	}
	if r.AppProto != AppHTTP {
		t.Errorf("app %s", r.AppProto)
	}
	// Default fast pattern: http buffers (priority 2) before the payload
	// (3) and http.method (4); longest among equals.
	if r.Fast.Buffer != BufHTTPUserAgent {
		t.Errorf("fast pattern in %s (%q)", r.Fast.Buffer, r.Fast.Bytes)
	}
	for _, kw := range []string{"http.uri", "http_uri", "http.method", "http.host", "http.header", "http.user_agent", "http.cookie",
		"http.request_body", "http_client_body", "http.stat_code", "http.response_body", "http_server_body", "file.data", "file_data",
		"dns.query", "dns_query", "tls.sni", "tls_sni", "http.header_names", "http.content_type", "http.request_line",
		"http.referer", "http.uri.raw", "tls.certs", "tls.cert_subject", "ja3.hash"} {
		var text string
		if _, ok := modifierNames[kw]; ok {
			text = `content:"a"; ` + kw + `; sid:1;`
		} else {
			text = kw + `; content:"a"; sid:1;`
		}
		r := mustParse(t, text)
		var b Buffer
		if x, ok := modifierNames[kw]; ok {
			b = x
		} else {
			b = stickyNames[kw]
		}
		if len(r.Buffers) == 0 || r.Buffers[len(r.Buffers)-1].Buffer != b || r.Fast.Buffer != b {
			t.Errorf("%s: buffers %+v", kw, r.Buffers)
		}
	}
	r = mustParse(t, `dns.query; dotprefix; content:".example.com"; endswith; bsize:<=40; sid:1;`)
	bm := r.Buffers[0]
	if len(bm.Transforms) != 1 || bm.Transforms[0] != TransformDotPrefix || bm.Bsize.Op != CmpLe || bm.Bsize.A != 40 {
		t.Errorf("dotprefix/bsize %+v", bm)
	}
	r = mustParse(t, `urilen:>70,raw; http.method; content:"GET"; sid:1;`)
	if r.URILen == nil || !r.URILenRaw || r.URILen.Op != CmpGt {
		t.Errorf("urilen %+v", r.URILen)
	}
	// A pcre buffer flag files the pcre under that buffer.
	r = mustParse(t, `content:"a"; pcre:"/x/Ui"; sid:1;`)
	if r.Buffers[1].Buffer != BufHTTPURI || r.Buffers[1].Matches[0].PCRE == nil {
		t.Errorf("pcre U: %+v", r.Buffers)
	}
	// Negated contents are ignored for the fast pattern when positive
	// ones exist, and used when they are all there is.
	r = mustParse(t, `content:!"longer-negated"; content:"pos"; sid:1;`)
	if string(r.Fast.Bytes) != "pos" {
		t.Errorf("fast %q", r.Fast.Bytes)
	}
	r = mustParse(t, `content:!"neg"; sid:1;`)
	if !r.Fast.Negated {
		t.Errorf("negated-only fast %+v", r.Fast)
	}
	// Equal length and priority: the stronger (more diverse) pattern wins.
	r = mustParse(t, `content:"aaaa"; content:"abcd"; sid:1;`)
	if string(r.Fast.Bytes) != "abcd" {
		t.Errorf("strength tie-break chose %q", r.Fast.Bytes)
	}
	if mustParse(t, `sid:1;`).Fast != nil {
		t.Error("fast pattern without content")
	}
}

func TestPCRE(t *testing.T) {
	for _, tc := range []struct {
		opt, expr string
		match     []string
		nomatch   []string
	}{
		{`/abc/i`, `(?i)abc`, []string{"xABCx"}, []string{"ab"}},
		{`/^a.b$/s`, `(?s)^a.b(?:\n?\z)`, []string{"a\nb", "a\nb\n"}, []string{"a\nb\n\n"}},
		{`/^a$/m`, `(?m)^a$`, []string{"x\na\ny"}, []string{"ab"}},
		{`/a$/E`, `a\z`, []string{"a"}, []string{"a\n"}},
		{`/b/A`, `\A(?:b)`, []string{"bc"}, []string{"ab"}},
		{`/a .* # comment
b/x`, `a.*b`, []string{"axxb"}, nil},
		{`/\x41\e\h\Z/`, `\x41\x1b[\t ](?:\n?\z)`, []string{"A\x1b \n"}, nil},
		{`/[]a]+/`, `[\]a]+`, []string{"]a"}, []string{"b"}},
		{`/a{2,}?b{,3}/G`, `(?U)a{2,}?b\{,3\}`, []string{"aab{,3}"}, nil},
		{`/(?P<n>x)(?i:Y)(?#c)\//`, `(?P<n>x)(?i:Y)\/`, []string{"xy/"}, nil},
		{`/[\x00-\x7f]\0\cA/`, `[\x00-\x7f]\x00\x01`, []string{"a\x00\x01"}, nil},
	} {
		r := mustParse(t, `pcre:"`+tc.opt+`"; sid:1;`)
		p := r.Buffers[0].Matches[0].PCRE
		if p.Expr != tc.expr {
			t.Errorf("%s: translated to %q, want %q", tc.opt, p.Expr, tc.expr)
		}
		for _, s := range tc.match {
			if !p.Re.MatchString(s) {
				t.Errorf("%s: no match on %q", tc.opt, s)
			}
		}
		for _, s := range tc.nomatch {
			if p.Re.MatchString(s) {
				t.Errorf("%s: matched %q", tc.opt, s)
			}
		}
	}
	r := mustParse(t, `content:"a"; pcre:!"/b/RB"; sid:1;`)
	p := r.Buffers[0].Matches[1].PCRE
	if !p.Negated || !p.Relative || !p.Rawbytes {
		t.Errorf("pcre flags %+v", p)
	}
	// An unescaped quote inside a pcre is fine (Suricata does not
	// look at quotes when splitting options).
	mustParse(t, `pcre:"/^["']?post/Ri"; sid:1;`)
}

func TestPacketKeywords(t *testing.T) {
	r := mustParse(t, `dsize:>10; itype:8; icode:0<>5; flags:S,12; sid:1;`)
	if r.Dsize.Op != CmpGt || r.Dsize.A != 10 || r.IType.A != 8 || r.ICode.Op != CmpRange || r.ICode.B != 5 {
		t.Errorf("numbers %+v %+v %+v", r.Dsize, r.IType, r.ICode)
	}
	if r.Flags.Mod != FlagsExact || r.Flags.Flags != TCPSyn || r.Flags.Ignore != TCPCwr|TCPEce {
		t.Errorf("flags %+v", r.Flags)
	}
	if !r.Flags.Match(TCPSyn|TCPEce) || r.Flags.Match(TCPSyn|TCPAck) {
		t.Error("flags S,12 matching")
	}
	for _, tc := range []struct {
		v    string
		in   []uint64
		out  []uint64
		kind CmpOp
	}{
		{"10", []uint64{10}, []uint64{9, 11}, CmpEq},
		{"!9", []uint64{8, 10}, []uint64{9}, CmpNe},
		{"<10", []uint64{9}, []uint64{10}, CmpLt},
		{"<=10", []uint64{10}, []uint64{11}, CmpLe},
		{">=10", []uint64{10}, []uint64{9}, CmpGe},
		{"8<>20", []uint64{9, 19}, []uint64{8, 20}, CmpRange},
		{"8-20", []uint64{9}, []uint64{20}, CmpRange},
	} {
		m, err := parseIntMatch("dsize", tc.v, 65535)
		if err != nil || m.Op != tc.kind {
			t.Errorf("%s: %v %+v", tc.v, err, m)
			continue
		}
		for _, v := range tc.in {
			if !m.Match(v) {
				t.Errorf("%s should match %d", tc.v, v)
			}
		}
		for _, v := range tc.out {
			if m.Match(v) {
				t.Errorf("%s should not match %d", tc.v, v)
			}
		}
	}
	for _, tc := range []struct {
		v       string
		mod     FlagsMod
		yes, no uint8
	}{
		{"SA", FlagsExact, TCPSyn | TCPAck, TCPSyn},
		{"A+", FlagsAll, TCPAck | TCPPsh, TCPSyn},
		{"*AP", FlagsAny, TCPPsh, TCPSyn},
		{"!R", FlagsNot, TCPSyn, TCPRst},
		{"0", FlagsExact, 0, TCPAck},
	} {
		r := mustParse(t, "flags:"+tc.v+"; sid:1;")
		if r.Flags.Mod != tc.mod || !r.Flags.Match(tc.yes) || r.Flags.Match(tc.no) {
			t.Errorf("flags:%s %+v", tc.v, r.Flags)
		}
	}
}

func TestFlowAndState(t *testing.T) {
	r := mustParse(t, `flow:established,to_server,only_stream; flowbits:set,a; flowbits:isset,b|c; flowbits:isnotset,d&e; flowbits:toggle,f; flowbits:unset,g; flowbits:noalert; sid:1;`)
	if !r.Flow.Established || !r.Flow.ToServer || !r.Flow.OnlyStream || !r.NoAlert {
		t.Errorf("flow %+v", r.Flow)
	}
	if len(r.Flowbits) != 5 || r.Flowbits[1].Cmd != FlowbitIsSet || len(r.Flowbits[1].Names) != 2 || r.Flowbits[1].And ||
		!r.Flowbits[2].And || r.Flowbits[3].Cmd != FlowbitToggle || r.Flowbits[4].Cmd != FlowbitUnset {
		t.Errorf("flowbits %+v", r.Flowbits)
	}
	r = mustParse(t, `flow:from_server,not_established,no_stream; threshold: type both, track by_dst, count 5, seconds 60; sid:1;`)
	if !r.Flow.ToClient || !r.Flow.NotEstablished || !r.Flow.NoStream {
		t.Errorf("flow %+v", r.Flow)
	}
	if *r.Threshold != (Threshold{Type: ThresholdBoth, Track: TrackByDst, Count: 5, Seconds: 60}) {
		t.Errorf("threshold %+v", r.Threshold)
	}
	r = mustParse(t, `flow:stateless; detection_filter: track by_src, count 3, seconds 60, unique_on src_port; sid:1;`)
	if *r.DetectionFilter != (Threshold{Type: ThresholdDetectionFilter, Track: TrackBySrc, Count: 3, Seconds: 60, UniqueOn: "src_port"}) {
		t.Errorf("detection_filter %+v", r.DetectionFilter)
	}
}

func TestByteKeywords(t *testing.T) {
	r := mustParse(t, `content:"a"; byte_test:4,!&,0x10,-2,relative,little,bitmask 0xff00; byte_jump:2,1,relative,little,align,multiplier 2,post_offset -1,from_beginning; byte_test:0,>=,100,0,string,dec; isdataat:!10,relative; sid:1;`)
	ms := r.Buffers[0].Matches
	bt := ms[1].ByteTest
	if bt.NBytes != 4 || bt.Op != ByteAnd || !bt.Negated || bt.Value != 0x10 || bt.Offset != -2 || !bt.Relative || bt.Endian != EndianLittle || bt.Bitmask != 0xff00 {
		t.Errorf("byte_test %+v", bt)
	}
	bj := ms[2].ByteJump
	if bj.NBytes != 2 || bj.Offset != 1 || !bj.Relative || !bj.Align || bj.Multiplier != 2 || bj.PostOffset != -1 || !bj.FromBeginning {
		t.Errorf("byte_jump %+v", bj)
	}
	if bt := ms[3].ByteTest; bt.NBytes != 0 || bt.Base != NumDec || bt.Op != ByteGE {
		t.Errorf("string byte_test %+v", bt)
	}
	if d := ms[4].IsDataAt; !d.Negated || d.Offset != 10 || !d.Relative {
		t.Errorf("isdataat %+v", d)
	}
}

func TestDisabled(t *testing.T) {
	_, err := Parse(`alert tls any any -> any any (tls.certs; content:"a"; sid:1;)`, &Options{Disabled: []string{"tls.certs"}})
	var e *Error
	if !errors.As(err, &e) || !e.Unsupported || e.Key() != "keyword tls.certs" {
		t.Errorf("disabled keyword: %v", err)
	}
	_, err = Parse(`alert tls any any -> any any (sid:1;)`, &Options{Disabled: []string{"tls"}})
	if !errors.As(err, &e) || e.Key() != "protocol tls" {
		t.Errorf("disabled protocol: %v", err)
	}
}

func TestLoad(t *testing.T) {
	text := strings.Join([]string{
		"# a comment",
		"",
		"alert tcp any any -> any any (msg:\"one\"; sid:1; rev:1;)",
		"#alert tcp any any -> any any (sid:99;)",
		"alert tcp any any -> any any ( \\",
		"  msg:\"two\"; \\",
		"  sid:2;)",
		"alert smtp any any -> any any (sid:3;)",
		"alert tcp any any -> any any (content:\"a\"; depth:0; sid:4;)",
		"alert tcp any any -> any any (msg:\"one again\"; sid:1; rev:2;)",
		"alert tcp any any -> any any (msg:\"" + strings.Repeat("x", 300) + "\"; sid:5;)",
		"alert tcp any any -> any any (xbits:set,x,track ip_src; sid:6;)",
	}, "\r\n")
	set, st := Load(strings.NewReader(text), &Options{MaxLineBytes: 200})
	if st.Rules != 7 || st.Loaded != 2 || st.Duplicates != 1 || st.SkippedTotal() != 2 || st.ErrorTotal() != 2 {
		t.Fatalf("stats %+v", st)
	}
	if st.Skipped["protocol smtp"] != 1 || st.Skipped["keyword xbits"] != 1 || st.Errors["line too long"] != 1 || st.Errors["depth: smaller than the pattern"] != 1 {
		t.Errorf("reasons %v %v", st.Skipped, st.Errors)
	}
	if r := set.Lookup(1, 1); r == nil || r.Msg != "one again" {
		t.Errorf("duplicate sid should keep the higher rev: %+v", r)
	}
	if r := set.Lookup(1, 2); r == nil || r.Msg != "two" {
		t.Errorf("continued rule: %+v", r)
	}
	if len(st.Warnings) != 5 || !strings.Contains(st.Warnings[0], "line 8") {
		t.Errorf("warnings %q", st.Warnings)
	}
	if got := Top(map[string]int{"b": 1, "a": 1, "c": 2}); got[0].Reason != "c" || got[1].Reason != "a" {
		t.Errorf("Top %v", got)
	}

	// Limits stop the load and say so.
	many := strings.Repeat("alert tcp any any -> any any (sid:1;)\n", 10)
	_, st = Load(strings.NewReader(many), &Options{MaxTotalBytes: 100})
	if st.Limit == "" || st.Loaded > 3 {
		t.Errorf("byte limit: %+v", st)
	}
	var b bytes.Buffer
	for i := 1; i <= 10; i++ {
		b.WriteString("alert tcp any any -> any any (sid:" + strings.Repeat("1", i) + ";)\n")
	}
	_, st = Load(&b, &Options{MaxRules: 4})
	if st.Limit == "" || st.Loaded != 4 {
		t.Errorf("rule limit: %+v", st)
	}
	// An endless line is consumed without being held in memory.
	long := strings.Repeat("a", 1<<20) + "\nalert tcp any any -> any any (sid:1;)\n"
	_, st = Load(strings.NewReader(long), nil)
	if st.Loaded != 1 || st.Errors["line too long"] != 1 {
		t.Errorf("long line: %+v", st)
	}
}

func TestAddrSetLimits(t *testing.T) {
	ten := func(v string) string { return "[" + strings.TrimSuffix(strings.Repeat(v+",", 10), ",") + "]" }
	vars := Vars{"A": ten("$B"), "B": ten("$C"), "C": ten("$D"), "D": ten("$E"), "E": "1.1.1.1", "L": "$L"}
	if _, err := ParseAddrSet("$A", vars); err == nil {
		t.Error("exponential variable expansion accepted")
	}
	if _, err := ParseAddrSet("$L", vars); err == nil {
		t.Error("self-referencing variable accepted")
	}
	if _, err := ParseAddrSet("[any,!any]", nil); err == nil {
		t.Error("empty set accepted")
	}
	if _, err := ParsePortSet(strings.Repeat("[", 20)+"1"+strings.Repeat("]", 20), nil); err == nil {
		t.Error("deep nesting accepted")
	}
	s, err := ParseAddrSet("[1.0.0.0-1.0.0.255,1.0.1.0/24,::ffff:2.0.0.1]", nil)
	if err != nil || len(s.Ranges) != 2 || !s.Contains(netip.MustParseAddr("2.0.0.1")) {
		t.Errorf("ranges merge: %v %v", s, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`alert http $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS (msg:"x"; flow:established,to_server; http.uri; content:"/a|20|b"; nocase; fast_pattern; pcre:"/a[bc]+$/Ui"; sid:1; rev:1;)`)
	f.Add(`alert tcp [10.0.0.0/8,![10.1.0.0/16,!10.1.1.1]] [1:10,!5] <> any any (content:!"a"; offset:1; depth:3; content:"b"; distance:0; within:4; byte_test:2,>,1,0,relative; byte_jump:2,0,relative,align; isdataat:!1,relative; sid:2;)`)
	f.Add(`alert dns any any -> any any (dns.query; dotprefix; content:".x.com"; endswith; bsize:<30; threshold:type limit,track by_src,count 1,seconds 60; flowbits:isset,a|b; sid:3;)`)
	f.Add(`alert icmp any any -> any any (itype:8<>10; icode:!0; dsize:>=2; flags:*SA,12; detection_filter:track by_dst,count 2,seconds 1; sid:4;)`)
	f.Add(`alert tcp any any -> any any (pcre:"/(?i)a{1,3}?(?:b|c)\x41[^\]]\Z/smxAEG"; sid:5;)`)
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 4096 {
			return
		}
		r, err := Parse(text, nil)
		if err == nil && r == nil {
			t.Fatal("nil rule without error")
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Key() == "" {
				t.Fatalf("error without a key: %v", err)
			}
			return
		}
		if r.SID == 0 {
			t.Fatal("rule without sid")
		}
		if r.Fast != nil && len(r.Fast.Bytes) == 0 {
			t.Fatal("empty fast pattern")
		}
		_, _ = Load(strings.NewReader(text+"\n"+text), nil)
	})
}
