// Package lime writes and reads LiME memory images, the format of the
// Linux Memory Extractor that Volatility 3 opens directly
// (https://github.com/504ensicsLabs/LiME/blob/master/doc/README.md):
// for each physical range a 32-byte header — magic 0x4C694D45 ("EMiL"
// little-endian), version 1, start and inclusive end address, 8 reserved
// bytes — followed by the range's bytes.
package lime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Magic and Version identify a LiME range header.
const (
	Magic   = 0x4C694D45
	Version = 1
	hdrLen  = 32
)

// Range is one physical memory range of an image.
type Range struct {
	Start, End uint64 // End inclusive, as LiME stores it
}

// Len is the number of bytes in the range.
func (r Range) Len() uint64 { return r.End - r.Start + 1 }

// WriteRange writes one range header and copies exactly r.Len() bytes
// from src.
func WriteRange(w io.Writer, r Range, src io.Reader) error {
	if r.End < r.Start {
		return fmt.Errorf("lime: range end %#x before start %#x", r.End, r.Start)
	}
	var h [hdrLen]byte
	binary.LittleEndian.PutUint32(h[0:], Magic)
	binary.LittleEndian.PutUint32(h[4:], Version)
	binary.LittleEndian.PutUint64(h[8:], r.Start)
	binary.LittleEndian.PutUint64(h[16:], r.End)
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	n, err := io.CopyN(w, src, int64(r.Len()))
	if err != nil {
		return fmt.Errorf("lime: range %#x-%#x: wrote %d of %d bytes: %w", r.Start, r.End, n, r.Len(), err)
	}
	return nil
}

// MaxRanges bounds how many ranges Ranges reads from an image.
const MaxRanges = 1024

// Ranges reads the range headers of an image of size bytes (a second,
// independent reader used to validate what WriteRange produced) and
// returns each range with the file offset of its data.
func Ranges(r io.ReaderAt, size int64) ([]Range, []int64, error) {
	var rs []Range
	var offs []int64
	var last uint64
	for off := int64(0); off < size; {
		if len(rs) == MaxRanges {
			return nil, nil, fmt.Errorf("lime: more than %d ranges", MaxRanges)
		}
		var h [hdrLen]byte
		if _, err := r.ReadAt(h[:], off); err != nil {
			return nil, nil, fmt.Errorf("lime: header at offset %d: %w", off, err)
		}
		if binary.LittleEndian.Uint32(h[0:]) != Magic {
			return nil, nil, fmt.Errorf("lime: bad magic at offset %d", off)
		}
		if v := binary.LittleEndian.Uint32(h[4:]); v != Version {
			return nil, nil, fmt.Errorf("lime: version %d at offset %d", v, off)
		}
		rg := Range{Start: binary.LittleEndian.Uint64(h[8:]), End: binary.LittleEndian.Uint64(h[16:])}
		if rg.End < rg.Start || (len(rs) > 0 && rg.Start <= last) {
			return nil, nil, fmt.Errorf("lime: range %#x-%#x out of order at offset %d", rg.Start, rg.End, off)
		}
		data := off + hdrLen
		if rg.Len() > uint64(size-data) || rg.Len() == 0 {
			return nil, nil, fmt.Errorf("lime: range %#x-%#x runs past the end of the file", rg.Start, rg.End)
		}
		rs = append(rs, rg)
		offs = append(offs, data)
		last = rg.End
		off = data + int64(rg.Len())
	}
	if len(rs) == 0 {
		return nil, nil, errors.New("lime: empty image")
	}
	return rs, offs, nil
}
