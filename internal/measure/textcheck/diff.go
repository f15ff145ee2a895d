package textcheck

import (
	"bytes"
	"sort"
)

// Reporting limits.
const (
	// MaxReported is the number of mismatches a RuntimeCheck lists; the
	// rest are counted (Result.Omitted).
	MaxReported = 16
	// MaxHexBytes bounds Expected and Found in a TextMismatch.
	MaxHexBytes = 32
	// mergeGap joins two differing runs separated by fewer equal bytes
	// than this into one: a patched instruction often keeps a byte or two
	// of the original.
	mergeGap = 8
)

// differ finds runs of differing bytes in a stream of chunks that are
// contiguous in file offsets. It does no I/O.
type differ struct {
	open       bool
	start, end uint64 // the current run, [start, end)
	runs       []span // the first MaxReported runs
	total      int    // all runs
	masked     int64  // bytes skipped because a relocation writes them
}

// feed compares want (the file's bytes) with got (memory's) at file offset
// base. Bytes inside masks (sorted, disjoint) are not compared.
func (d *differ) feed(base uint64, want, got []byte, masks []span) {
	end := base + uint64(len(want))
	// The masks that overlap this chunk.
	i := sort.Search(len(masks), func(i int) bool { return masks[i].end > base })
	j := i
	for j < len(masks) && masks[j].off < end {
		d.masked += int64(min(masks[j].end, end) - max(masks[j].off, base))
		j++
	}
	// Fast path: a clean chunk, the common case, is one memcmp.
	if bytes.Equal(want, got) {
		return
	}
	ms := masks[i:j]
	for k := range want {
		p := base + uint64(k)
		for len(ms) > 0 && ms[0].end <= p {
			ms = ms[1:]
		}
		if len(ms) > 0 && ms[0].off <= p {
			continue
		}
		if want[k] == got[k] {
			continue
		}
		if d.open && p-d.end < mergeGap {
			d.end = p + 1
			continue
		}
		d.close()
		d.open, d.start, d.end = true, p, p+1
	}
}

// close ends the current run; call it at the end of each mapping.
func (d *differ) close() {
	if !d.open {
		return
	}
	d.open = false
	d.total++
	if len(d.runs) < MaxReported {
		d.runs = append(d.runs, span{d.start, d.end})
	}
}
