package eventlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"unicode/utf8"
)

// specIDSignature opens a TCG_EfiSpecIDEvent ("Spec ID Event03\0").
var specIDSignature = [16]byte{'S', 'p', 'e', 'c', ' ', 'I', 'D', ' ', 'E', 'v', 'e', 'n', 't', '0', '3', 0}

// Spec ID header values Bulwark writes (see the package doc).
const (
	platformClassClient = 0
	specVersionMinor    = 0
	specVersionMajor    = 2
	specErrata          = 2
	uintnSize64         = 2
)

// header returns the log's first record: a TCG_PCR_EVENT of type
// EV_NO_ACTION carrying the Spec ID event that declares the SHA-256 bank.
func header() []byte {
	var spec []byte
	spec = append(spec, specIDSignature[:]...)
	spec = binary.LittleEndian.AppendUint32(spec, platformClassClient)
	spec = append(spec, specVersionMinor, specVersionMajor, specErrata, uintnSize64)
	spec = binary.LittleEndian.AppendUint32(spec, 1) // numberOfAlgorithms
	spec = binary.LittleEndian.AppendUint16(spec, algSHA256)
	spec = binary.LittleEndian.AppendUint16(spec, uint16(knownDigestSizes[algSHA256]))
	spec = append(spec, 0) // vendorInfoSize

	var b []byte
	b = binary.LittleEndian.AppendUint32(b, 0) // pcrIndex
	b = binary.LittleEndian.AppendUint32(b, uint32(EventNoAction))
	b = append(b, make([]byte, 20)...) // SHA-1 digest: zero for this event
	b = binary.LittleEndian.AppendUint32(b, uint32(len(spec)))
	return append(b, spec...)
}

// checkWritable says why e may not be written, or nil.
func checkWritable(e Event) error {
	switch {
	case e.PCR >= NumPCRs:
		return fmt.Errorf("%w: %d (a TPM has %d)", ErrBadPCR, e.PCR, NumPCRs)
	case e.Type == EventNoAction:
		// EV_NO_ACTION extends nothing; a measurement written with it
		// would be in the log but not in the PCR.
		return fmt.Errorf("%w: type %v extends nothing", ErrInvalidEvent, e.Type)
	case len(e.Data) > MaxEventDataSize:
		return fmt.Errorf("%w: %d bytes (at most %d)", ErrEventTooLarge, len(e.Data), MaxEventDataSize)
	case !utf8.Valid(e.Data):
		return fmt.Errorf("%w: event data is not UTF-8", ErrInvalidEvent)
	}
	return nil
}

// appendRecord appends e as a TCG_PCR_EVENT2 with one SHA-256 digest.
func appendRecord(b []byte, e Event) []byte {
	b = binary.LittleEndian.AppendUint32(b, e.PCR)
	b = binary.LittleEndian.AppendUint32(b, uint32(e.Type))
	b = binary.LittleEndian.AppendUint32(b, 1) // TPML_DIGEST_VALUES.count
	b = binary.LittleEndian.AppendUint16(b, algSHA256)
	b = append(b, e.Digest[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Data)))
	return append(b, e.Data...)
}

// Writer appends records to a log. It is not safe for concurrent use.
type Writer struct {
	w   io.Writer
	err error // sticky: after a failed write the stream may hold a partial record
	buf []byte
}

// NewWriter writes the Spec ID header to w and returns a Writer that appends
// records after it.
func NewWriter(w io.Writer) (*Writer, error) {
	lw := &Writer{w: w}
	if _, err := w.Write(header()); err != nil {
		return nil, fmt.Errorf("event log: write header: %w", err)
	}
	return lw, nil
}

// Append writes e as one record. It refuses events the package would not
// write (see checkWritable) without touching the stream; after a write error
// every later call fails, since the stream may end in a partial record.
func (w *Writer) Append(e Event) error {
	if w.err != nil {
		return w.err
	}
	if err := checkWritable(e); err != nil {
		return fmt.Errorf("event log: append to PCR %d: %w", e.PCR, err)
	}
	w.buf = appendRecord(w.buf[:0], e)
	if _, err := w.w.Write(w.buf); err != nil {
		w.err = fmt.Errorf("event log: write event: %w", err)
		return w.err
	}
	return nil
}

// Marshal returns a whole log holding events, in order.
func Marshal(events []Event) ([]byte, error) {
	var b bytes.Buffer
	w, err := NewWriter(&b)
	if err != nil {
		return nil, err
	}
	for i, e := range events {
		if err := w.Append(e); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
	}
	return b.Bytes(), nil
}

// NewAppender returns a Writer that appends records to w, which already
// holds a log (header included): a log kept across daemon restarts.
func NewAppender(w io.Writer) *Writer { return &Writer{w: w} }
