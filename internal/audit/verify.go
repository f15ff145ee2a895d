package audit

import (
	"cmp"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Kind says what is wrong with a log.
type Kind string

// The kinds of problem a verifier reports.
const (
	// KindEdited: a record does not match its own hash.
	KindEdited Kind = "hash mismatch (edited)"
	// KindPrevMismatch: a record's Prev is not the hash of the record before
	// it, so something between them was removed, reordered or rewritten.
	KindPrevMismatch Kind = "prev mismatch (removed or reordered)"
	// KindGap: sequence numbers are missing; the problem's Seq is the first.
	KindGap Kind = "sequence gap (removed)"
	// KindOutOfOrder: a record comes after one with a higher Seq.
	KindOutOfOrder Kind = "sequence out of order"
	// KindDuplicate: a second record with the same Seq.
	KindDuplicate Kind = "duplicate sequence"
	// KindCheckpointSig: a checkpoint's signature does not verify, so it is
	// forged or altered; it is not used for anything else.
	KindCheckpointSig Kind = "checkpoint signature invalid"
	// KindCheckpointMismatch: a validly signed checkpoint names a hash that
	// the record with its Seq does not have, or a record that is absent.
	KindCheckpointMismatch Kind = "checkpoint does not match record"
	// KindTruncated: the log ends before a record a checkpoint covers; the
	// problem's Seq is the first missing record.
	KindTruncated Kind = "records missing after last checkpoint"
)

// Problem is one thing wrong with a log, and where.
type Problem struct {
	Seq uint64 `json:"seq"` // the record's sequence number
	// Index is the record's position (from 0) in the input, or -1 when the
	// problem concerns a record that is absent or a checkpoint alone.
	Index  int    `json:"index"`
	Kind   Kind   `json:"kind"`
	Detail string `json:"detail"`
}

func (p Problem) String() string {
	s := "anchors" // Seq 0: a problem with an anchor file, not a record
	if p.Seq > 0 {
		s = fmt.Sprintf("seq %d", p.Seq)
	}
	if p.Index >= 0 {
		s += fmt.Sprintf(" (position %d)", p.Index)
	}
	s += ": " + string(p.Kind)
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// VerifyRecords checks recs, in the order given, against their hashes,
// their chain and the checkpoints, and returns every problem found, ordered
// by Seq; none means the log is intact. Checkpoints whose signature by pub
// does not verify are reported and otherwise ignored. recs must be the whole
// log from Seq 1: a filtered listing shows up as gaps.
//
// Records out of order are reported where they stand and then checked in
// their proper place, so a moved line in an export is named once rather
// than as a cascade.
func VerifyRecords(recs []Record, pub ed25519.PublicKey, checkpoints []Checkpoint) []Problem {
	v := NewVerifier(pub, checkpoints)
	sorted := true
	for i := 1; i < len(recs); i++ {
		if recs[i].Seq < recs[i-1].Seq {
			sorted = false
			v.report(recs[i].Seq, i, KindOutOfOrder, "after seq %d", recs[i-1].Seq)
		}
	}
	if sorted {
		for i, r := range recs {
			v.add(r, i)
		}
		return v.Problems()
	}
	order := make([]int, len(recs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(recs[a].Seq, recs[b].Seq) })
	for _, i := range order {
		v.add(recs[i], i)
	}
	return v.Problems()
}

// Verifier checks a log one record at a time, in ascending Seq order, so
// that a log of any length is verified in memory proportional to its
// checkpoints. Create one with NewVerifier, feed it with Add and read the
// verdict with Problems. It is not safe for concurrent use.
type Verifier struct {
	cps      []pin // validly signed checkpoints, ascending Seq
	next     int   // first entry of cps not yet reached by the records
	n        int   // records added so far
	last     Record
	have     bool // last is set
	buf      []byte
	problems []Problem
	done     bool
}

// pin is what a checkpoint asserts: record seq has hash hash. Trusted pins
// come from this process's own memory and carry no signature.
type pin struct {
	seq     uint64
	hash    string
	trusted bool
	made    time.Time
}

// NewVerifier returns a Verifier that checks records against checkpoints,
// which may come in any order; those whose signature by pub does not verify
// are reported at once.
func NewVerifier(pub ed25519.PublicKey, checkpoints []Checkpoint) *Verifier {
	v := &Verifier{buf: make([]byte, 0, 512)}
	for _, c := range checkpoints {
		if !c.ValidSig(pub) {
			v.report(c.Seq, -1, KindCheckpointSig, "checkpoint made at %s for hash %.16s", c.Time.UTC().Format(time.RFC3339Nano), c.Hash)
			continue
		}
		v.cps = append(v.cps, pin{seq: c.Seq, hash: c.Hash, made: c.Time})
	}
	slices.SortStableFunc(v.cps, func(a, b pin) int { return cmp.Compare(a.seq, b.seq) })
	return v
}

// expectHead adds an unsigned pin the caller vouches for: the head of the
// log as this process last wrote it. It must come before the first Add.
func (v *Verifier) expectHead(seq uint64, hash string) {
	if seq == 0 {
		return
	}
	p := pin{seq: seq, hash: hash, trusted: true}
	i, _ := slices.BinarySearchFunc(v.cps, seq, func(a pin, s uint64) int { return cmp.Compare(a.seq, s) })
	v.cps = slices.Insert(v.cps, i, p)
}

// Add checks the next record. Records must come in ascending Seq order; one
// that does not is reported as out of order and otherwise skipped.
func (v *Verifier) Add(r Record) {
	v.add(r, v.n)
}

func (v *Verifier) add(r Record, index int) {
	v.n++
	if v.have && r.Seq < v.last.Seq {
		v.report(r.Seq, index, KindOutOfOrder, "after seq %d", v.last.Seq)
		return
	}
	if v.have && r.Seq == v.last.Seq {
		what := "its content differs from the first"
		if r == v.last {
			what = "an exact copy of the first"
		}
		v.report(r.Seq, index, KindDuplicate, "%s", what)
		return
	}
	want := v.last.Seq + 1 // 1 for the first record
	gap := r.Seq > want
	if gap {
		if want == r.Seq-1 {
			v.report(want, -1, KindGap, "seq %d missing before seq %d", want, r.Seq)
		} else {
			v.report(want, -1, KindGap, "seq %d to %d missing before seq %d", want, r.Seq-1, r.Seq)
		}
	}
	var sum [64]byte
	v.buf = hashInto(v.buf, r, &sum)
	if string(sum[:]) != r.Hash { // the comparison does not allocate
		got := string(sum[:]) // a copy, so that sum stays on the stack
		v.report(r.Seq, index, KindEdited, "stored hash %.16s, content hashes to %.16s", r.Hash, got)
	}
	// After a gap the broken link is the gap's doing; it is not reported twice.
	if !gap {
		wantPrev := GenesisPrev
		if v.have {
			wantPrev = v.last.Hash
		}
		if r.Prev != wantPrev {
			v.report(r.Seq, index, KindPrevMismatch, "prev %.16s, but the record before hashes to %.16s", r.Prev, wantPrev)
		}
	}
	for ; v.next < len(v.cps) && v.cps[v.next].seq <= r.Seq; v.next++ {
		p := v.cps[v.next]
		switch {
		case p.seq < r.Seq:
			v.report(p.seq, -1, KindCheckpointMismatch, "%s names a record that is absent", p.describe())
		case p.hash != r.Hash:
			v.report(p.seq, index, KindCheckpointMismatch, "%s says hash %.16s, record has %.16s", p.describe(), p.hash, r.Hash)
		}
	}
	v.last, v.have = r, true
}

// Problems ends the check and returns every problem found, ordered by Seq.
// Calling it again returns the same result; Add must not follow it.
func (v *Verifier) Problems() []Problem {
	if v.done {
		return v.problems
	}
	v.done = true
	end := v.last.Seq // 0 for an empty log
	var signed, trusted uint64
	for _, p := range v.cps[v.next:] { // all beyond the last record
		if p.trusted {
			trusted = max(trusted, p.seq)
		} else {
			signed = max(signed, p.seq)
		}
	}
	if signed > 0 {
		v.report(end+1, -1, KindTruncated, "log ends at seq %d, but a signed checkpoint covers seq %d", end, signed)
	}
	if trusted > 0 {
		v.report(end+1, -1, KindTruncated, "log ends at seq %d, but this process appended up to seq %d", end, trusted)
	}
	slices.SortStableFunc(v.problems, func(a, b Problem) int { return cmp.Compare(a.Seq, b.Seq) })
	return v.problems
}

func (p pin) describe() string {
	if p.trusted {
		return "the head this process appended"
	}
	return "checkpoint made at " + p.made.UTC().Format(time.RFC3339Nano)
}

func (v *Verifier) report(seq uint64, index int, kind Kind, format string, args ...any) {
	v.problems = append(v.problems, Problem{Seq: seq, Index: index, Kind: kind, Detail: fmt.Sprintf(format, args...)})
}

// ActionDamaged is the action of the record a daemon appends when it runs
// on a log that failed verification when opened (see DamageRecord).
const ActionDamaged = "audit.damaged"

// DamageRecord is the record that says the log was found damaged and is
// being run on regardless: it names the problems (as many as fit in
// MaxDetailLen) so that the chain itself carries the admission.
func DamageRecord(problems []Problem) Record {
	var b strings.Builder
	fmt.Fprintf(&b, "log failed verification when opened, %d problem(s); no checkpoints are signed while it runs", len(problems))
	for _, p := range problems {
		if b.Len() > MaxDetailLen {
			break
		}
		b.WriteString("; ")
		b.WriteString(p.String())
	}
	return Record{User: "bulwark", Action: ActionDamaged, Object: "/audit", Result: ResultFailed,
		Source: "daemon", Detail: b.String()}
}
