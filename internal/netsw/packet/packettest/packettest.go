// Package packettest builds Ethernet frames for tests of the switch's
// pipeline (parser, port security, conntrack, firewall): well-formed ones
// with correct checksums, which a test mutates to make malformed ones.
//
// It computes checksums with its own code, independent of package packet's,
// so tests can check packet's reply builders against it. It allocates freely
// and is not for production use.
package packettest

import (
	"encoding/binary"
	"net/netip"
)

// MAC is an Ethernet address. It does not import package packet, so that
// packet's own tests can use this package; a MAC is assignable to it.
type MAC = [6]byte

// Numbers this package writes.
const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
	protoICMP     = 1
	protoTCP      = 6
	protoUDP      = 17
	protoICMPv6   = 58
)

// Offsets into frames built here (IPv4 without options).
const (
	EthLen   = 14
	IPv4Len  = 20
	IPv6Len  = 40
	IPv4L4   = EthLen + IPv4Len // start of the transport header in an IPv4 frame
	IPv6L4   = EthLen + IPv6Len // same for IPv6
	TCPLen   = 20
	UDPLen   = 8
	ICMPLen  = 8
	ARPBytes = 28
)

// Flow builds frames from one endpoint to another. The address family of
// Src and Dst (which must match) picks IPv4 or IPv6.
type Flow struct {
	SrcMAC, DstMAC MAC
	Src, Dst       netip.Addr
}

// Reverse returns the flow in the other direction.
func (fl Flow) Reverse() Flow {
	return Flow{SrcMAC: fl.DstMAC, DstMAC: fl.SrcMAC, Src: fl.Dst, Dst: fl.Src}
}

// IP returns an Ethernet frame carrying an IP packet of proto with l4 as its
// payload, verbatim.
func (fl Flow) IP(proto uint8, l4 []byte) []byte {
	if fl.Src.Is4() {
		return Ether(fl.DstMAC, fl.SrcMAC, etherTypeIPv4, IPv4(fl.Src, fl.Dst, proto, l4))
	}
	return Ether(fl.DstMAC, fl.SrcMAC, etherTypeIPv6, IPv6(fl.Src, fl.Dst, proto, l4))
}

// TCP returns a frame with a TCP segment (20-byte header, window 65535).
func (fl Flow) TCP(sport, dport uint16, flags uint8, seq, ack uint32, payload []byte) []byte {
	return fl.IP(protoTCP, TCP(fl.Src, fl.Dst, sport, dport, flags, seq, ack, payload))
}

// UDP returns a frame with a UDP datagram.
func (fl Flow) UDP(sport, dport uint16, payload []byte) []byte {
	return fl.IP(protoUDP, UDP(fl.Src, fl.Dst, sport, dport, payload))
}

// ICMP returns a frame with an ICMPv4 message (IPv4 flow) or ICMPv6 message
// (IPv6 flow). body follows the type, code and checksum: its first 4 bytes
// are the "rest of header" (echo id and sequence, unused, MTU, ...).
func (fl Flow) ICMP(typ, code uint8, body []byte) []byte {
	if fl.Src.Is4() {
		return fl.IP(protoICMP, ICMP(fl.Src, fl.Dst, typ, code, body))
	}
	return fl.IP(protoICMPv6, ICMP(fl.Src, fl.Dst, typ, code, body))
}

// Echo returns the 4-byte "rest of header" of an echo request or reply.
func Echo(id, seq uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, id), seq)
}

// ND returns the body (after type, code, checksum) of a neighbour
// solicitation or advertisement for target, with the given options.
func ND(flags uint32, target netip.Addr, options ...[]byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, flags)
	t := target.As16()
	b = append(b, t[:]...)
	for _, o := range options {
		b = append(b, o...)
	}
	return b
}

// LinkAddrOption returns an ND source (typ 1) or target (typ 2) link-layer
// address option for mac.
func LinkAddrOption(typ uint8, mac MAC) []byte {
	return append([]byte{typ, 1}, mac[:]...)
}

// ARP returns an Ethernet frame with an Ethernet/IPv4 ARP message from
// srcMAC (the Ethernet source) to dstMAC.
func ARP(dstMAC, srcMAC MAC, op uint16, sha MAC, spa netip.Addr, tha MAC, tpa netip.Addr) []byte {
	b := make([]byte, ARPBytes)
	binary.BigEndian.PutUint16(b[0:2], 1)
	binary.BigEndian.PutUint16(b[2:4], etherTypeIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:8], op)
	copy(b[8:14], sha[:])
	s, t := spa.As4(), tpa.As4()
	copy(b[14:18], s[:])
	copy(b[18:24], tha[:])
	copy(b[24:28], t[:])
	return Ether(dstMAC, srcMAC, etherTypeARP, b)
}

// Ether returns an Ethernet frame (no FCS, no padding).
func Ether(dst, src MAC, etherType uint16, payload []byte) []byte {
	b := make([]byte, EthLen, EthLen+len(payload))
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], etherType)
	return append(b, payload...)
}

// IPv4 returns an IPv4 packet: 20-byte header, DF, TTL 64, valid header
// checksum.
func IPv4(src, dst netip.Addr, proto uint8, l4 []byte) []byte {
	b := make([]byte, IPv4Len, IPv4Len+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], uint16(IPv4Len+len(l4)))
	binary.BigEndian.PutUint16(b[4:6], 0x1234) // identification
	binary.BigEndian.PutUint16(b[6:8], 0x4000) // DF
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint16(b[10:12], Checksum(b))
	return append(b, l4...)
}

// IPv6 returns an IPv6 packet with hop limit 64.
func IPv6(src, dst netip.Addr, next uint8, l4 []byte) []byte {
	b := make([]byte, IPv6Len, IPv6Len+len(l4))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:6], uint16(len(l4)))
	b[6] = next
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	return append(b, l4...)
}

// TCP returns a TCP segment with a 20-byte header and a checksum valid for
// src→dst.
func TCP(src, dst netip.Addr, sport, dport uint16, flags uint8, seq, ack uint32, payload []byte) []byte {
	b := make([]byte, TCPLen, TCPLen+len(payload))
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint32(b[4:8], seq)
	binary.BigEndian.PutUint32(b[8:12], ack)
	b[12] = 5 << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:16], 65535)
	b = append(b, payload...)
	binary.BigEndian.PutUint16(b[16:18], L4Checksum(src, dst, protoTCP, b))
	return b
}

// UDP returns a UDP datagram with a checksum valid for src→dst.
func UDP(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	b := make([]byte, UDPLen, UDPLen+len(payload))
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint16(b[4:6], uint16(UDPLen+len(payload)))
	b = append(b, payload...)
	c := L4Checksum(src, dst, protoUDP, b)
	if c == 0 {
		c = 0xffff // RFC 768: zero means "no checksum"
	}
	binary.BigEndian.PutUint16(b[6:8], c)
	return b
}

// ICMP returns an ICMPv4 message (src IPv4; checksum over the message) or an
// ICMPv6 message (src IPv6; checksum with the pseudo-header).
func ICMP(src, dst netip.Addr, typ, code uint8, body []byte) []byte {
	b := append([]byte{typ, code, 0, 0}, body...)
	var c uint16
	if src.Is4() {
		c = Checksum(b)
	} else {
		c = L4Checksum(src, dst, protoICMPv6, b)
	}
	binary.BigEndian.PutUint16(b[2:4], c)
	return b
}

// Checksum returns the Internet checksum (RFC 1071) of b: the complement of
// the one's-complement sum of its 16-bit words. Over data that includes a
// correct checksum field it returns 0.
func Checksum(b []byte) uint16 {
	// Add with end-around carry at every step (package packet defers the
	// folding instead), so the two implementations share no code or trick.
	var s uint16
	for i := 0; i < len(b); i += 2 {
		w := uint16(b[i]) << 8
		if i+1 < len(b) {
			w |= uint16(b[i+1])
		}
		s += w
		if s < w {
			s++
		}
	}
	return ^s
}

// L4Checksum returns the checksum of a TCP, UDP or ICMPv6 message l4 with
// the pseudo-header of src, dst and proto (RFC 793, RFC 8200 §8.1). Over a
// message with a correct checksum field it returns 0.
func L4Checksum(src, dst netip.Addr, proto uint8, l4 []byte) uint16 {
	var ph []byte
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		ph = append(append(ph, s[:]...), d[:]...)
		ph = append(ph, 0, proto)
		ph = binary.BigEndian.AppendUint16(ph, uint16(len(l4)))
	} else {
		s, d := src.As16(), dst.As16()
		ph = append(append(ph, s[:]...), d[:]...)
		ph = binary.BigEndian.AppendUint32(ph, uint32(len(l4)))
		ph = append(ph, 0, 0, 0, proto)
	}
	return Checksum(append(ph, l4...))
}
