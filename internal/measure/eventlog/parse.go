package eventlog

import (
	"encoding/binary"
	"fmt"
)

// reader is a bounds-checked cursor over a log. Every read reports
// ErrTruncated instead of panicking when the log ends early.
type reader struct {
	b   []byte
	off int
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) bytes(n int, what string) ([]byte, error) {
	if n < 0 || n > r.remaining() {
		return nil, fmt.Errorf("%w: %s needs %d bytes, %d left", ErrTruncated, what, n, r.remaining())
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p, nil
}

func (r *reader) u8(what string) (uint8, error) {
	p, err := r.bytes(1, what)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

func (r *reader) u16(what string) (uint16, error) {
	p, err := r.bytes(2, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(p), nil
}

func (r *reader) u32(what string) (uint32, error) {
	p, err := r.bytes(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p), nil
}

// algSize is one entry of the Spec ID header's algorithm list.
type algSize struct {
	id   uint16
	size int
}

// Parse parses a whole log: the Spec ID header, then TCG_PCR_EVENT2 records.
// It keeps each record's SHA-256 digest; digests of other banks the header
// declares are checked for size and dropped. Returned events do not alias
// raw. Errors are *ParseError values naming the record.
func Parse(raw []byte) ([]Event, error) {
	r := &reader{b: raw}
	algs, err := parseHeader(r)
	if err != nil {
		return nil, &ParseError{Event: -1, Offset: 0, Err: err}
	}
	var events []Event
	for i := 0; r.remaining() > 0; i++ {
		start := r.off
		if i >= MaxEvents {
			return nil, &ParseError{Event: i, Offset: start, Err: fmt.Errorf("%w: more than %d", ErrTooManyEvents, MaxEvents)}
		}
		e, err := parseRecord(r, algs)
		if err != nil {
			return nil, &ParseError{Event: i, Offset: start, Err: err}
		}
		events = append(events, e)
	}
	return events, nil
}

// parseHeader reads the TCG_PCR_EVENT carrying the Spec ID event and returns
// the algorithms it declares. SHA-256 must be one of them.
func parseHeader(r *reader) ([]algSize, error) {
	pcr, err := r.u32("pcrIndex")
	if err != nil {
		return nil, err
	}
	typ, err := r.u32("eventType")
	if err != nil {
		return nil, err
	}
	if pcr != 0 || EventType(typ) != EventNoAction {
		return nil, fmt.Errorf("%w: first record is PCR %d type %v, want PCR 0 EV_NO_ACTION (not a crypto-agile log)", ErrBadHeader, pcr, EventType(typ))
	}
	if _, err := r.bytes(20, "SHA-1 digest"); err != nil {
		return nil, err
	}
	size, err := r.u32("eventSize")
	if err != nil {
		return nil, err
	}
	if size > MaxParsedEventDataSize {
		return nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrEventTooLarge, size, MaxParsedEventDataSize)
	}
	data, err := r.bytes(int(size), "Spec ID event")
	if err != nil {
		return nil, err
	}
	return parseSpecID(&reader{b: data})
}

// parseSpecID reads a TCG_EfiSpecIDEvent that fills all of r.
func parseSpecID(r *reader) ([]algSize, error) {
	sig, err := r.bytes(len(specIDSignature), "signature")
	if err != nil {
		return nil, err
	}
	if string(sig) != string(specIDSignature[:]) {
		return nil, fmt.Errorf("%w: signature %q, want %q", ErrBadHeader, sig, specIDSignature[:])
	}
	if _, err := r.u32("platformClass"); err != nil {
		return nil, err
	}
	fixed, err := r.bytes(4, "versions")
	if err != nil {
		return nil, err
	}
	minor, major, uintn := fixed[0], fixed[1], fixed[3] // fixed[2], the errata, is not checked
	if major != specVersionMajor || minor != specVersionMinor {
		return nil, fmt.Errorf("%w: spec version %d.%d, want 2.0", ErrBadHeader, major, minor)
	}
	if uintn != 1 && uintn != 2 {
		return nil, fmt.Errorf("%w: uintnSize %d, want 1 or 2", ErrBadHeader, uintn)
	}
	n, err := r.u32("numberOfAlgorithms")
	if err != nil {
		return nil, err
	}
	if n == 0 || n > uint32(len(knownDigestSizes)) {
		return nil, fmt.Errorf("%w: numberOfAlgorithms %d, want 1..%d", ErrBadHeader, n, len(knownDigestSizes))
	}
	algs := make([]algSize, 0, n)
	haveSHA256 := false
	for range n {
		id, err := r.u16("algorithmId")
		if err != nil {
			return nil, err
		}
		size, err := r.u16("digestSize")
		if err != nil {
			return nil, err
		}
		want, ok := knownDigestSizes[id]
		if !ok {
			return nil, fmt.Errorf("%w: 0x%04x in header", ErrUnknownAlgorithm, id)
		}
		if int(size) != want {
			return nil, fmt.Errorf("%w: algorithm 0x%04x declared %d bytes, is %d", ErrDigestSize, id, size, want)
		}
		for _, a := range algs {
			if a.id == id {
				return nil, fmt.Errorf("%w: algorithm 0x%04x declared twice", ErrBadHeader, id)
			}
		}
		haveSHA256 = haveSHA256 || id == algSHA256
		algs = append(algs, algSize{id: id, size: want})
	}
	if !haveSHA256 {
		return nil, fmt.Errorf("%w: no SHA-256 bank declared", ErrBadHeader)
	}
	vendor, err := r.u8("vendorInfoSize")
	if err != nil {
		return nil, err
	}
	if _, err := r.bytes(int(vendor), "vendorInfo"); err != nil {
		return nil, err
	}
	if r.remaining() != 0 {
		return nil, fmt.Errorf("%w: %d bytes after vendorInfo", ErrBadHeader, r.remaining())
	}
	return algs, nil
}

// parseRecord reads one TCG_PCR_EVENT2. It must carry exactly one digest per
// algorithm the header declared, as the profile requires.
func parseRecord(r *reader, algs []algSize) (Event, error) {
	var e Event
	pcr, err := r.u32("pcrIndex")
	if err != nil {
		return e, err
	}
	if pcr >= NumPCRs {
		return e, fmt.Errorf("%w: %d (a TPM has %d)", ErrBadPCR, pcr, NumPCRs)
	}
	typ, err := r.u32("eventType")
	if err != nil {
		return e, err
	}
	e.PCR, e.Type = pcr, EventType(typ)
	count, err := r.u32("digest count")
	if err != nil {
		return e, err
	}
	if count != uint32(len(algs)) {
		return e, fmt.Errorf("%w: %d digests, the header declares %d algorithms", ErrInvalidEvent, count, len(algs))
	}
	var seen uint32 // bit i: algs[i] already read
	for range count {
		id, err := r.u16("digest algorithm")
		if err != nil {
			return e, err
		}
		i := algIndex(algs, id)
		if i < 0 {
			return e, fmt.Errorf("%w: 0x%04x not declared in header", ErrUnknownAlgorithm, id)
		}
		if seen&(1<<i) != 0 {
			return e, fmt.Errorf("%w: algorithm 0x%04x digest given twice", ErrInvalidEvent, id)
		}
		seen |= 1 << i
		d, err := r.bytes(algs[i].size, "digest")
		if err != nil {
			return e, err
		}
		if id == algSHA256 {
			copy(e.Digest[:], d)
		}
	}
	size, err := r.u32("eventSize")
	if err != nil {
		return e, err
	}
	if size > MaxParsedEventDataSize {
		return e, fmt.Errorf("%w: %d bytes (at most %d)", ErrEventTooLarge, size, MaxParsedEventDataSize)
	}
	data, err := r.bytes(int(size), "event data")
	if err != nil {
		return e, err
	}
	e.Data = append([]byte(nil), data...)
	return e, nil
}

func algIndex(algs []algSize, id uint16) int {
	for i, a := range algs {
		if a.id == id {
			return i
		}
	}
	return -1
}
