package http1

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

func feedAll(c *Conn, d Dir, s string, chunk int) {
	b := []byte(s)
	for len(b) > 0 {
		n := min(chunk, len(b))
		c.Feed(d, b[:n])
		b = b[n:]
	}
}

const getReq = "GET /a/./b/../c%2Fd//e%41?x=%41+b#frag HTTP/1.1\r\n" +
	"Host: WWW.Example.COM:8080\r\n" +
	"User-Agent: Mozilla/5.0   \r\n" +
	"Cookie: a=1\r\n" +
	"Accept: */*\r\n" +
	"user-agent: curl/8\r\n" +
	"Referer: http://x/\r\n" +
	"\r\n"

func TestRequestBuffers(t *testing.T) {
	for _, chunk := range []int{1, 3, 7, 1 << 20} {
		c := NewConn(DefaultConfig())
		feedAll(c, ToServer, getReq, chunk)
		txs := c.Txs()
		if len(txs) != 1 {
			t.Fatalf("chunk %d: %d txs", chunk, len(txs))
		}
		tx := txs[0]
		check := func(name string, got []byte, want string) {
			t.Helper()
			if string(got) != want {
				t.Errorf("chunk %d: %s = %q, want %q", chunk, name, got, want)
			}
		}
		check("method", tx.Method, "GET")
		check("uri.raw", tx.URIRaw, "/a/./b/../c%2Fd//e%41?x=%41+b#frag")
		check("uri", tx.URI, "/a/c/d/eA?x=A+b#frag")
		check("protocol", tx.Protocol, "HTTP/1.1")
		check("host", tx.Host, "www.example.com")
		check("host.raw", tx.HostRaw, "WWW.Example.COM:8080")
		check("user_agent", tx.UserAgent, "Mozilla/5.0, curl/8")
		check("cookie", tx.Cookie, "a=1")
		check("referer", tx.Referer, "http://x/")
		check("header", tx.RequestHeaderBuf, "Host: WWW.Example.COM:8080\r\nUser-Agent: Mozilla/5.0, curl/8\r\nAccept: */*\r\nReferer: http://x/\r\n")
		check("header_names", tx.RequestHeaderNames, "\r\nHost\r\nUser-Agent\r\nCookie\r\nAccept\r\nReferer\r\n\r\n")
		check("request_line", tx.RequestLine, "GET /a/./b/../c%2Fd//e%41?x=%41+b#frag HTTP/1.1")
		if tx.RequestProgress != ProgressComplete {
			t.Errorf("request progress %d", tx.RequestProgress)
		}
	}
}

func TestNormalizeURI(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/", "/"},
		{"//index.html", "/index.html"},
		{"/a\\b%5cc", "/a/b/c"},
		{"/../../../etc/passwd", "/etc/passwd"},
		{"/a/b/c/./../../g", "/a/g"},
		{"/%u0041%uFF21", "/AA"},
		{"/%zz%4", "/%zz%4"},
		{"/%c0%af..%c0%af", "/"},
		{"/caf%C3%A9", "/caf\xe9"},
		{"/\xff", "/?"},
		{"http://Host.Example:81/p%41?q", "/pA?q"},
		{"/p?", "/p?"},
		{"/p?a=%2f&b=\\", "/p?a=/&b=\\"},
		{"example.com:443", "443"}, // libhtp reads "example.com:" as a scheme
		{"*", "*"},
		{"/x y", "/x y"},
	} {
		if got := string(NormalizeURI(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("NormalizeURI(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestURIWithSpaces(t *testing.T) {
	c := NewConn(DefaultConfig())
	c.Feed(ToServer, []byte("GET /one afterspace HTTP/1.1\r\nHost: h\r\n\r\n"))
	tx := c.Txs()[0]
	if string(tx.URI) != "/one afterspace" || string(tx.Protocol) != "HTTP/1.1" {
		t.Fatalf("uri %q protocol %q", tx.URI, tx.Protocol)
	}
}

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func TestPipelineChunkedGzip(t *testing.T) {
	body := strings.Repeat("hello world ", 500) + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"
	z := gz(body)
	var chunked bytes.Buffer
	for p := z; len(p) > 0; {
		n := min(100, len(p))
		fmt.Fprintf(&chunked, "%x;ext=1\r\n", n)
		chunked.Write(p[:n])
		chunked.WriteString("\r\n")
		p = p[n:]
	}
	chunked.WriteString("0\r\nTrailer: x\r\n\r\n")
	reqs := "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nname=evil" +
		"GET /two HTTP/1.1\r\nHost: b\r\n\r\n" +
		"HEAD /three HTTP/1.1\r\nHost: c\r\n\r\n"
	resps := "HTTP/1.1 100 Continue\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: s=1\r\n\r\nok" +
		"HTTP/1.1 404 Not Found\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked.String() +
		"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" +
		"HTTP/1.0 302 Found\r\nServer: ng1nx\r\n\r\nclose-delimited"
	for _, chunk := range []int{1, 2, 13, 1 << 20} {
		c := NewConn(DefaultConfig())
		feedAll(c, ToServer, reqs, chunk)
		feedAll(c, ToClient, resps, chunk)
		c.Close(ToClient)
		txs := c.Txs()
		if len(txs) != 4 {
			t.Fatalf("chunk %d: %d txs, events %v", chunk, len(txs), c.TakeEvents())
		}
		if string(txs[0].RequestBody.Data) != "name=evil" || string(txs[0].StatusCode) != "200" ||
			string(txs[0].ResponseBody.Data) != "ok" || string(txs[0].SetCookie) != "s=1" {
			t.Errorf("chunk %d: tx1 %+v", chunk, txs[0])
		}
		if string(txs[0].ResponseHeaderBuf) != "Content-Length: 2\r\n" {
			t.Errorf("chunk %d: response header %q", chunk, txs[0].ResponseHeaderBuf)
		}
		if txs[1].Status != 404 || string(txs[1].ResponseBody.Data) != body || txs[1].ResponseBody.Truncated {
			t.Errorf("chunk %d: tx2 status %d body %d bytes truncated %v events %v", chunk, txs[1].Status,
				len(txs[1].ResponseBody.Data), txs[1].ResponseBody.Truncated, c.TakeEvents())
		}
		if txs[2].Status != 200 || len(txs[2].ResponseBody.Data) != 0 || !txs[2].Complete() {
			t.Errorf("chunk %d: HEAD tx %+v", chunk, txs[2])
		}
		if string(txs[3].ResponseBody.Data) != "close-delimited" || !txs[3].Complete() {
			t.Errorf("chunk %d: close-delimited %q", chunk, txs[3].ResponseBody.Data)
		}
		if n := c.Prune(); n != 4 {
			t.Errorf("pruned %d", n)
		}
	}
}

func TestRequestDecompression(t *testing.T) {
	var zb bytes.Buffer
	w := zlib.NewWriter(&zb)
	w.Write([]byte("name=value"))
	w.Close()
	c := NewConn(DefaultConfig())
	c.Feed(ToServer, []byte(fmt.Sprintf("POST / HTTP/1.1\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n", zb.Len())))
	c.Feed(ToServer, zb.Bytes())
	if got := string(c.Txs()[0].RequestBody.Data); got != "name=value" {
		t.Fatalf("body %q", got)
	}
}

func TestNotActuallyGzip(t *testing.T) {
	c := NewConn(DefaultConfig())
	feedAll(c, ToServer, "GET / HTTP/1.1\r\n\r\n", 100)
	feedAll(c, ToClient, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nplain", 100)
	tx := c.Txs()[0]
	if string(tx.ResponseBody.Data) != "plain" {
		t.Fatalf("body %q", tx.ResponseBody.Data)
	}
}

func TestBodyLimit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ResponseBodyLimit = 10
	c := NewConn(cfg)
	c.Feed(ToServer, []byte("GET / HTTP/1.1\r\n\r\n"))
	c.Feed(ToClient, []byte("HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n0123456789abcdefghij"))
	b := c.Txs()[0].ResponseBody
	if string(b.Data) != "0123456789" || !b.Truncated || b.WireLen != 20 {
		t.Fatalf("%+v", b)
	}
}

func TestDecompressionBomb(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ResponseBodyLimit = 8 << 20
	bomb := gz(strings.Repeat("\x00", 64<<20)) // 64 MiB of zeros, ~64 KiB gzip
	bomb2 := gz(string(bomb))                  // two layers
	for _, tc := range []struct {
		enc  string
		data []byte
	}{{"gzip", bomb}, {"gzip, gzip", bomb2}} {
		c := NewConn(cfg)
		c.Feed(ToServer, []byte("GET / HTTP/1.1\r\n\r\n"))
		c.Feed(ToClient, []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n", tc.enc, len(tc.data))))
		feedAll(c, ToClient, string(tc.data), 1000)
		b := c.Txs()[0].ResponseBody
		if len(b.Data) > cfg.ResponseBodyLimit || !b.Truncated {
			t.Errorf("%s: kept %d bytes, truncated %v", tc.enc, len(b.Data), b.Truncated)
		}
		if tc.enc == "gzip, gzip" && !hasEvent(c.TakeEvents(), EventDecompressionBomb) {
			t.Errorf("%s: no bomb event", tc.enc)
		}
	}
}

func hasEvent(ev []Event, code EventCode) bool {
	for _, e := range ev {
		if e.Code == code {
			return true
		}
	}
	return false
}

func TestAdversarial(t *testing.T) {
	t.Run("long line", func(t *testing.T) {
		c := NewConn(DefaultConfig())
		c.Feed(ToServer, []byte("GET /"))
		for i := 0; i < 100 && !c.Failed(ToServer); i++ {
			c.Feed(ToServer, bytes.Repeat([]byte("a"), 1000))
		}
		if !c.Failed(ToServer) || !hasEvent(c.TakeEvents(), EventLineTooLong) {
			t.Fatal("no line_too_long")
		}
	})
	t.Run("header block", func(t *testing.T) {
		c := NewConn(DefaultConfig())
		c.Feed(ToServer, []byte("GET / HTTP/1.1\r\n"))
		for i := 0; i < 100000 && !c.Failed(ToServer); i++ {
			c.Feed(ToServer, []byte(fmt.Sprintf("X-H: %d\r\n", i)))
		}
		if !hasEvent(c.TakeEvents(), EventHeadersTooLarge) {
			t.Fatal("no headers_too_large")
		}
	})
	t.Run("header count", func(t *testing.T) {
		c := NewConn(DefaultConfig())
		c.Feed(ToServer, []byte("GET / HTTP/1.1\r\n"))
		for i := 0; i < 2000 && !c.Failed(ToServer); i++ {
			c.Feed(ToServer, []byte(fmt.Sprintf("X%d: 1\r\n", i)))
		}
		if !hasEvent(c.TakeEvents(), EventTooManyHeaders) {
			t.Fatal("no too_many_headers")
		}
	})
	t.Run("pipelined flood", func(t *testing.T) {
		c := NewConn(DefaultConfig())
		for i := 0; i < 1000 && !c.Failed(ToServer); i++ {
			c.Feed(ToServer, []byte("GET / HTTP/1.1\r\n\r\n"))
		}
		if len(c.Txs()) > DefaultConfig().MaxTransactions || !hasEvent(c.TakeEvents(), EventTooManyTransactions) {
			t.Fatalf("%d txs", len(c.Txs()))
		}
	})
	t.Run("tiny chunks", func(t *testing.T) {
		c := NewConn(DefaultConfig())
		c.Feed(ToServer, []byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"))
		for i := 0; i < 20000; i++ {
			c.Feed(ToServer, []byte("1\r\nx\r\n")[i%6:i%6+1])
		}
		b := c.Txs()[0].RequestBody
		if b.WireLen == 0 || len(b.Data) > DefaultConfig().RequestBodyLimit {
			t.Fatalf("%d", b.WireLen)
		}
	})
	t.Run("bad chunk", func(t *testing.T) {
		c := NewConn(DefaultConfig())
		c.Feed(ToServer, []byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"))
		if !c.Failed(ToServer) || !hasEvent(c.TakeEvents(), EventInvalidChunkLength) {
			t.Fatal("accepted")
		}
	})
	t.Run("folding", func(t *testing.T) {
		c := NewConn(DefaultConfig())
		c.Feed(ToServer, []byte("GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n"))
		if got := string(c.Txs()[0].HeaderValue(ToServer, "x-a")); got != "one two" {
			t.Fatalf("%q", got)
		}
	})
	t.Run("gap in body", func(t *testing.T) {
		c := NewConn(DefaultConfig())
		c.Feed(ToServer, []byte("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"))
		c.Gap(ToServer, 4)
		c.Feed(ToServer, []byte("xyzGET /next HTTP/1.1\r\n\r\n"))
		txs := c.Txs()
		if len(txs) != 2 || !txs[0].RequestBody.Truncated || string(txs[1].URI) != "/next" {
			t.Fatalf("%d txs", len(txs))
		}
	})
}

func TestSplitEquivalence(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	in := getReq + "POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
	ref := NewConn(DefaultConfig())
	ref.Feed(ToServer, []byte(in))
	for i := 0; i < 200; i++ {
		c := NewConn(DefaultConfig())
		feedRandom(c, ToServer, []byte(in), r)
		if summary(c) != summary(ref) {
			t.Fatalf("split changed result:\n%s\nvs\n%s", summary(c), summary(ref))
		}
	}
}

func feedRandom(c *Conn, d Dir, b []byte, r *rand.Rand) {
	for len(b) > 0 {
		n := 1 + r.Intn(len(b))
		c.Feed(d, b[:n])
		b = b[n:]
	}
}

func summary(c *Conn) string {
	var s strings.Builder
	for _, t := range c.Txs() {
		fmt.Fprintf(&s, "%q %q %q %q %q %q|", t.Method, t.URI, t.Host, t.RequestHeaderBuf, t.RequestBody.Data, t.ResponseBody.Data)
	}
	return s.String()
}

// TestVerbatimBody: a body sent as is says where it lies in the stream; a
// chunked, compressed or gapped one is not verbatim.
func TestVerbatimBody(t *testing.T) {
	resp := "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world"
	for _, tc := range []struct {
		name     string
		req      string
		resp     string
		gap      bool
		verbatim bool
	}{
		{"length", "GET / HTTP/1.1\r\n\r\n", resp, false, true},
		{"close", "GET / HTTP/1.0\r\n\r\n", "HTTP/1.0 200 OK\r\n\r\nhello world", false, true},
		{"http09", "GET /\r\n", "hello world", false, true},
		{"chunked", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n", false, false},
		{"gzip", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + string(gz("hello world")), false, false},
		{"gap", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nhello", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConn(DefaultConfig())
			c.Feed(ToServer, []byte(tc.req))
			for i := 0; i < len(tc.resp); i += 5 {
				c.Feed(ToClient, []byte(tc.resp[i:min(i+5, len(tc.resp))]))
			}
			if tc.gap {
				c.Gap(ToClient, 4)
				c.Feed(ToClient, []byte(" world"))
			}
			c.Close(ToClient)
			b := &c.Txs()[0].ResponseBody
			if b.Verbatim != tc.verbatim {
				t.Fatalf("verbatim %v, want %v", b.Verbatim, tc.verbatim)
			}
			if tc.verbatim {
				if string(b.Data) != "hello world" || int(b.Start) != len(tc.resp)-11 {
					t.Fatalf("body %q at %d", b.Data, b.Start)
				}
				if c.Offset(ToClient) != int64(len(tc.resp)) {
					t.Fatalf("offset %d", c.Offset(ToClient))
				}
			}
		})
	}
}
