package kimage

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

var testBuildID = []byte{0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10}

func gzipBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t testing.TB, b []byte) []byte {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeAll(b, nil)
}

func xzBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, err := xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func lzmaBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, err := lzma.WriterConfig{Size: int64(len(b))}.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// lz4Legacy compresses like `lz4 -l`: magic, then size-prefixed blocks of
// blockSize input bytes each.
func lz4Legacy(t testing.TB, b []byte, blockSize int) []byte {
	out := binary.LittleEndian.AppendUint32(nil, lz4LegacyMagic)
	for len(b) > 0 {
		chunk := b[:min(blockSize, len(b))]
		b = b[len(chunk):]
		dst := make([]byte, lz4.CompressBlockBound(len(chunk)))
		n, err := lz4.CompressBlock(chunk, dst, nil)
		if err != nil || n == 0 {
			t.Fatalf("lz4: %v (n=%d)", err, n)
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(n))
		out = append(out, dst[:n]...)
	}
	return out
}

func TestExtractFormats(t *testing.T) {
	elf := fakeELF(testBuildID, nil, 100_000)
	for name, payload := range map[string][]byte{
		"gzip": gzipBytes(t, elf),
		"zstd": withSize(zstdBytes(t, elf), len(elf)),
		"xz":   withSize(xzBytes(t, elf), len(elf)),
		"lzma": withSize(lzmaBytes(t, elf), len(elf)),
		"lz4":  withSize(lz4Legacy(t, elf, lz4LegacyBlockSize), len(elf)),
	} {
		for _, sects := range []byte{0, 27} {
			img := fakeBzImage(payload, sects)
			out, err := Extract(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatalf("%s, setup_sects=%d: %v", name, sects, err)
			}
			if !bytes.Equal(out, elf) {
				t.Fatalf("%s: output differs from the input ELF", name)
			}
		}
	}
}

func TestExtractPassesELFThrough(t *testing.T) {
	elf := fakeELF(testBuildID, nil, 10)
	out, err := Extract(bytes.NewReader(elf), int64(len(elf)))
	if err != nil || !bytes.Equal(out, elf) {
		t.Fatalf("Extract(ELF) = %d bytes, %v", len(out), err)
	}
}

// The kernel's legacy LZ4 stream: several 8 MiB blocks and a repeated magic
// (a second frame) must both decode.
func TestLZ4MultiBlockAndFrames(t *testing.T) {
	data := bytes.Repeat([]byte("kernel text 0123456789 "), (9<<20)/23)
	stream := lz4Legacy(t, data, lz4LegacyBlockSize)
	second := lz4Legacy(t, []byte("tail"), lz4LegacyBlockSize)
	stream = append(stream, second...) // includes the magic again
	out, err := unlz4(stream, MaxImageSize, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(append([]byte(nil), data...), "tail"...); !bytes.Equal(out, want) {
		t.Fatalf("got %d bytes, want %d", len(out), len(want))
	}
}

func TestDecompressLimits(t *testing.T) {
	data := make([]byte, 1<<20)
	for name, payload := range map[string][]byte{
		"gzip": gzipBytes(t, data),
		"zstd": withSize(zstdBytes(t, data), len(data)),
		"xz":   withSize(xzBytes(t, data), len(data)),
		"lz4":  withSize(lz4Legacy(t, data, lz4LegacyBlockSize), len(data)),
		"lzma": withSize(lzmaBytes(t, data), len(data)),
	} {
		if _, err := decompress(payload, 1000); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: err = %v, want ErrTooLarge", name, err)
		}
		if out, err := decompress(payload, 1<<20); err != nil || len(out) != len(data) {
			t.Errorf("%s at exactly the limit: %d bytes, %v", name, len(out), err)
		}
	}
}

func TestDecompressSizeTrailerMismatch(t *testing.T) {
	data := []byte("some kernel bytes, some kernel bytes")
	if _, err := decompress(withSize(zstdBytes(t, data), len(data)+1), MaxImageSize); err == nil || !strings.Contains(err.Error(), "trailer") {
		t.Fatalf("err = %v, want a trailer size mismatch", err)
	}
}

func TestExtractErrors(t *testing.T) {
	elf := fakeELF(testBuildID, nil, 1000)
	good := fakeBzImage(withSize(zstdBytes(t, elf), len(elf)), 4)
	notELF := fakeBzImage(withSize(zstdBytes(t, []byte("not an elf at all")), 17), 4)
	mutate := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	le := binary.LittleEndian
	for name, c := range map[string]struct {
		img  []byte
		want string
	}{
		"short":         {[]byte("MZ"), "not a bzImage"},
		"no magic":      {mutate(func(b []byte) { b[0x202] = 'X' }), "not a bzImage"},
		"old protocol":  {mutate(func(b []byte) { le.PutUint16(b[0x206:], 0x0207) }), "older than 2.08"},
		"zero length":   {mutate(func(b []byte) { le.PutUint32(b[0x24c:], 0) }), "payload_length is 0"},
		"huge length":   {mutate(func(b []byte) { le.PutUint32(b[0x24c:], 0xffffffff) }), "exceeds"},
		"past the end":  {mutate(func(b []byte) { le.PutUint32(b[0x248:], uint32(len(b))) }), "outside"},
		"unknown codec": {mutate(func(b []byte) { b[5*512+0x2cc] = 0x42 }), "unknown payload compression"},
		"corrupt":       {mutate(func(b []byte) { b[5*512+0x2cc+40] ^= 0xff }), "zstd"},
		"not ELF":       {notELF, "not an ELF"},
	} {
		_, err := Extract(bytes.NewReader(c.img), int64(len(c.img)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, c.want)
		}
	}
}

// FuzzExtract checks that hostile images fail cleanly: no panic, no output
// over the limit.
func FuzzExtract(f *testing.F) {
	elf := fakeELF(testBuildID, nil, 300)
	f.Add(fakeBzImage(withSize(lz4Legacy(f, elf, lz4LegacyBlockSize), len(elf)), 1))
	f.Add(fakeBzImage(withSize(zstdBytes(f, elf), len(elf)), 1))
	f.Add(fakeBzImage(gzipBytes(f, elf), 1))
	f.Fuzz(func(t *testing.T, img []byte) {
		out, err := Extract(bytes.NewReader(img), int64(len(img)))
		if err == nil && (len(out) > MaxImageSize || !bytes.HasPrefix(out, elfMagic)) {
			t.Fatalf("accepted %d bytes of output", len(out))
		}
		if err == nil {
			BuildID(out)
			BTF(out)
			LoadSegments(out)
		}
	})
}

// FuzzDecompress drives the per-format decoders directly, where most of the
// hostile-input handling lives.
func FuzzDecompress(f *testing.F) {
	data := []byte("0123456789abcdef0123456789abcdef some kernel")
	f.Add(withSize(lz4Legacy(f, data, lz4LegacyBlockSize), len(data)))
	f.Add(withSize(zstdBytes(f, data), len(data)))
	f.Add(gzipBytes(f, data))
	for _, name := range []string{"bcj-x86.xz", "bcj.bin.bz2"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(withSize(b, 16384))
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		out, err := decompress(payload, 1<<20)
		if err == nil && len(out) > 1<<20 {
			t.Fatalf("%d bytes over the limit", len(out))
		}
	})
}
