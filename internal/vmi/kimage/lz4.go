package kimage

import (
	"encoding/binary"
	"fmt"

	"github.com/pierrec/lz4/v4"
)

// The kernel compresses with `lz4 -l`, the legacy frame format: a magic, then
// blocks of [u32 LE compressed size][LZ4 block], each inflating to at most
// 8 MiB. A repeated magic starts a new frame (lib/decompress_unlz4.c skips
// it), and there is no end marker: the frame ends with its input.
const (
	lz4LegacyMagic     = 0x184c2102
	lz4LegacyBlockSize = 8 << 20
)

// lz4MaxCompressedBlock is LZ4_compressBound of one legacy block: no valid
// block is longer, so a larger size field is corrupt.
var lz4MaxCompressedBlock = lz4.CompressBlockBound(lz4LegacyBlockSize)

// unlz4 decodes a legacy LZ4 stream (magic included). hint is the expected
// output size, used only to allocate once when it is plausible.
func unlz4(body []byte, limit, hint int64) ([]byte, error) {
	if len(body) < 4 || binary.LittleEndian.Uint32(body) != lz4LegacyMagic {
		return nil, fmt.Errorf("missing legacy frame magic")
	}
	// The trailer is as untrusted as the rest: believe it only up to a
	// ratio real kernels stay far below (about 4:1), so a few hostile bytes
	// cannot make us allocate the whole limit up front.
	var out []byte
	if hint > 0 && hint <= limit && hint <= 16*int64(len(body)) {
		// One block of slack: each block is decoded into the room a whole
		// block could need, so an exact-size buffer would be grown (and
		// the whole output copied) for the last one.
		out = make([]byte, 0, min(hint+lz4LegacyBlockSize, limit))
	}
	pos := 4
	for block := 0; pos < len(body); block++ {
		if len(body)-pos < 4 {
			return nil, fmt.Errorf("block %d: %d stray bytes at offset %d", block, len(body)-pos, pos)
		}
		n := int(binary.LittleEndian.Uint32(body[pos:]))
		pos += 4
		if n == lz4LegacyMagic {
			continue
		}
		if n == 0 || n > lz4MaxCompressedBlock || n > len(body)-pos {
			return nil, fmt.Errorf("block %d at offset %d: bad compressed size %d (%d bytes left)", block, pos-4, n, len(body)-pos)
		}
		// LZ4 expands at most 255:1 (each extra match-length byte adds
		// 255), so small blocks need far less than the 8 MiB maximum.
		left := limit - int64(len(out))
		if left <= 0 {
			return nil, ErrTooLarge
		}
		room := min(int64(lz4LegacyBlockSize), 256*int64(n)+64, left)
		if int64(cap(out)-len(out)) < room {
			grown := make([]byte, len(out), min(max(int64(len(out))+room, int64(2*cap(out))), limit))
			copy(grown, out)
			out = grown
		}
		m, err := lz4.UncompressBlock(body[pos:pos+n], out[len(out):len(out)+int(room)])
		if err != nil {
			if room == left {
				return nil, ErrTooLarge
			}
			return nil, fmt.Errorf("block %d at offset %d: %w", block, pos-4, err)
		}
		out = out[:len(out)+m]
		pos += n
	}
	return out, nil
}
