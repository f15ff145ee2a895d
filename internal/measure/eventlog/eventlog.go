package eventlog

import (
	"crypto/sha256"
	"errors"
	"fmt"
)

// EventType is the TCG eventType of a record.
type EventType uint32

// Event types from the PC Client Platform Firmware Profile that this package
// names. Others may appear in a parsed log and are kept as numbers.
const (
	EventNoAction    EventType = 0x03 // EV_NO_ACTION: extends nothing
	EventSeparator   EventType = 0x04 // EV_SEPARATOR
	EventTag         EventType = 0x06 // EV_EVENT_TAG
	EventCompactHash EventType = 0x0C // EV_COMPACT_HASH
	EventIPL         EventType = 0x0D // EV_IPL: what Bulwark writes
)

// String returns the spec name of known types ("EV_IPL"), else the number.
func (t EventType) String() string {
	switch t {
	case EventNoAction:
		return "EV_NO_ACTION"
	case EventSeparator:
		return "EV_SEPARATOR"
	case EventTag:
		return "EV_EVENT_TAG"
	case EventCompactHash:
		return "EV_COMPACT_HASH"
	case EventIPL:
		return "EV_IPL"
	}
	return fmt.Sprintf("0x%08x", uint32(t))
}

// TPM_ALG_ID values and their digest sizes (TPM 2.0 Part 2, table 9).
const (
	algSHA1   uint16 = 0x0004
	algSHA256 uint16 = 0x000B
	algSHA384 uint16 = 0x000C
	algSHA512 uint16 = 0x000D
	algSM3256 uint16 = 0x0012
)

// knownDigestSizes are the algorithms a parsed log may declare. A log
// declaring anything else is refused: the reader could not tell where its
// digests end.
var knownDigestSizes = map[uint16]int{
	algSHA1:   20,
	algSHA256: sha256.Size,
	algSHA384: 48,
	algSHA512: 64,
	algSM3256: 32,
}

// Implementation limits.
const (
	// MaxEventDataSize bounds the event data the writer accepts: a short
	// description of what was measured, not the measured thing.
	MaxEventDataSize = 1 << 10
	// MaxParsedEventDataSize bounds the event data of one parsed record.
	MaxParsedEventDataSize = 1 << 20
	// MaxEvents bounds the records of a parsed log, header excluded.
	MaxEvents = 100_000
	// NumPCRs is the number of PCRs of a PC Client TPM; indexes are 0..23.
	NumPCRs = 24
)

// Event is one measurement: Digest (SHA-256 of the measured thing) was
// extended into PCR, and Data describes what it was.
type Event struct {
	PCR    uint32
	Type   EventType
	Digest [sha256.Size]byte
	Data   []byte
}

// Errors a caller may branch on; a *ParseError wraps one of them.
var (
	ErrTruncated        = errors.New("truncated")
	ErrBadHeader        = errors.New("bad Spec ID header")
	ErrUnknownAlgorithm = errors.New("unknown digest algorithm")
	ErrDigestSize       = errors.New("wrong digest size")
	ErrEventTooLarge    = errors.New("event data too large")
	ErrTooManyEvents    = errors.New("too many events")
	ErrBadPCR           = errors.New("PCR index out of range")
	ErrInvalidEvent     = errors.New("invalid event")
)

// ParseError reports where a log failed to parse.
type ParseError struct {
	// Event is the 0-based index of the failing record among the records
	// after the header (the index it would have had in Parse's result), or
	// -1 for the Spec ID header.
	Event int
	// Offset is the byte offset in the log where the failing record starts.
	Offset int
	Err    error
}

func (e *ParseError) Error() string {
	if e.Event < 0 {
		return fmt.Sprintf("event log: Spec ID header at offset %d: %v", e.Offset, e.Err)
	}
	return fmt.Sprintf("event log: event %d at offset %d: %v", e.Event, e.Offset, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }
