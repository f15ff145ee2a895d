package audit

import (
	"cmp"
	"crypto/ed25519"
	"fmt"
	"slices"
)

// The kinds of problem found by comparing a log with its anchors.
const (
	// KindAnchorMismatch: records differ from what was anchored when they
	// were appended (rewritten, with or without recomputed hashes), or an
	// anchored record is absent. The problem's Seq is the first; the detail
	// names the range.
	KindAnchorMismatch Kind = "record differs from its anchor (rewritten)"
	// KindCutTail: anchors name records beyond the log's last one, so its
	// tail was cut, whether or not checkpoint rows went with it. The
	// problem's Seq is the first missing record.
	KindCutTail Kind = "anchored records missing at the end (tail cut)"
	// KindWiped: the log has no records, but anchors exist.
	KindWiped Kind = "log is empty but anchors exist (wiped)"
	// KindAnchorSig: an anchored checkpoint's signature does not verify; it
	// is not used for anything else.
	KindAnchorSig Kind = "anchored checkpoint signature invalid"
	// KindAnchorUnreadable: a line of an anchor file holds no anchor and is
	// not the torn end of a crash. The problem's Seq is 0.
	KindAnchorUnreadable Kind = "anchor line unreadable"
	// KindUnanchored: more records follow the newest anchor than a crash
	// can leave unanchored: they were appended while anchoring was off or
	// failing, or were forged while the daemon was down.
	KindUnanchored Kind = "records after the last anchor exceed the crash window"
)

// AnchorReport is the outcome of comparing a log with anchors.
type AnchorReport struct {
	// Anchors counts the anchors compared: readable lines, less checkpoints
	// whose signature failed.
	Anchors int `json:"anchors"`
	// Unanchored counts records after the newest anchor: protected by the
	// chain alone. After a crash up to the crash window of them is normal.
	Unanchored uint64    `json:"unanchored"`
	Problems   []Problem `json:"problems"`
}

// VerifyAnchors compares recs, the whole log in ascending Seq order, with
// the anchors in sets, and returns what differs. Checkpoint anchors whose
// signature by pub fails are reported and otherwise ignored. crashTail is
// how many records a crash may leave unanchored (the file sink's sync
// interval); more than that after the newest anchor is a problem. It does
// not check the chain itself: run VerifyRecords (or a Verifier) as well.
func VerifyAnchors(recs []Record, pub ed25519.PublicKey, sets []AnchorSet, crashTail uint64) AnchorReport {
	c := NewAnchorCheck(pub, sets, crashTail)
	for _, r := range recs {
		c.Add(r)
	}
	return c.Report()
}

// AnchorCheck compares a log with anchors one record at a time, in
// ascending Seq order, as a Verifier checks the chain; memory is
// proportional to the anchors. It is not safe for concurrent use.
type AnchorCheck struct {
	sets      []AnchorSet
	pins      []anchorPin // ascending seq; file order within a seq
	next      int         // first pin not yet reached by the records
	n         int         // records added
	head      uint64      // Seq of the last record added
	maxSeq    uint64      // newest anchored seq
	crashTail uint64
	settled   uint64 // records past it were appended while the check ran (0: none known)
	run       *mismatchRun
	problems  []Problem
	done      bool
}

// anchorPin is one usable anchor, with its source kept as indexes so that
// a file of a million head lines costs no strings beyond the hashes.
type anchorPin struct {
	seq        uint64
	hash       string
	set, line  int32
	checkpoint bool
}

// mismatchRun is a run of consecutive anchored seqs that disagree with the
// log, reported as one problem.
type mismatchRun struct {
	first, last uint64
	seqs        int // anchored seqs in the run
	index       int // position of the first record, -1 if absent
	pin         anchorPin
	got         string // the first record's hash; "" if absent
}

// NewAnchorCheck returns an AnchorCheck of records against the anchors in
// sets. Unreadable lines and checkpoint anchors whose signature by pub
// fails are reported at once.
func NewAnchorCheck(pub ed25519.PublicKey, sets []AnchorSet, crashTail uint64) *AnchorCheck {
	c := &AnchorCheck{sets: sets, crashTail: crashTail}
	for si, s := range sets {
		for _, b := range s.Bad {
			c.report(0, -1, KindAnchorUnreadable, "%s line %d: %s", s.Name, b.Line, b.Reason)
		}
		for _, a := range s.Anchors {
			p := anchorPin{seq: a.Seq, hash: a.Hash, set: int32(si), line: int32(a.Line), checkpoint: a.Type == AnchorCheckpoint}
			if p.checkpoint && !a.Checkpoint().ValidSig(pub) {
				c.report(a.Seq, -1, KindAnchorSig, "%s: checkpoint made at %s for hash %.16s", c.where(p), a.Time.UTC().Format("2006-01-02T15:04:05Z07:00"), a.Hash)
				continue
			}
			c.pins = append(c.pins, p)
			c.maxSeq = max(c.maxSeq, p.seq)
		}
	}
	slices.SortStableFunc(c.pins, func(a, b anchorPin) int { return cmp.Compare(a.seq, b.seq) })
	return c
}

// Add compares the next record with the anchors up to its Seq. Records
// must come in ascending Seq order; the Verifier reports those that do not,
// and Add skips them.
func (c *AnchorCheck) Add(r Record) {
	if c.n > 0 && r.Seq <= c.head {
		return
	}
	index := c.n
	c.n++
	c.head = r.Seq
	for c.next < len(c.pins) && c.pins[c.next].seq <= r.Seq {
		seq := c.pins[c.next].seq
		present := seq == r.Seq
		bad := -1 // the first pin at seq that disagrees
		for ; c.next < len(c.pins) && c.pins[c.next].seq == seq; c.next++ {
			if bad < 0 && (!present || c.pins[c.next].hash != r.Hash) {
				bad = c.next
			}
		}
		if bad < 0 {
			c.endRun()
			continue
		}
		got, at := "", -1
		if present {
			got, at = r.Hash, index
		}
		if c.run == nil {
			c.run = &mismatchRun{first: seq, index: at, pin: c.pins[bad], got: got}
		}
		c.run.last = seq
		c.run.seqs++
	}
}

// endRun reports the current run of mismatches, if any.
func (c *AnchorCheck) endRun() {
	m := c.run
	if m == nil {
		return
	}
	c.run = nil
	first := fmt.Sprintf("%s says %.16s, ", c.where(m.pin), m.pin.hash)
	if m.got == "" {
		first += "the record is absent"
	} else {
		first += fmt.Sprintf("the record has %.16s", m.got)
	}
	if m.seqs == 1 {
		c.report(m.first, m.index, KindAnchorMismatch, "%s", first)
		return
	}
	c.report(m.first, m.index, KindAnchorMismatch, "seq %d to %d (%d anchored records) differ from their anchors; first: %s",
		m.first, m.last, m.seqs, first)
}

// Report ends the check and returns its outcome, problems ordered by Seq.
// Calling it again returns the same result; Add must not follow it.
func (c *AnchorCheck) Report() AnchorReport {
	if !c.done {
		c.done = true
		c.endRun()
		c.finishTail()
		slices.SortStableFunc(c.problems, func(a, b Problem) int { return cmp.Compare(a.Seq, b.Seq) })
	}
	rep := AnchorReport{Anchors: len(c.pins), Problems: c.problems}
	if c.head > c.maxSeq {
		rep.Unanchored = c.head - c.maxSeq
	}
	return rep
}

// finishTail reports anchors beyond the last record (a cut tail, or a
// wipe when there are no records) and an unanchored tail longer than a
// crash leaves.
func (c *AnchorCheck) finishTail() {
	beyond := c.pins[c.next:]
	if len(beyond) > 0 {
		last := beyond[len(beyond)-1]
		cps := 0
		for _, p := range beyond {
			if p.checkpoint {
				cps++
			}
		}
		if c.n == 0 {
			c.report(1, -1, KindWiped, "the log has no records, but %d anchor(s) name seq %d to %d (%d of them signed checkpoints); newest: %s",
				len(beyond), beyond[0].seq, last.seq, cps, c.where(last))
		} else {
			c.report(c.head+1, -1, KindCutTail, "log ends at seq %d, but %d anchor(s) name records up to seq %d (%d of them signed checkpoints); newest: %s",
				c.head, len(beyond), last.seq, cps, c.where(last))
		}
	}
	end := c.head
	if c.settled > 0 && c.settled < end {
		end = c.settled // later records were appended after the anchors were read
	}
	if len(c.pins) > 0 && end > c.maxSeq && end-c.maxSeq > c.crashTail {
		c.report(c.maxSeq+1, -1, KindUnanchored, "seq %d to %d (%d records) follow the newest anchor; a crash leaves at most %d",
			c.maxSeq+1, end, end-c.maxSeq, c.crashTail)
	}
}

// Settled tells the check that every record up to seq had its anchors
// written before the anchor files were read (the live head, taken under
// the append lock that also writes anchors): records after it are appends
// in flight, not an unanchored tail.
func (c *AnchorCheck) Settled(seq uint64) { c.settled = seq }

func (c *AnchorCheck) where(p anchorPin) string {
	return fmt.Sprintf("%s:%d", c.sets[p.set].Name, p.line)
}

func (c *AnchorCheck) report(seq uint64, index int, kind Kind, format string, args ...any) {
	c.problems = append(c.problems, Problem{Seq: seq, Index: index, Kind: kind, Detail: fmt.Sprintf(format, args...)})
}
