package mirror

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/ratelimit"
)

// ERSPAN type II (draft-foschiano-erspan) over GRE (RFC 2784, with the
// RFC 2890 sequence number), as the IP payload of protocol 47:
//
//	GRE     flags 0x1000 (S: sequence number present), version 0
//	        protocol type 0x88BE (ERSPAN type II)
//	        sequence number (32 bits, per session, from 0)
//	ERSPAN  ver 1 (4 bits) | VLAN (12)
//	        COS (3) | En (2) | T (1) | session id (10)
//	        reserved (12) | index (20)
//	the mirrored Ethernet frame, cut to the snap length (T set if cut)
//
// The switch forwards untagged frames only, so VLAN, COS and En are 0
// (En 00: the frame was not tagged); the index is the mirrored source
// port's switch port ID.
const (
	greProtoERSPAN2 = 0x88be
	greFlagSeq      = 0x1000
	greHeaderLen    = 8
	erspanHeaderLen = 8
	erspanVersion2  = 1 // ERSPAN type II's "Ver" field
	// ERSPANOverhead is the bytes added to each frame (the IPv4 header
	// the kernel adds not included).
	ERSPANOverhead = greHeaderLen + erspanHeaderLen
)

// erspanHeader is the part of the encapsulation that varies.
type erspanHeader struct {
	Seq       uint32
	VLAN      uint16 // 12 bits
	COS       uint8  // 3 bits
	En        uint8  // 2 bits
	Truncated bool
	SessionID uint16 // 10 bits
	Index     uint32 // 20 bits
}

// appendERSPAN appends the GRE and ERSPAN II headers for h and frame to b.
// Fields wider than their bits are cut.
func appendERSPAN(b []byte, h erspanHeader, frame []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, greFlagSeq)
	b = binary.BigEndian.AppendUint16(b, greProtoERSPAN2)
	b = binary.BigEndian.AppendUint32(b, h.Seq)
	b = binary.BigEndian.AppendUint16(b, erspanVersion2<<12|h.VLAN&0x0fff)
	w := uint16(h.COS&7)<<13 | uint16(h.En&3)<<11 | h.SessionID&0x03ff
	if h.Truncated {
		w |= 1 << 10
	}
	b = binary.BigEndian.AppendUint16(b, w)
	b = binary.BigEndian.AppendUint32(b, h.Index&0x000fffff)
	return append(b, frame...)
}

// erspanTarget sends a session's copies to a collector.
type erspanTarget struct {
	conn   erspanConn
	remote netip.Addr
	id     uint16
	seq    uint32
	rate   ratelimit.Bucket // packets; used by the writer only
	start  time.Time        // the bucket's clock origin
	buf    []byte
}

// erspanConn sends IP payloads to the collector (erspan_linux.go).
type erspanConn interface {
	send(payload []byte) error
	close() error
}

func newERSPANTarget(s *Session) (*erspanTarget, error) {
	remote := netip.MustParseAddr(s.Target.Remote) // validated
	pps := int64(s.Target.MaxPPS)
	// A burst of a tenth of a second's packets, at least one.
	rate, err := ratelimit.NewBucket(pps, max(pps/10, 1))
	if err != nil {
		return nil, fmt.Errorf("target.max_pps: %w", err)
	}
	conn, err := openGRE(remote)
	if err != nil {
		return nil, fmt.Errorf("mirror: ERSPAN to %s: %w", remote, err)
	}
	return &erspanTarget{conn: conn, remote: remote, id: s.Target.SessionID, rate: rate, start: time.Now(),
		buf: make([]byte, 0, ERSPANOverhead+len(record{}.data))}, nil
}

func (t *erspanTarget) write(r *record) error {
	if !t.rate.Allow(int64(time.Since(t.start))+1, 1) {
		return errRate
	}
	h := erspanHeader{Seq: t.seq, SessionID: t.id, Index: uint32(r.port), Truncated: r.n < r.orig}
	t.seq++
	t.buf = appendERSPAN(t.buf[:0], h, r.frame())
	if err := t.conn.send(t.buf); err != nil {
		return fmt.Errorf("ERSPAN to %s: %w", t.remote, err)
	}
	return nil
}

func (t *erspanTarget) tick() error     { return nil }
func (t *erspanTarget) close() error    { return t.conn.close() }
func (t *erspanTarget) files() []string { return nil }
