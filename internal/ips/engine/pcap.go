package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// MaxPcapRecord bounds one captured frame (tcpdump's largest snaplen).
const MaxPcapRecord = 262144

// Pcap errors.
var (
	ErrPcapMagic  = errors.New("pcap: not a classic pcap file")
	ErrPcapNG     = errors.New("pcap: pcapng is not supported (convert with editcap -F pcap)")
	ErrPcapRecord = errors.New("pcap: bad record")
)

// PcapReader reads a classic (libpcap) capture: microsecond or nanosecond
// timestamps, either byte order. It holds one record's buffer, reused.
type PcapReader struct {
	r        io.Reader
	bo       binary.ByteOrder
	nano     bool
	linkType uint32
	snap     uint32
	hdr      [16]byte
	buf      []byte
	n        uint64
}

// NewPcapReader reads the file header.
func NewPcapReader(r io.Reader) (*PcapReader, error) {
	var h [24]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("pcap: file header: %w", err)
	}
	pr := &PcapReader{r: r}
	switch binary.LittleEndian.Uint32(h[:]) {
	case 0xa1b2c3d4:
		pr.bo = binary.LittleEndian
	case 0xa1b23c4d:
		pr.bo, pr.nano = binary.LittleEndian, true
	case 0xd4c3b2a1:
		pr.bo = binary.BigEndian
	case 0x4d3cb2a1:
		pr.bo, pr.nano = binary.BigEndian, true
	case 0x0a0d0d0a:
		return nil, ErrPcapNG
	default:
		return nil, ErrPcapMagic
	}
	pr.snap = pr.bo.Uint32(h[16:])
	pr.linkType = pr.bo.Uint32(h[20:]) & 0x0fffffff // the upper bits are FCS flags
	return pr, nil
}

// LinkType is the capture's link type (LinkEthernet, ...).
func (pr *PcapReader) LinkType() uint32 { return pr.linkType }

// Next returns the next record's time and captured bytes; the bytes are
// valid until the next call. It returns io.EOF at a clean end, and
// io.ErrUnexpectedEOF for a file cut inside a record.
func (pr *PcapReader) Next() (time.Time, []byte, error) {
	if _, err := io.ReadFull(pr.r, pr.hdr[:]); err != nil {
		return time.Time{}, nil, err
	}
	pr.n++
	sec := pr.bo.Uint32(pr.hdr[0:])
	frac := pr.bo.Uint32(pr.hdr[4:])
	incl := pr.bo.Uint32(pr.hdr[8:])
	orig := pr.bo.Uint32(pr.hdr[12:])
	if incl > MaxPcapRecord || incl > orig && orig != 0 {
		return time.Time{}, nil, fmt.Errorf("%w %d: captured length %d (original %d, limit %d)", ErrPcapRecord, pr.n, incl, orig, MaxPcapRecord)
	}
	if !pr.nano {
		if frac >= 1e6 {
			return time.Time{}, nil, fmt.Errorf("%w %d: microseconds %d", ErrPcapRecord, pr.n, frac)
		}
		frac *= 1000
	} else if frac >= 1e9 {
		return time.Time{}, nil, fmt.Errorf("%w %d: nanoseconds %d", ErrPcapRecord, pr.n, frac)
	}
	if cap(pr.buf) < int(incl) {
		pr.buf = make([]byte, incl)
	}
	pr.buf = pr.buf[:incl]
	if _, err := io.ReadFull(pr.r, pr.buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return time.Time{}, nil, err
	}
	return time.Unix(int64(sec), int64(frac)).UTC(), pr.buf, nil
}
