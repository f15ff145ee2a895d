package kimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxImageSize caps the decompressed kernel. A distribution vmlinux is
// 30-70 MiB; 512 MiB leaves room for debug-heavy builds while still refusing
// a decompression bomb long before it hurts the host.
const MaxImageSize = 512 << 20

// maxPayloadSize caps the compressed payload read from the file. Real ones are
// 5-20 MiB; this only bounds the read before decompression starts.
const maxPayloadSize = 256 << 20

// Setup header fields (Documentation/arch/x86/boot.rst). Offsets are from the
// start of the bzImage file.
const (
	offSetupSects    = 0x1f1
	offHeaderMagic   = 0x202
	offVersion       = 0x206
	offPayloadOffset = 0x248
	offPayloadLength = 0x24c
	headerEnd        = 0x250

	headerMagic = "HdrS"
	// minProtocol is the first boot protocol with payload_offset and
	// payload_length (2.08); older images do not say where the payload is.
	minProtocol = 0x0208
)

var (
	// ErrNotBzImage reports input that is neither a bzImage nor an ELF.
	ErrNotBzImage = errors.New("kimage: not a bzImage (no HdrS setup header)")
	// ErrTooLarge reports a decompressed kernel over MaxImageSize.
	ErrTooLarge = fmt.Errorf("kimage: decompressed kernel exceeds %d bytes", MaxImageSize)
)

var elfMagic = []byte("\x7fELF")

// Extract returns the uncompressed vmlinux ELF inside the bzImage read from r
// (size bytes long). An input that already is an ELF file is returned as is,
// so callers holding a vmlinux can use the same entry point.
//
// The payload location comes from the boot protocol's setup header rather than
// from scanning for compression magics: scanning finds false positives in the
// real-mode setup code, and the header is what the boot loader trusts too.
func Extract(r io.ReaderAt, size int64) ([]byte, error) {
	if size < headerEnd {
		if size >= 4 {
			if m, err := readAt(r, 0, 4); err == nil && bytes.Equal(m, elfMagic) {
				return readAt(r, 0, size)
			}
		}
		return nil, fmt.Errorf("%w: file is only %d bytes", ErrNotBzImage, size)
	}
	hdr, err := readAt(r, 0, headerEnd)
	if err != nil {
		return nil, fmt.Errorf("kimage: reading setup header: %w", err)
	}
	if bytes.Equal(hdr[:4], elfMagic) {
		if size > MaxImageSize {
			return nil, ErrTooLarge
		}
		return readAt(r, 0, size)
	}
	off, length, err := payloadRange(hdr, size)
	if err != nil {
		return nil, err
	}
	payload, err := readAt(r, off, length)
	if err != nil {
		return nil, fmt.Errorf("kimage: reading %d-byte payload at %#x: %w", length, off, err)
	}
	out, err := decompress(payload, MaxImageSize)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(out, elfMagic) {
		return nil, fmt.Errorf("kimage: decompressed payload (%d bytes) is not an ELF file", len(out))
	}
	return out, nil
}

// payloadRange validates the setup header and returns the file offset and
// length of the compressed payload.
func payloadRange(hdr []byte, size int64) (int64, int64, error) {
	if string(hdr[offHeaderMagic:offHeaderMagic+4]) != headerMagic {
		return 0, 0, ErrNotBzImage
	}
	version := binary.LittleEndian.Uint16(hdr[offVersion:])
	if version < minProtocol {
		return 0, 0, fmt.Errorf("kimage: boot protocol %d.%02d is older than 2.08 and has no payload fields",
			version>>8, version&0xff)
	}
	setupSects := int64(hdr[offSetupSects])
	if setupSects == 0 {
		setupSects = 4 // boot.rst: "If this field is 0, the real value is 4."
	}
	pmStart := (setupSects + 1) * 512
	payOff := int64(binary.LittleEndian.Uint32(hdr[offPayloadOffset:]))
	payLen := int64(binary.LittleEndian.Uint32(hdr[offPayloadLength:]))
	if payLen == 0 {
		return 0, 0, errors.New("kimage: setup header payload_length is 0")
	}
	if payLen > maxPayloadSize {
		return 0, 0, fmt.Errorf("kimage: payload_length %d exceeds the %d-byte limit", payLen, maxPayloadSize)
	}
	start := pmStart + payOff // both at most 2^32, no overflow in int64
	if start > size || payLen > size-start {
		return 0, 0, fmt.Errorf("kimage: payload [%#x, +%#x) lies outside the %d-byte file", start, payLen, size)
	}
	return start, payLen, nil
}

// readAt reads exactly n bytes at off.
func readAt(r io.ReaderAt, off, n int64) ([]byte, error) {
	if n < 0 || n > MaxImageSize {
		return nil, fmt.Errorf("kimage: refusing to read %d bytes", n)
	}
	buf := make([]byte, n)
	got, err := r.ReadAt(buf, off)
	if int64(got) == n {
		return buf, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}
