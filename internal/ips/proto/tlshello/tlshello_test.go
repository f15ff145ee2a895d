package tlshello

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/ips/proto/internal/pcaptest"
)

// recorder is a net.Conn that keeps what is written and fails reads, so a
// crypto/tls client writes its ClientHello and stops.
type recorder struct{ out []byte }

func (r *recorder) Read([]byte) (int, error)         { return 0, io.EOF }
func (r *recorder) Write(b []byte) (int, error)      { r.out = append(r.out, b...); return len(b), nil }
func (r *recorder) Close() error                     { return nil }
func (r *recorder) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (r *recorder) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (r *recorder) SetDeadline(time.Time) error      { return nil }
func (r *recorder) SetReadDeadline(time.Time) error  { return nil }
func (r *recorder) SetWriteDeadline(time.Time) error { return nil }

// goClientHello returns the first flight of Go's TLS client for sni.
func goClientHello(t testing.TB, sni string) []byte {
	rec := &recorder{}
	c := tls.Client(rec, &tls.Config{ServerName: sni, NextProtos: []string{"h2", "http/1.1"}})
	if err := c.Handshake(); err == nil {
		t.Fatal("handshake succeeded against a recorder")
	}
	return rec.out
}

// refragment splits the handshake payload of one record into records of
// at most size bytes.
func refragment(rec []byte, size int) []byte {
	payload := rec[5 : 5+int(binary.BigEndian.Uint16(rec[3:]))]
	var out []byte
	for len(payload) > 0 {
		n := min(size, len(payload))
		out = append(out, 22, rec[1], rec[2], byte(n>>8), byte(n))
		out = append(out, payload[:n]...)
		payload = payload[n:]
	}
	return out
}

func TestGoClientHello(t *testing.T) {
	raw := goClientHello(t, "Evil.Example.com")
	for _, tc := range []struct {
		name  string
		data  []byte
		chunk int
	}{
		{"one record", raw, len(raw)},
		{"byte by byte", raw, 1},
		{"many records", refragment(raw, 50), 7},
	} {
		var r Reader
		for p := tc.data; len(p) > 0 && !r.Done(); {
			n := min(tc.chunk, len(p))
			r.Feed(p[:n])
			p = p[n:]
		}
		h, err := r.Result()
		if err != nil || h == nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if string(h.SNI) != "Evil.Example.com" || h.Version != 0x0303 || len(h.CipherSuites) == 0 ||
			len(h.Groups) == 0 || len(h.ALPN) != 2 || string(h.ALPN[0]) != "h2" {
			t.Fatalf("%s: %+v", tc.name, h)
		}
		ja3 := h.JA3()
		if strings.Count(ja3, ",") != 4 || !strings.HasPrefix(ja3, "771,") || len(h.JA3Hash()) != 32 {
			t.Fatalf("%s: ja3 %q", tc.name, ja3)
		}
	}
}

func TestJA3(t *testing.T) {
	h := &Hello{Version: 769, CipherSuites: []uint16{0x0a0a, 47, 53}, Extensions: []uint16{0, 0x1a1a, 10, 11},
		Groups: []uint16{0x2a2a, 23, 24}, PointFormats: []uint8{0}}
	if got := h.JA3(); got != "769,47-53,0-10-11,23-24,0" {
		t.Fatalf("%q", got)
	}
	if got := (&Hello{Version: 771}).JA3(); got != "771,,,," {
		t.Fatalf("%q", got)
	}
}

func TestAdversarial(t *testing.T) {
	raw := goClientHello(t, "a.example")
	body := raw[9:]
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"not tls", []byte("GET / HTTP/1.1\r\n"), ErrNotTLS},
		{"zero record", []byte{22, 3, 1, 0, 0}, ErrBadRecordLen},
		{"server hello", []byte{22, 3, 3, 0, 4, 2, 0, 0, 0}, ErrNotHello},
		{"huge hello", []byte{22, 3, 3, 0, 4, 1, 0xff, 0xff, 0xff}, ErrTooLarge},
		{"cut extensions", append([]byte{22, 3, 3, 0, 60, 1, 0, 0, 56}, body[:56]...), ErrMalformed},
	} {
		var r Reader
		r.Feed(tc.in)
		if _, err := r.Result(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Endless empty-ish records never end the search but keep no memory
	// beyond MaxHello: 1-byte records of a hello claiming 16000 bytes.
	var r Reader
	r.Feed([]byte{22, 3, 1, 0, 4, 1, 0, 0x3e, 0x80})
	for i := 0; i < 20000 && !r.Done(); i++ {
		r.Feed([]byte{22, 3, 1, 0, 1, 0})
	}
	if len(r.hs) > MaxHello {
		t.Fatalf("buffered %d", len(r.hs))
	}
	// Invalid SNI forms become events, not names.
	for _, tc := range []struct {
		ext  []byte
		want string
	}{
		{[]byte{0, 4, 1, 0, 1, 'a'}, "invalid_sni_type"},
		{[]byte{0, 3, 0, 0, 0}, "invalid_sni_length"},
	} {
		h := &Hello{}
		h.sni(&cursor{b: tc.ext})
		if h.SNI != nil || len(h.Events) != 1 || h.Events[0] != tc.want {
			t.Errorf("%x: %+v", tc.ext, h)
		}
	}
}

// TestSuricataVerify reads the client stream of the tls-extra-alert
// capture; whatever it holds must be handled without error or a clean
// refusal.
func TestSuricataVerify(t *testing.T) {
	pcaps, _ := filepath.Glob(filepath.Join(pcaptest.DataDir(), "tls-extra-alert", "*.pcap"))
	if len(pcaps) != 1 {
		if _, err := os.Stat(pcaptest.DataDir()); err != nil {
			t.Skip("suricata-verify data not present")
		}
		t.Fatal("no pcap")
	}
	pkts, err := pcaptest.Read(pcaps[0])
	if err != nil {
		t.Fatal(err)
	}
	cli, _ := pcaptest.Streams(pkts)
	var r Reader
	r.Feed(cli)
	h, err := r.Result()
	t.Logf("client stream %d bytes: hello %+v, err %v", len(cli), h, err)
}

func FuzzTLS(f *testing.F) {
	f.Add(goClientHello(f, "fuzz.example"), uint8(5))
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		step := int(chunk%32) + 1
		var r Reader
		for p := b; len(p) > 0 && !r.Done(); {
			n := min(step, len(p))
			r.Feed(p[:n])
			p = p[n:]
		}
		if len(r.hs) > MaxHello+maxRecord {
			t.Fatalf("buffered %d", len(r.hs))
		}
		if h, _ := r.Result(); h != nil {
			_ = h.JA3Hash()
			if len(h.SNI) > MaxSNI {
				t.Fatal("sni over limit")
			}
		}
	})
}

func BenchmarkTLSClientHello(b *testing.B) {
	raw := goClientHello(b, "www.example.com")
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var r Reader
		r.Feed(raw)
		if h, err := r.Result(); err != nil || h == nil {
			b.Fatal(err)
		}
	}
}
