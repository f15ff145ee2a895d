package mem

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrNotFound is returned by Scan when the pattern does not occur.
var ErrNotFound = errors.New("mem: pattern not found")

// MaxScanChunk bounds the chunk size of Scan and ScanEach (and so their
// buffer).
const MaxScanChunk = 64 << 20

// Scan returns the guest-physical address of the first occurrence of
// pattern that starts at or after from and ends at or before limit (limit
// is capped at p.Size()), or ErrNotFound. See ScanEach for how it reads.
func Scan(p Physical, pattern []byte, from, limit uint64, chunk int) (uint64, error) {
	var at uint64
	found := false
	err := ScanEach(p, pattern, from, limit, chunk, func(gpa uint64) bool {
		at, found = gpa, true
		return false
	})
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, ErrNotFound
	}
	return at, nil
}

// ScanEach calls fn with the guest-physical address of each occurrence of
// pattern in [from, limit) (limit capped at p.Size()), in increasing
// order, until fn returns false. It reads chunk bytes at a time, each
// chunk overlapping the one before by len(pattern)-1 bytes so that a match
// across a chunk boundary is found (and found once), and skips the holes
// between RAM regions (an occurrence never spans a hole). The guest may
// change memory while it is scanned, so a match is only a candidate:
// callers re-read and validate what they find, and bound how many
// candidates they accept, since the guest can plant any number.
//
// chunk must be at least len(pattern) and at most MaxScanChunk; a few
// hundred KiB to a few MiB keeps the number of reads low. The reads are
// bounded by (limit-from)/(chunk-len(pattern)+1)+1 per region.
func ScanEach(p Physical, pattern []byte, from, limit uint64, chunk int, fn func(gpa uint64) bool) error {
	if len(pattern) == 0 {
		return fmt.Errorf("mem: scan for an empty pattern")
	}
	if chunk < len(pattern) || chunk > MaxScanChunk {
		return fmt.Errorf("mem: scan chunk %d outside [%d, %d]", chunk, len(pattern), MaxScanChunk)
	}
	limit = min(limit, p.Size())
	if from >= limit {
		return nil
	}
	regions := RegionsOf(p)
	if len(regions) > MaxRanges {
		return fmt.Errorf("mem: %d RAM regions, more than %d", len(regions), MaxRanges)
	}
	buf := make([]byte, chunk)
	step := uint64(chunk - len(pattern) + 1)
	for _, rg := range regions {
		start, end := max(from, rg.GPA), min(limit, rg.End())
		if start >= end || end-start < uint64(len(pattern)) {
			continue
		}
		// pos+chunk <= end whenever another round follows, so pos never
		// overflows.
		for pos := start; end-pos >= uint64(len(pattern)); pos += step {
			n := min(uint64(chunk), end-pos)
			b := buf[:n]
			if err := p.ReadPhys(b, pos); err != nil {
				return fmt.Errorf("mem: scan: %w", err)
			}
			// A match here starts before step (it ends inside the chunk),
			// and the next chunk starts at step: each is reported once.
			// At most len(b) rounds.
			for off := 0; off < len(b); {
				i := bytes.Index(b[off:], pattern)
				if i < 0 {
					break
				}
				at := off + i
				if !fn(pos + uint64(at)) {
					return nil
				}
				off = at + 1
			}
			if n < uint64(chunk) {
				break // the last, short chunk of the region
			}
		}
	}
	return nil
}
