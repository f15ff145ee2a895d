package kimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/ulikunitz/xz/lzma"
)

// The kernel's xz payload is made by scripts/xz_wrap.sh with `--x86`, i.e. a
// filter chain of the x86 BCJ filter followed by LZMA2. github.com/ulikunitz/xz
// only decodes chains that are LZMA2 alone, so this file parses the .xz
// container itself (tukaani.org/xz/xz-file-format.txt), hands each block's
// LZMA2 data to ulikunitz's LZMA2 decoder and undoes BCJ afterwards.
const (
	xzHeaderLen  = 12
	filterBCJx86 = 0x04
	filterLZMA2  = 0x21
	maxXZBlocks  = 4096
	// maxXZDictSize bounds the LZMA2 dictionary allocated on the
	// header's say-so; the kernel uses 32 MiB and xz's presets at most 64.
	maxXZDictSize = 128 << 20
)

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

// xzCheckSize is the size of the integrity check for each check type id
// (section 3.1.3 of the format spec: ids 0x01-0x03 are 4 bytes, 0x04-0x06 8,
// 0x07-0x09 16, 0x0a-0x0c 32, 0x0d-0x0f 64).
func xzCheckSize(id byte) int {
	switch {
	case id == 0:
		return 0
	case id <= 0x0f:
		return 4 << ((id - 1) / 3)
	}
	return -1
}

// unxz decodes the first stream of an .xz file. Only the blocks are read; the
// index and footer are not needed to reproduce the data, and each block's
// output is bounded by limit.
func unxz(data []byte, limit int64) ([]byte, error) {
	if len(data) < xzHeaderLen || !bytes.HasPrefix(data, xzMagic) {
		return nil, errors.New("missing stream header")
	}
	flags := data[6:8]
	if crc32.ChecksumIEEE(flags) != binary.LittleEndian.Uint32(data[8:12]) {
		return nil, errors.New("stream header CRC mismatch")
	}
	if flags[0] != 0 || flags[1]&0xf0 != 0 {
		return nil, fmt.Errorf("unsupported stream flags % x", flags)
	}
	checkSize := xzCheckSize(flags[1])
	var out []byte
	pos := xzHeaderLen
	for block := 0; ; block++ {
		if block >= maxXZBlocks {
			return nil, fmt.Errorf("more than %d blocks", maxXZBlocks)
		}
		if pos >= len(data) {
			return nil, errors.New("stream ends before its index")
		}
		if data[pos] == 0 { // index indicator: all blocks done
			return out, nil
		}
		bh, err := parseXZBlockHeader(data[pos:])
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", block, err)
		}
		pos += bh.size
		src := bytes.NewReader(data[pos:])
		lr, err := lzma.Reader2Config{DictCap: bh.dictCap}.NewReader2(src)
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", block, err)
		}
		start := len(out)
		chunk, err := readAllLimited(lr, limit-int64(start))
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", block, err)
		}
		out = append(out, chunk...)
		if bh.bcj {
			bcjX86Decode(out[start:], bh.bcjStart)
		}
		consumed := len(data) - pos - src.Len()
		if bh.compressedSize >= 0 && int64(consumed) != bh.compressedSize {
			return nil, fmt.Errorf("block %d: header says %d compressed bytes, decoder used %d", block, bh.compressedSize, consumed)
		}
		if bh.uncompressedSize >= 0 && int64(len(chunk)) != bh.uncompressedSize {
			return nil, fmt.Errorf("block %d: header says %d uncompressed bytes, got %d", block, bh.uncompressedSize, len(chunk))
		}
		pos += consumed
		pos += (4 - consumed%4) % 4 // block padding
		if checkSize < 0 || checkSize > len(data)-pos {
			return nil, fmt.Errorf("block %d: truncated before its check", block)
		}
		if flags[1] == 0x01 {
			// The check covers the block's final output, after BCJ.
			if crc32.ChecksumIEEE(out[start:]) != binary.LittleEndian.Uint32(data[pos:]) {
				return nil, fmt.Errorf("block %d: CRC32 mismatch", block)
			}
		}
		pos += checkSize
	}
}

type xzBlockHeader struct {
	size             int
	compressedSize   int64 // -1 when absent
	uncompressedSize int64 // -1 when absent
	dictCap          int
	bcj              bool
	bcjStart         uint32
}

func parseXZBlockHeader(b []byte) (xzBlockHeader, error) {
	h := xzBlockHeader{compressedSize: -1, uncompressedSize: -1}
	h.size = (int(b[0]) + 1) * 4
	if h.size > len(b) {
		return h, fmt.Errorf("header of %d bytes is truncated", h.size)
	}
	hdr := b[:h.size]
	if crc32.ChecksumIEEE(hdr[:h.size-4]) != binary.LittleEndian.Uint32(hdr[h.size-4:]) {
		return h, errors.New("block header CRC mismatch")
	}
	flags := hdr[1]
	if flags&0x3c != 0 {
		return h, fmt.Errorf("reserved block flags set (%#x)", flags)
	}
	p := &vliReader{b: hdr[2 : h.size-4]}
	if flags&0x40 != 0 {
		h.compressedSize = int64(p.next())
	}
	if flags&0x80 != 0 {
		h.uncompressedSize = int64(p.next())
	}
	nFilters := int(flags&0x03) + 1
	for i := range nFilters {
		id, propLen := p.next(), p.next()
		props := p.bytes(propLen)
		if p.err != nil {
			return h, p.err
		}
		last := i == nFilters-1
		switch {
		case id == filterBCJx86 && !last && !h.bcj:
			h.bcj = true
			switch len(props) {
			case 0:
			case 4:
				h.bcjStart = binary.LittleEndian.Uint32(props)
			default:
				return h, fmt.Errorf("x86 BCJ filter has %d property bytes", len(props))
			}
		case id == filterLZMA2 && last:
			if len(props) != 1 {
				return h, fmt.Errorf("LZMA2 filter has %d property bytes", len(props))
			}
			dc, err := lzma.DecodeDictCap(props[0])
			if err != nil {
				return h, err
			}
			if dc > maxXZDictSize {
				return h, fmt.Errorf("LZMA2 dictionary of %d bytes is too large", dc)
			}
			h.dictCap = int(max(dc, lzma.MinDictCap))
		default:
			return h, fmt.Errorf("unsupported filter %#x at position %d of %d (only x86 BCJ then LZMA2)", id, i+1, nFilters)
		}
	}
	if p.err != nil {
		return h, p.err
	}
	for _, c := range p.b {
		if c != 0 {
			return h, errors.New("non-zero block header padding")
		}
	}
	return h, nil
}

// vliReader decodes the .xz variable-length integers (7 bits per byte, at
// most 9 bytes), remembering the first error.
type vliReader struct {
	b   []byte
	err error
}

func (v *vliReader) next() uint64 {
	if v.err != nil {
		return 0
	}
	var x uint64
	for i := 0; i < 9; i++ {
		if len(v.b) == 0 {
			v.err = errors.New("truncated block header field")
			return 0
		}
		c := v.b[0]
		v.b = v.b[1:]
		x |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				v.err = errors.New("non-minimal integer in block header")
			}
			return x
		}
	}
	v.err = errors.New("block header integer longer than 9 bytes")
	return 0
}

func (v *vliReader) bytes(n uint64) []byte {
	if v.err != nil {
		return nil
	}
	if n > uint64(len(v.b)) {
		v.err = errors.New("truncated filter properties")
		return nil
	}
	p := v.b[:n]
	v.b = v.b[n:]
	return p
}
