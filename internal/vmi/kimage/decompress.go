package kimage

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz/lzma"
)

// format names a payload compression; the zero value is unknown.
type format string

const (
	formatGzip  format = "gzip"
	formatBzip2 format = "bzip2"
	formatLZMA  format = "lzma"
	formatXZ    format = "xz"
	formatLZO   format = "lzo"
	formatLZ4   format = "lz4"
	formatZstd  format = "zstd"
)

// magics are the leading bytes of each compressor's output, as the kernel's
// build writes them (arch/x86/boot/compressed/Makefile).
var magics = []struct {
	f     format
	magic []byte
}{
	{formatGzip, []byte{0x1f, 0x8b, 0x08}},
	{formatXZ, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{formatZstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{formatLZ4, []byte{0x02, 0x21, 0x4c, 0x18}},
	{formatBzip2, []byte("BZh")},
	{formatLZO, []byte{0x89, 'L', 'Z', 'O', 0x00}},
	// lzma_alone: properties byte 0x5d (lc=3 lp=0 pb=2, what `lzma -9` uses)
	// then a little-endian dictionary size; checked last, it is the weakest.
	{formatLZMA, []byte{0x5d, 0x00, 0x00}},
}

func detect(payload []byte) format {
	for _, m := range magics {
		if bytes.HasPrefix(payload, m.magic) {
			return m.f
		}
	}
	return ""
}

// decompress inflates a bzImage payload, producing at most limit bytes.
//
// Every compressor but gzip is run as "<tool>_with_size" by the kernel build,
// which appends the uncompressed size as a little-endian u32; gzip's own
// trailer ends with the same value (ISIZE). The trailer is stripped before
// decoding, so decoders that insist on a clean end of input are satisfied,
// and the result's length is checked against it to catch truncation.
func decompress(payload []byte, limit int64) ([]byte, error) {
	f := detect(payload)
	if f == "" {
		n := min(len(payload), 8)
		return nil, fmt.Errorf("kimage: unknown payload compression (first bytes % x)", payload[:n])
	}
	if len(payload) < 8 {
		return nil, fmt.Errorf("kimage: %s payload is only %d bytes", f, len(payload))
	}
	want := binary.LittleEndian.Uint32(payload[len(payload)-4:])
	body := payload
	if f != formatGzip {
		body = payload[:len(payload)-4]
	}
	var (
		out []byte
		err error
	)
	switch f {
	case formatGzip:
		out, err = gunzip(body, limit)
	case formatXZ:
		out, err = unxz(body, limit)
	case formatZstd:
		out, err = unzstd(body, limit)
	case formatLZ4:
		out, err = unlz4(body, limit, int64(want))
	case formatBzip2:
		out, err = readAllLimited(bzip2.NewReader(bytes.NewReader(body)), limit)
	case formatLZMA:
		out, err = unlzma(body, limit)
	default:
		return nil, fmt.Errorf("kimage: %s-compressed kernels are not supported", f)
	}
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		return nil, fmt.Errorf("kimage: %s payload: %w", f, err)
	}
	if uint32(len(out)) != want {
		return nil, fmt.Errorf("kimage: %s payload decompressed to %d bytes, trailer says %d", f, len(out), want)
	}
	return out, nil
}

func gunzip(body []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	return readAllLimited(zr, limit)
}

func unzstd(body []byte, limit int64) ([]byte, error) {
	// The kernel compresses with --ultra -22, whose window is 128 MiB, the
	// most a frame header may then make us allocate. The output itself is
	// capped by readAllLimited.
	const maxWindow = 128 << 20
	zr, err := zstd.NewReader(bytes.NewReader(body),
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(maxWindow),
		zstd.WithDecoderMaxWindow(maxWindow))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return readAllLimited(zr, limit)
}

func unlzma(body []byte, limit int64) ([]byte, error) {
	// lzma_alone headers carry a dictionary size chosen by the writer; cap
	// what we allocate for it (lzma -9 uses 64 MiB).
	if len(body) >= 5 && binary.LittleEndian.Uint32(body[1:5]) > maxXZDictSize {
		return nil, fmt.Errorf("lzma dictionary larger than %d bytes", maxXZDictSize)
	}
	zr, err := lzma.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	return readAllLimited(zr, limit)
}

// readAllLimited reads r to EOF, failing with ErrTooLarge once more than
// limit bytes have come out.
func readAllLimited(r io.Reader, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, ErrTooLarge
	}
	return buf.Bytes(), nil
}
