// Package dns parses DNS messages for the IPS: the header, the question
// section and the owner names of the answer section, enough to produce
// Suricata's dns.query buffer (the question name, labels joined by '.',
// no trailing dot, label bytes as sent). It does no I/O and bounds every
// loop: name length, label count and compression-pointer hops.
package dns

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Limits. They match what Suricata's DNS parser accepts.
const (
	// MaxNameLen bounds a decoded name (dotted form); longer names are
	// cut there and flagged Truncated, as Suricata does at 1025 bytes.
	MaxNameLen = 1025
	// maxNameSteps bounds labels plus pointer hops while decoding one
	// name; it stops compression loops (Suricata stops at 255).
	maxNameSteps = 255
	// MaxQuestions and MaxAnswers bound the entries decoded per message;
	// the counts in the header may claim more.
	MaxQuestions = 32
	MaxAnswers   = 64
	// MaxTCPMessage is the largest message a TCP length prefix may name.
	MaxTCPMessage = 65535
)

// Errors a message can fail with; wrapped with the offset and detail.
var (
	ErrShort       = errors.New("dns: message too short")
	ErrBadPointer  = errors.New("dns: compression pointer out of range")
	ErrPointerLoop = errors.New("dns: compression pointer loop")
	ErrBadLabel    = errors.New("dns: reserved label type")
)

// Header is the fixed 12-byte DNS header.
type Header struct {
	ID      uint16
	Flags   uint16
	QDCount uint16
	ANCount uint16
	NSCount uint16
	ARCount uint16
}

// Response reports the QR bit.
func (h Header) Response() bool { return h.Flags&0x8000 != 0 }

// Opcode is the 4-bit opcode.
func (h Header) Opcode() uint8 { return uint8(h.Flags>>11) & 0xf }

// Rcode is the 4-bit response code.
func (h Header) Rcode() uint8 { return uint8(h.Flags & 0xf) }

// Name is a decoded domain name.
type Name struct {
	// Value is the dns.query form: labels joined by '.', no trailing dot,
	// empty for the root. Label bytes are not escaped.
	Value []byte
	// Truncated is set when the name was cut at MaxNameLen or at the step
	// bound after a pointer.
	Truncated bool
}

// Question is one question entry.
type Question struct {
	Name  Name
	Type  uint16
	Class uint16
}

// Answer is one answer record; only the owner name and fixed fields are
// decoded (rdata is left as a slice of the message).
type Answer struct {
	Name  Name
	Type  uint16
	Class uint16
	TTL   uint32
	Data  []byte
}

// Message is a parsed message. Its slices point into the caller's buffer
// (Data) or are freshly allocated (names).
type Message struct {
	Header    Header
	Questions []Question
	Answers   []Answer
	// Incomplete is set when the message ended before the counts in the
	// header were satisfied (what was decoded is kept).
	Incomplete bool
}

// Queries returns the dns.query buffers: the question names in order.
func (m *Message) Queries() [][]byte {
	out := make([][]byte, len(m.Questions))
	for i := range m.Questions {
		out[i] = m.Questions[i].Name.Value
	}
	return out
}

// Parse decodes one message as carried in a UDP payload. A message that
// breaks off after the header keeps what was decoded and sets Incomplete;
// an error is returned only when not even the header is there or a name
// is malformed before any question was decoded.
func Parse(msg []byte) (*Message, error) {
	if len(msg) < 12 {
		return nil, fmt.Errorf("%w: %d bytes, header needs 12", ErrShort, len(msg))
	}
	m := &Message{Header: Header{
		ID:      binary.BigEndian.Uint16(msg[0:]),
		Flags:   binary.BigEndian.Uint16(msg[2:]),
		QDCount: binary.BigEndian.Uint16(msg[4:]),
		ANCount: binary.BigEndian.Uint16(msg[6:]),
		NSCount: binary.BigEndian.Uint16(msg[8:]),
		ARCount: binary.BigEndian.Uint16(msg[10:]),
	}}
	off := 12
	for i := 0; i < int(m.Header.QDCount); i++ {
		if i == MaxQuestions {
			m.Incomplete = true
			return m, nil
		}
		name, next, err := parseName(msg, off)
		if err != nil {
			if len(m.Questions) == 0 {
				return nil, err
			}
			m.Incomplete = true
			return m, nil
		}
		if next+4 > len(msg) {
			m.Incomplete = true
			return m, nil
		}
		m.Questions = append(m.Questions, Question{
			Name:  name,
			Type:  binary.BigEndian.Uint16(msg[next:]),
			Class: binary.BigEndian.Uint16(msg[next+2:]),
		})
		off = next + 4
	}
	for i := 0; i < int(m.Header.ANCount); i++ {
		if i == MaxAnswers {
			break
		}
		name, next, err := parseName(msg, off)
		if err != nil || next+10 > len(msg) {
			m.Incomplete = true
			return m, nil
		}
		rdlen := int(binary.BigEndian.Uint16(msg[next+8:]))
		if next+10+rdlen > len(msg) {
			m.Incomplete = true
			return m, nil
		}
		m.Answers = append(m.Answers, Answer{
			Name:  name,
			Type:  binary.BigEndian.Uint16(msg[next:]),
			Class: binary.BigEndian.Uint16(msg[next+2:]),
			TTL:   binary.BigEndian.Uint32(msg[next+4:]),
			Data:  msg[next+10 : next+10+rdlen : next+10+rdlen],
		})
		off = next + 10 + rdlen
	}
	return m, nil
}

// ParseTCP splits a TCP stream's bytes into messages by their 2-byte
// length prefixes and parses each complete one. It returns the messages,
// how many bytes it consumed (the caller keeps the rest for the next
// segment) and the first error; a prefix of 0 is an error (the stream is
// not DNS).
func ParseTCP(stream []byte) (msgs []*Message, consumed int, err error) {
	for len(stream)-consumed >= 2 {
		n := int(binary.BigEndian.Uint16(stream[consumed:]))
		if n == 0 {
			return msgs, consumed, fmt.Errorf("%w: zero length prefix at %d", ErrShort, consumed)
		}
		if len(stream)-consumed-2 < n {
			break
		}
		m, perr := Parse(stream[consumed+2 : consumed+2+n])
		consumed += 2 + n
		if perr != nil {
			return msgs, consumed, perr
		}
		msgs = append(msgs, m)
	}
	return msgs, consumed, nil
}

// parseName decodes the name at off. It returns the name and the offset
// just after it in the message (after the first pointer, when there is
// one). Pointers may go anywhere in the message, forward too, as Suricata
// allows; loops end at maxNameSteps.
func parseName(msg []byte, off int) (Name, int, error) {
	var n Name
	pos := off
	next := -1 // offset after the first pointer
	for steps := 0; ; steps++ {
		if steps > maxNameSteps {
			if next < 0 {
				return n, 0, fmt.Errorf("%w: more than %d labels at %d", ErrPointerLoop, maxNameSteps, off)
			}
			n.Truncated = true
			return n, next, nil
		}
		if pos >= len(msg) {
			return n, 0, fmt.Errorf("%w: name at %d runs past the end", ErrShort, off)
		}
		l := int(msg[pos])
		switch l & 0xc0 {
		case 0x00:
			if l == 0 {
				if next < 0 {
					next = pos + 1
				}
				return n, next, nil
			}
			if pos+1+l > len(msg) {
				return n, 0, fmt.Errorf("%w: label at %d runs past the end", ErrShort, pos)
			}
			if !n.Truncated {
				if len(n.Value) > 0 {
					n.Value = append(n.Value, '.')
				}
				n.Value = append(n.Value, msg[pos+1:pos+1+l]...)
				if len(n.Value) > MaxNameLen {
					n.Value = n.Value[:MaxNameLen]
					n.Truncated = true
				}
			}
			pos += 1 + l
		case 0xc0:
			if pos+2 > len(msg) {
				return n, 0, fmt.Errorf("%w: pointer at %d cut off", ErrShort, pos)
			}
			target := int(binary.BigEndian.Uint16(msg[pos:]) & 0x3fff)
			if target >= len(msg) {
				return n, 0, fmt.Errorf("%w: %d at %d, message is %d bytes", ErrBadPointer, target, pos, len(msg))
			}
			if target == pos {
				return n, 0, fmt.Errorf("%w: pointer at %d points to itself", ErrPointerLoop, pos)
			}
			if next < 0 {
				next = pos + 2
			}
			pos = target
		default:
			return n, 0, fmt.Errorf("%w: 0x%02x at %d", ErrBadLabel, l, pos)
		}
	}
}
