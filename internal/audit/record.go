package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Record is one audited event.
type Record struct {
	// Seq numbers records from 1 without gaps.
	Seq uint64 `json:"seq"`
	// Time is when the event happened, in UTC, to the nanosecond.
	Time time.Time `json:"time"`
	// User is who acted: a user name, or what was claimed on a failed login.
	User string `json:"user"`
	// Action is what was done, such as "vm.create" or [ActionLogin].
	Action string `json:"action"`
	// Object is what it was done to, such as "vm/web1"; empty when none.
	Object string `json:"object"`
	// Result is how it ended: [ResultOK], [ResultDenied] or [ResultFailed].
	Result string `json:"result"`
	// Source is where the request came from: a remote address or [SourceUnix].
	Source string `json:"source"`
	// Detail is free text: an error message, the reason for a denial.
	Detail string `json:"detail"`
	// Prev is the Hash of the record before, [GenesisPrev] for Seq 1.
	Prev string `json:"prev"`
	// Hash is the lowercase hex SHA-256 of the canonical encoding (see the
	// package documentation).
	Hash string `json:"hash"`
}

// Conventional values for Record fields. Result and Action are free strings;
// these are the ones Bulwark's own callers use.
const (
	ResultOK     = "ok"
	ResultDenied = "denied" // permission check refused the action
	ResultFailed = "failed" // allowed, attempted, and failed (or a failed login)

	ActionLogin = "login"

	SourceUnix = "unix" // the local control socket, which has no address
)

// Limits on stored fields, in bytes after escaping (see [Normalize]). They
// bound what one request can make the log store; longer values are cut and
// marked rather than refused, so that an oversized request is still recorded.
const (
	MaxFieldLen  = 1024 // User, Action, Object, Result, Source
	MaxDetailLen = 4096 // Detail
)

// GenesisPrev is the Prev of the first record: 64 ASCII zeros.
const GenesisPrev = "0000000000000000000000000000000000000000000000000000000000000000"

// recordDomain starts every canonical encoding, so that a record's hash can
// never be confused with the hash of anything else this project signs.
const recordDomain = "bulwark-audit-record-v1\n"

// ErrInvalidRecord is returned for a record the log refuses to store.
var ErrInvalidRecord = errors.New("audit: invalid record")

// Time bounds a record may carry: the range of int64 nanoseconds since the
// Unix epoch, which is how the log stores times.
var (
	minTime = time.Unix(0, -1<<63).UTC()
	maxTime = time.Unix(0, 1<<63-1).UTC()
)

// Normalize returns r as the log stores it: Time in UTC without a monotonic
// reading, and every text field escaped and bounded (see [MaxFieldLen]).
// Escaping makes each stored string printable, valid UTF-8 that reads
// unambiguously: a backslash becomes `\\`, a byte that is not UTF-8 and an
// ASCII control character become `\xNN`, and other Unicode control, bidi
// and line-separator characters become `\uNNNN`. A cut field ends in
// "...[truncated]". A zero Time is kept (the Log stamps it); Seq, Prev and
// Hash are cleared.
//
// It refuses a record without an Action, or with a Time outside the years
// 1678 to 2262, which cannot be stored.
func Normalize(r Record) (Record, error) {
	if r.Action == "" {
		return Record{}, fmt.Errorf("%w: empty action", ErrInvalidRecord)
	}
	if !r.Time.IsZero() && (r.Time.Before(minTime) || r.Time.After(maxTime)) {
		return Record{}, fmt.Errorf("%w: time %s out of range", ErrInvalidRecord, r.Time)
	}
	return Record{
		Time:   r.Time.UTC(), // UTC also strips the monotonic reading
		User:   sanitize(r.User, MaxFieldLen),
		Action: sanitize(r.Action, MaxFieldLen),
		Object: sanitize(r.Object, MaxFieldLen),
		Result: sanitize(r.Result, MaxFieldLen),
		Source: sanitize(r.Source, MaxFieldLen),
		Detail: sanitize(r.Detail, MaxDetailLen),
	}, nil
}

// AppendCanonical appends the canonical encoding of r (every field but
// Hash, as the package documentation specifies) to dst and returns it.
func AppendCanonical(dst []byte, r Record) []byte {
	dst = append(dst, recordDomain...)
	dst = binary.BigEndian.AppendUint64(dst, r.Seq)
	var tb [64]byte // RFC3339Nano is at most 35 bytes for years 0-9999
	dst = appendField(dst, r.Time.UTC().AppendFormat(tb[:0], time.RFC3339Nano))
	for _, f := range [...]string{r.User, r.Action, r.Object, r.Result, r.Source, r.Detail, r.Prev} {
		dst = appendField(dst, f)
	}
	return dst
}

func appendField[S ~string | ~[]byte](dst []byte, f S) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(f)))
	return append(dst, f...)
}

// HashRecord returns the hash r should carry: the lowercase hex SHA-256 of
// its canonical encoding.
func HashRecord(r Record) string {
	var sum [64]byte
	hashInto(nil, r, &sum)
	return string(sum[:])
}

// hashInto writes r's hex hash to out, using buf as scratch space for the
// encoding, and returns buf for reuse, so that a verifier walking many
// records does not allocate per record.
func hashInto(buf []byte, r Record, out *[64]byte) []byte {
	buf = AppendCanonical(buf[:0], r)
	sum := sha256.Sum256(buf)
	hex.Encode(out[:], sum[:])
	return buf
}

// Chain links records: it holds the sequence number and hash of the newest
// record. The zero Chain is an empty log, whose first record gets Seq 1 and
// Prev GenesisPrev.
type Chain struct {
	Seq  uint64 // of the newest record; 0 when there is none
	Hash string // of the newest record; "" when there is none
}

// Next returns r as the record that follows the chain's head, with Seq,
// Prev and Hash set and Time in UTC, and moves the head to it. Whatever Seq,
// Prev and Hash r had are replaced. Next does not escape or bound fields;
// callers storing untrusted input run it through [Normalize] first.
func (c *Chain) Next(r Record) Record {
	r.Seq = c.Seq + 1
	r.Prev = c.Hash
	if c.Seq == 0 {
		r.Prev = GenesisPrev
	}
	r.Time = r.Time.UTC()
	r.Hash = HashRecord(r)
	c.Seq, c.Hash = r.Seq, r.Hash
	return r
}
