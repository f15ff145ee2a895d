// Package tlshello reads the client side of a TLS connection far enough to
// find its ClientHello, which may span several records and TCP segments,
// and extracts tls.sni (the first host_name of the server_name extension,
// as Suricata keeps it) and the JA3 inputs (version, cipher suites,
// extensions, supported groups, point formats). It does no I/O; it keeps
// at most MaxHello bytes of handshake data per connection and stops at the
// first non-handshake record.
package tlshello

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits.
const (
	// MaxHello bounds the handshake bytes buffered to find a ClientHello
	// (the message plus its 4-byte header). Real ones are under 2 KiB;
	// post-quantum key shares push them to about 1.8 KiB more.
	MaxHello = 16 << 10
	// MaxSNI is the longest server name kept, as Suricata's 255.
	MaxSNI = 255
	// maxRecord is the largest TLSPlaintext fragment allowed (2^14 plus
	// the 2048 bytes of slack RFC 8446 allows for compressed records).
	maxRecord = 1<<14 + 2048
)

// Errors.
var (
	ErrNotTLS       = errors.New("tlshello: not a TLS handshake record")
	ErrNotHello     = errors.New("tlshello: first handshake message is not a ClientHello")
	ErrTooLarge     = errors.New("tlshello: ClientHello larger than the limit")
	ErrMalformed    = errors.New("tlshello: malformed ClientHello")
	ErrBadRecordLen = errors.New("tlshello: record length out of range")
)

// Hello is what was extracted from a ClientHello.
type Hello struct {
	// RecordVersion is the version of the first record header.
	RecordVersion uint16
	// Version is the legacy_version field of the ClientHello (JA3's).
	Version uint16
	// SNI is tls.sni: the first host_name entry of the first server_name
	// extension, as sent; nil when absent or invalid (see Events).
	SNI []byte
	// CipherSuites, Extensions, Groups and PointFormats are the JA3
	// inputs as sent, GREASE values included (JA3 drops them).
	CipherSuites []uint16
	Extensions   []uint16
	Groups       []uint16
	PointFormats []uint8
	// ALPN lists the offered application protocols (tls.alpn).
	ALPN [][]byte
	// Events names anomalies Suricata also reports: "multiple_sni",
	// "invalid_sni_type", "invalid_sni_length".
	Events []string
}

// Reader accumulates the client-to-server stream of one connection. Feed
// it bytes in order; once Done, it ignores further input.
type Reader struct {
	rec   [5]byte // partial record header
	nrec  int
	left  int // bytes left in the current record's payload
	hs    []byte
	hello *Hello
	err   error
	first bool
	rv    uint16
}

// Done reports whether the reader has finished: a Hello or an error.
func (r *Reader) Done() bool { return r.hello != nil || r.err != nil }

// Result returns the ClientHello once found, or the error that ended the
// search; (nil, nil) while more input is needed.
func (r *Reader) Result() (*Hello, error) { return r.hello, r.err }

// Feed consumes client bytes. It never retains data.
func (r *Reader) Feed(data []byte) {
	for len(data) > 0 && !r.Done() {
		if r.left == 0 {
			n := copy(r.rec[r.nrec:], data)
			r.nrec += n
			data = data[n:]
			if r.nrec < 5 {
				return
			}
			r.nrec = 0
			if r.rec[0] != 22 || r.rec[1] != 3 {
				r.err = fmt.Errorf("%w: record type %d version %d.%d", ErrNotTLS, r.rec[0], r.rec[1], r.rec[2])
				return
			}
			l := int(binary.BigEndian.Uint16(r.rec[3:]))
			if l == 0 || l > maxRecord {
				r.err = fmt.Errorf("%w: %d", ErrBadRecordLen, l)
				return
			}
			if !r.first {
				r.first = true
				r.rv = binary.BigEndian.Uint16(r.rec[1:])
			}
			r.left = l
			continue
		}
		n := min(r.left, len(data))
		r.left -= n
		r.hs = append(r.hs, data[:n]...)
		data = data[n:]
		r.tryHello()
	}
}

func (r *Reader) tryHello() {
	if len(r.hs) < 4 {
		return
	}
	if r.hs[0] != 1 {
		r.err = fmt.Errorf("%w: handshake type %d", ErrNotHello, r.hs[0])
		return
	}
	l := int(r.hs[1])<<16 | int(r.hs[2])<<8 | int(r.hs[3])
	if l+4 > MaxHello {
		r.err = fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, l+4, MaxHello)
		return
	}
	if len(r.hs) < l+4 {
		return
	}
	h, err := ParseClientHello(r.hs[4 : l+4])
	if err != nil {
		r.err = err
		return
	}
	h.RecordVersion = r.rv
	r.hello = h
	r.hs = nil
}

// cursor reads big-endian fields, remembering the first overrun.
type cursor struct {
	b   []byte
	bad bool
}

func (c *cursor) u8() int {
	if len(c.b) < 1 {
		c.bad = true
		return 0
	}
	v := c.b[0]
	c.b = c.b[1:]
	return int(v)
}

func (c *cursor) u16() int {
	if len(c.b) < 2 {
		c.bad = true
		c.b = nil
		return 0
	}
	v := binary.BigEndian.Uint16(c.b)
	c.b = c.b[2:]
	return int(v)
}

func (c *cursor) bytes(n int) []byte {
	if n > len(c.b) {
		c.bad = true
		c.b = nil
		return nil
	}
	v := c.b[:n:n]
	c.b = c.b[n:]
	return v
}

// ParseClientHello decodes a ClientHello body (after the 4-byte handshake
// header). Returned slices are copies; body is not retained.
func ParseClientHello(body []byte) (*Hello, error) {
	c := &cursor{b: body}
	h := &Hello{Version: uint16(c.u16())}
	c.bytes(32) // random
	c.bytes(c.u8())
	cs := &cursor{b: c.bytes(c.u16())}
	for len(cs.b) >= 2 {
		h.CipherSuites = append(h.CipherSuites, uint16(cs.u16()))
	}
	c.bytes(c.u8()) // compression methods
	if c.bad {
		return nil, fmt.Errorf("%w: cut off before extensions", ErrMalformed)
	}
	if len(c.b) == 0 {
		return h, nil // no extensions (SSLv3-style hello)
	}
	ext := &cursor{b: c.bytes(c.u16())}
	if c.bad {
		return nil, fmt.Errorf("%w: extensions length past the end", ErrMalformed)
	}
	for len(ext.b) > 0 {
		typ := ext.u16()
		data := ext.bytes(ext.u16())
		if ext.bad {
			return nil, fmt.Errorf("%w: extension %d cut off", ErrMalformed, typ)
		}
		h.Extensions = append(h.Extensions, uint16(typ))
		d := &cursor{b: data}
		switch typ {
		case 0: // server_name
			h.sni(d)
		case 10: // supported_groups
			g := &cursor{b: d.bytes(d.u16())}
			for len(g.b) >= 2 {
				h.Groups = append(h.Groups, uint16(g.u16()))
			}
		case 11: // ec_point_formats
			h.PointFormats = append(h.PointFormats, d.bytes(d.u8())...)
		case 16: // ALPN
			a := &cursor{b: d.bytes(d.u16())}
			for len(a.b) > 0 && !a.bad {
				if p := a.bytes(a.u8()); !a.bad {
					h.ALPN = append(h.ALPN, append([]byte(nil), p...))
				}
			}
		}
	}
	return h, nil
}

func (h *Hello) sni(d *cursor) {
	if h.SNI != nil {
		h.Events = append(h.Events, "multiple_sni")
		return
	}
	list := &cursor{b: d.bytes(d.u16())}
	typ := list.u8()
	if list.bad {
		h.Events = append(h.Events, "invalid_sni_length")
		return
	}
	if typ != 0 {
		h.Events = append(h.Events, "invalid_sni_type")
		return
	}
	n := list.u16()
	name := list.bytes(n)
	if list.bad || n == 0 || n > MaxSNI {
		h.Events = append(h.Events, "invalid_sni_length")
		return
	}
	h.SNI = append([]byte(nil), name...)
}

// isGREASE reports RFC 8701 reserved values (0x?a?a), which JA3 skips.
func isGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// JA3 returns the JA3 string: version, ciphers, extensions, groups and
// point formats, each list dash-joined without GREASE values, the five
// fields comma-joined.
func (h *Hello) JA3() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(int(h.Version)))
	list := func(vs []uint16) {
		b.WriteByte(',')
		first := true
		for _, v := range vs {
			if isGREASE(v) {
				continue
			}
			if !first {
				b.WriteByte('-')
			}
			first = false
			b.WriteString(strconv.Itoa(int(v)))
		}
	}
	list(h.CipherSuites)
	list(h.Extensions)
	list(h.Groups)
	b.WriteByte(',')
	for i, f := range h.PointFormats {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(strconv.Itoa(int(f)))
	}
	return b.String()
}

// JA3Hash is the hex MD5 of JA3(), the ja3.hash buffer.
func (h *Hello) JA3Hash() string {
	sum := md5.Sum([]byte(h.JA3()))
	return hex.EncodeToString(sum[:])
}
