package http1

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"strings"
)

// encoding is one supported Content-Encoding layer.
type encoding uint8

const (
	encGzip encoding = iota + 1
	encDeflate
)

// parseEncodings reads a Content-Encoding value ("gzip", "deflate",
// "x-gzip", "identity", comma-separated stacks). It returns the layers to
// undo, outermost (applied last by the sender) last, the names as sent,
// and an event code when a layer is unknown or there are more layers than
// allowed; in both cases the body is kept as sent.
func parseEncodings(v []byte, maxLayers int) ([]encoding, []string, EventCode) {
	var encs []encoding
	var names []string
	for _, f := range bytes.Split(v, []byte(",")) {
		f = bytes.TrimSpace(f)
		name := strings.ToLower(string(f))
		switch name {
		case "", "identity":
			continue
		case "gzip", "x-gzip":
			encs = append(encs, encGzip)
		case "deflate", "x-deflate":
			encs = append(encs, encDeflate)
		default:
			return nil, []string{name}, EventUnknownEncoding
		}
		names = append(names, name)
		if len(encs) > maxLayers {
			return nil, names, EventTooManyEncodings
		}
	}
	return encs, names, ""
}

// decoder undoes Content-Encoding layers on a body that arrives in pieces.
// The standard library's decompressors pull from a reader and cannot pause
// for more input, so the decoder keeps the compressed bytes (no more than
// the output limit plus slack: compressed data is never much larger than
// its output) and decodes again from the start when the kept input has
// doubled since the last attempt, and once at the end of the body. The
// work is thus at most about twice one decode of the whole body, and no
// attempt produces more than limit+1 bytes, which bounds any bomb.
type decoder struct {
	encs    []encoding
	in      []byte
	nextTry int
	limit   int // output bound (the body limit)
	ratio   int
	done    bool
}

const (
	firstDecodeAt = 512
	// inputSlack is how much more compressed input than output limit is
	// kept: deflate's worst expansion of incompressible data is 5 bytes
	// per 16 KiB block plus headers.
	inputSlack = 4096
	// bombFloor: the ratio test starts once the output passes this size,
	// so small highly compressible bodies are not flagged.
	bombFloor = 64 << 10
)

func newDecoder(encs []encoding, limit, ratio int) *decoder {
	return &decoder{encs: encs, limit: limit, ratio: ratio, nextTry: firstDecodeAt}
}

// decodeResult is the outcome of one decode attempt.
type decodeResult struct {
	out       []byte
	truncated bool      // more output existed than limit
	event     EventCode // bomb or failure, "" when fine
}

// write adds compressed bytes. It returns a result when an attempt ran
// (ok true); final is set once the decoder needs no more input.
func (d *decoder) write(p []byte, scratch []byte) (r decodeResult, ok bool) {
	if d.done {
		return r, false
	}
	room := d.limit + inputSlack - len(d.in)
	if len(p) > room {
		p = p[:room]
		d.done = true // input beyond what can matter: decode now, stop
	}
	d.in = append(d.in, p...)
	if !d.done && len(d.in) < d.nextTry {
		return r, false
	}
	d.nextTry = 2 * len(d.in)
	return d.run(scratch, d.done), true
}

// finish decodes what was received when the body ends.
func (d *decoder) finish(scratch []byte) (decodeResult, bool) {
	if d.done && d.in == nil {
		return decodeResult{}, false
	}
	return d.run(scratch, true), true
}

// run decodes d.in from the start into scratch (reused).
func (d *decoder) run(scratch []byte, final bool) decodeResult {
	var r io.Reader = bytes.NewReader(d.in)
	var err error
	for i := len(d.encs) - 1; i >= 0 && err == nil; i-- {
		r, err = layerReader(d.encs[i], r)
	}
	out := scratch[:0]
	if err == nil {
		out, err = readUpTo(out, r, d.limit+1)
	}
	res := decodeResult{out: out}
	if len(out) > d.limit {
		res.out = out[:d.limit]
		res.truncated = true
		d.done = true
	}
	if len(res.out) > bombFloor && len(res.out)/d.ratio > len(d.in) {
		res.event = EventDecompressionBomb
		res.truncated = true
		d.done = true
	}
	switch {
	case err == nil || errors.Is(err, io.EOF):
		// Limit reached, or the encoded stream ended.
	case errors.Is(err, io.ErrUnexpectedEOF):
		// The input so far stops mid-stream: expected before the end.
		if final && len(out) == 0 && res.event == "" {
			res.event = EventDecompressionFailed
		}
	default:
		if res.event == "" {
			res.event = EventDecompressionFailed
		}
		d.done = true
	}
	if final || d.done {
		d.done = true
		if res.event != EventDecompressionFailed || len(res.out) > 0 {
			d.in = nil // no longer needed (the caller keeps them as sent otherwise)
		}
	}
	return res
}

func layerReader(e encoding, r io.Reader) (io.Reader, error) {
	switch e {
	case encGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		zr.Multistream(false)
		return zr, nil
	default:
		// "deflate" is zlib-wrapped per RFC 9110, but many servers send
		// raw deflate; like libhtp, take the zlib header when present.
		br := bufioPeeker{r: r}
		hdr := br.peek2()
		if len(hdr) == 2 && hdr[0]&0x0f == 8 && (uint16(hdr[0])<<8|uint16(hdr[1]))%31 == 0 {
			return zlib.NewReader(&br)
		}
		return flate.NewReader(&br), nil
	}
}

// bufioPeeker lets the first two bytes be inspected and then read again.
type bufioPeeker struct {
	r    io.Reader
	head []byte
}

func (p *bufioPeeker) peek2() []byte {
	var b [2]byte
	n, _ := io.ReadFull(p.r, b[:])
	p.head = b[:n]
	return p.head
}

func (p *bufioPeeker) Read(b []byte) (int, error) {
	if len(p.head) > 0 {
		n := copy(b, p.head)
		p.head = p.head[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// ReadByte makes the peeker an io.ByteReader so flate does not wrap it in
// a bufio.Reader of its own (which would read ahead and allocate).
func (p *bufioPeeker) ReadByte() (byte, error) {
	var b [1]byte
	if _, err := io.ReadFull(p, b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}

// readUpTo appends at most max bytes from r to dst.
func readUpTo(dst []byte, r io.Reader, max int) ([]byte, error) {
	for len(dst) < max {
		if cap(dst) == len(dst) {
			n := 2 * cap(dst)
			if n < 4096 {
				n = 4096
			}
			if n > max {
				n = max
			}
			nb := make([]byte, len(dst), n)
			copy(nb, dst)
			dst = nb
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), max)])
		dst = dst[:len(dst)+n]
		if err != nil {
			return dst, err
		}
	}
	return dst, nil
}
