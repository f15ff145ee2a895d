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
		}
		if len(c.Txs()) > cfg.MaxTransactions || len(c.TakeEvents()) > cfg.MaxEvents {
			t.Fatalf("table over limit")
		}
	})
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
