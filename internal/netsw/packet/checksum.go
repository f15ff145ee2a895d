package packet

import "encoding/binary"

// FillChecksum computes the TCP or UDP checksum of a parsed frame in place.
// The kernel hands frames read from a packet socket on an interface with
// checksum offload (veth, for one) before the checksum is computed
// (TP_STATUS_CSUMNOTREADY); a guest would drop them as corrupt. It does
// nothing for other frames. f must be the result of Parse over the same
// bytes.
func FillChecksum(f *Frame) {
	if !f.IPValid {
		return
	}
	var off int
	switch f.Tuple.Proto {
	case ProtoTCP:
		if len(f.L4) < 20 {
			return
		}
		off = 16
	case ProtoUDP:
		if len(f.L4) < 8 {
			return
		}
		off = 6
	default:
		return
	}
	f.L4[off], f.L4[off+1] = 0, 0
	c := transportChecksum(f.Tuple.Src, f.Tuple.Dst, f.Tuple.Proto, f.L4)
	if f.Tuple.Proto == ProtoUDP && c == 0 {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(f.L4[off:off+2], c)
}
