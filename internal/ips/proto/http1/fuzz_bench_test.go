package http1

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// FuzzHTTP feeds random bytes, split at random points, into both
// directions, and checks the bounds the parser promises.
func FuzzHTTP(f *testing.F) {
	f.Add([]byte(getReq), []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), uint64(7))
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
		append([]byte("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n"), gz("hello")...), uint64(3))
	f.Add([]byte("GET /x HTTP/1.0\r\n\r\n"), []byte("HTTP/1.0 100 c\r\n\r\nHTTP/1.0 200 OK\r\n\r\nbody"), uint64(1))
	f.Fuzz(func(t *testing.T, req, resp []byte, seed uint64) {
		cfg := DefaultConfig()
		cfg.RequestBodyLimit, cfg.ResponseBodyLimit = 64, 64
		c := NewConn(cfg)
		split := func(d Dir, b []byte) {
			s := seed
			for len(b) > 0 {
				s = s*6364136223846793005 + 1442695040888963407
				n := 1 + int(s>>33)%len(b)
				c.Feed(d, b[:n])
				b = b[n:]
			}
		}
		split(ToServer, req)
		split(ToClient, resp)
		c.Close(ToClient)
		for _, tx := range c.Txs() {
			if len(tx.RequestBody.Data) > 64 || len(tx.ResponseBody.Data) > 64 {
				t.Fatalf("body over limit")
			}
			checkVerbatim(t, &tx.RequestBody, req)
			checkVerbatim(t, &tx.ResponseBody, resp)
		}
		if c.Offset(ToServer) != int64(len(req)) || c.Offset(ToClient) != int64(len(resp)) {
			t.Fatalf("offsets %d, %d for %d, %d bytes", c.Offset(ToServer), c.Offset(ToClient), len(req), len(resp))
		}
		if len(c.Txs()) > cfg.MaxTransactions || len(c.TakeEvents()) > cfg.MaxEvents {
			t.Fatalf("table over limit")
		}
	})
}

// checkVerbatim: a Verbatim body is the stream's bytes from its Start.
func checkVerbatim(t *testing.T, b *Body, stream []byte) {
	t.Helper()
	if !b.Verbatim || len(b.Data) == 0 {
		return
	}
	if b.Start < 0 || b.Start+int64(len(b.Data)) > int64(len(stream)) ||
		!bytes.Equal(stream[b.Start:b.Start+int64(len(b.Data))], b.Data) {
		t.Fatalf("verbatim body %q at %d is not the stream's bytes", b.Data, b.Start)
	}
}

// FuzzNormalizeURI checks normalization never grows the path part
// unboundedly and never panics.
func FuzzNormalizeURI(f *testing.F) {
	f.Add([]byte("/a/../b%2f%u0041?q=%41#f"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if out := NormalizeURI(nil, raw); len(out) > len(raw)+2 {
			t.Fatalf("%q -> %q", raw, out)
		}
	})
}

func BenchmarkHTTPRequest(b *testing.B) {
	req := []byte(getReq)
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		c := NewConn(DefaultConfig())
		c.Feed(ToServer, req)
	}
}

func BenchmarkHTTPResponseGzip(b *testing.B) {
	body := gz(strings.Repeat("<html><body>lorem ipsum dolor sit amet</body></html>\n", 1500))
	var resp bytes.Buffer
	fmt.Fprintf(&resp, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n", len(body))
	resp.Write(body)
	wire := resp.Bytes()
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		c := NewConn(DefaultConfig())
		c.Feed(ToServer, []byte("GET / HTTP/1.1\r\n\r\n"))
		for p := wire; len(p) > 0; { // MSS-sized segments
			n := min(1448, len(p))
			c.Feed(ToClient, p[:n])
			p = p[n:]
		}
		if c.Txs()[0].ResponseProgress != ProgressComplete {
			b.Fatal("incomplete")
		}
	}
}

// BenchmarkHTTPTransaction is one keep-alive-less transaction as the
// engine sees it: a browser-like request and a 12 KiB response with a
// Content-Length body in MSS-sized segments.
func BenchmarkHTTPTransaction(b *testing.B) {
	req := []byte("GET /static/img/index.php?id=42&q=news HTTP/1.1\r\nHost: www.example.com\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n" +
		"Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.9\r\nCookie: session=8f2a\r\n\r\n")
	body := strings.Repeat("<p>lorem ipsum dolor sit amet 42</p>\n", 12<<10/37)
	resp := []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	b.SetBytes(int64(len(req) + len(resp)))
	b.ReportAllocs()
	for b.Loop() {
		c := NewConn(DefaultConfig())
		c.Feed(ToServer, req)
		for p := resp; len(p) > 0; {
			n := min(1448, len(p))
			c.Feed(ToClient, p[:n])
			p = p[n:]
		}
		if t := c.Txs()[0]; t.ResponseProgress != ProgressComplete || !t.ResponseBody.Verbatim {
			b.Fatal("incomplete")
		}
	}
}
