package prefilter

import "slices"

// MaxStreamHits bounds the body patterns one StreamHits keeps; past it the
// hits are given up and the body is scanned as a buffer of its own.
const MaxStreamHits = 4096

// StreamHits gathers, for one message body sent as is, the body patterns
// (see StreamGroup) that the stream scans found while the body was
// arriving, and which stream bytes those scans covered. Offsets count a
// direction's stream bytes (gaps included) from its start.
//
// A scan counts for the run [from, to) of new bytes it was given when it
// also covered the MaxPatternLen-1 bytes before from (or the stream's
// start): then every pattern occurrence ending in the run is found. If
// the runs added since the first are contiguous, every occurrence inside
// them is found, so for a body lying within them, SelectStream over Hits
// is a superset of scanning the body itself. A run may overlap the
// previous ones (the same bytes scanned again).
//
// The zero value is empty. It is not safe for concurrent use.
type StreamHits struct {
	ids      []int32
	from, to int64
	started  bool
	// broken: a run left a hole after the previous ones, or the ids
	// overflowed MaxStreamHits.
	broken bool
}

// Add records a scan of the new bytes [from, to) that found ids (the
// StreamPatterns result); only the patterns that select a body rule are
// kept.
func (h *StreamHits) Add(p *Prefilter, from, to int64, ids []int32) {
	if h.broken {
		return
	}
	switch {
	case !h.started:
		h.started, h.from, h.to = true, from, to
	case from > h.to || from < h.from:
		h.broken = true
		h.ids = nil
		return
	}
	h.to = max(h.to, to)
	for _, id := range ids {
		if p.bodyPat[id] {
			h.ids = append(h.ids, id)
		}
	}
	if len(h.ids) > MaxStreamHits {
		slices.Sort(h.ids)
		h.ids = slices.Compact(h.ids)
		if len(h.ids) > MaxStreamHits {
			h.broken = true
			h.ids = nil
		}
	}
}

// Covers reports whether the scans recorded cover the stream bytes
// [from, to) contiguously; then Hits may stand for a scan of them.
func (h *StreamHits) Covers(from, to int64) bool {
	return h.started && !h.broken && h.from <= from && to <= h.to
}

// Hits returns the body patterns found, with repeats; the slice is the
// StreamHits' own.
func (h *StreamHits) Hits() []int32 { return h.ids }
