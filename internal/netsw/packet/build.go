package packet

import (
	"encoding/binary"
	"net/netip"
)

// Builders for the frames the switch sends on a guest's behalf when a
// firewall rule REJECTs: a TCP reset or an ICMP destination unreachable,
// addressed back to the sender of the offending frame.
//
// Both write into dst's storage when cap(dst) is large enough (so a port can
// reuse one buffer and send without allocating) and into a new slice
// otherwise; they return the frame, or nil when no reply may be sent. They
// never answer a frame from or to a broadcast, multicast or unspecified
// address (that would turn the switch into a reflector), nor the replies
// RFC 793 and RFC 1122 forbid (a reset for a reset, an ICMP error for an
// ICMP error). A subnet-directed broadcast cannot be recognised without the
// subnet; the firewall should not REJECT towards one.

// minEthFrame is the shortest Ethernet frame without FCS (IEEE 802.3);
// shorter replies are zero-padded to it.
const minEthFrame = 60

// Field values of the replies we build.
const (
	replyTTL    = 64
	ipv4Version = 0x45 // version 4, IHL 5: we never send options
	ipv6Version = 0x60 // version 6, traffic class and flow label 0
)

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// BuildTCPReset builds the RST that answers the TCP segment in f (which
// Parse accepted), sent from f's destination to its source with MACs, IPs
// and ports swapped and correct checksums. Per RFC 793 §3.4 "Reset
// Generation": if the segment carried ACK, the reset has SEQ = SEG.ACK and
// only RST; otherwise SEQ = 0, ACK = SEG.SEQ + SEG.LEN (SYN and FIN count
// one each) and RST|ACK. It works for IPv4 and IPv6, and returns nil for a
// segment that is itself a reset or that may not be answered.
func BuildTCPReset(dst []byte, f *Frame) []byte {
	if !f.IPValid || f.Tuple.Proto != ProtoTCP || f.TCPFlags&TCPRst != 0 || !answerable(f) {
		return nil
	}
	l4 := f.L4
	if len(l4) < tcpMinHeader {
		return nil
	}
	off := int(l4[12]>>4) * 4
	if off < tcpMinHeader || off > len(l4) {
		return nil // f was not filled by Parse
	}
	var seq, ack uint32
	flags := uint8(TCPRst)
	if f.TCPFlags&TCPAck != 0 {
		seq = binary.BigEndian.Uint32(l4[8:12])
	} else {
		segLen := uint32(len(l4) - off)
		if f.TCPFlags&TCPSyn != 0 {
			segLen++
		}
		if f.TCPFlags&TCPFin != 0 {
			segLen++
		}
		ack = binary.BigEndian.Uint32(l4[4:8]) + segLen
		flags |= TCPAck
	}

	ipLen := ipv4MinHeader
	if f.Tuple.Src.Is6() {
		ipLen = ipv6HeaderLen
	}
	n := ethHeaderLen + ipLen + tcpMinHeader
	b := frameBuf(dst, max(n, minEthFrame))
	ip := putReplyHeaders(b, f, ProtoTCP, tcpMinHeader)
	tcp := ip[ipLen : ipLen+tcpMinHeader]
	binary.BigEndian.PutUint16(tcp[0:2], f.Tuple.DstPort)
	binary.BigEndian.PutUint16(tcp[2:4], f.Tuple.SrcPort)
	binary.BigEndian.PutUint32(tcp[4:8], seq)
	binary.BigEndian.PutUint32(tcp[8:12], ack)
	tcp[12] = (tcpMinHeader / 4) << 4
	tcp[13] = flags
	// Window, checksum and urgent pointer start at zero.
	binary.BigEndian.PutUint16(tcp[16:18], transportChecksum(f.Tuple.Dst, f.Tuple.Src, ProtoTCP, tcp))
	return b
}

// BuildICMPUnreachable builds an ICMPv4 destination unreachable (type 3) with
// the given code, answering the IPv4 packet in f (which Parse accepted): sent
// from f's destination address and MAC to its source, quoting f's IP header
// and the first 8 bytes of its payload (fewer if it has fewer), with correct
// checksums. It returns nil for IPv6, for ICMP errors and for packets that
// may not be answered.
func BuildICMPUnreachable(dst []byte, f *Frame, code uint8) []byte {
	if !f.IPValid || !f.Tuple.Src.Is4() || f.ICMPError || !answerable(f) ||
		len(f.IPHeader) < ipv4MinHeader {
		return nil
	}
	if f.Tuple.Proto == ProtoICMP && isICMPv4Error(f.ICMPType) {
		return nil // covers the error types Parse does not quote (4, 5)
	}
	quoteL4 := f.L4[:min(len(f.L4), quotedL4Len)]
	icmpLen := icmpHeaderLen + len(f.IPHeader) + len(quoteL4)
	n := ethHeaderLen + ipv4MinHeader + icmpLen
	b := frameBuf(dst, max(n, minEthFrame))
	ip := putReplyHeaders(b, f, ProtoICMP, icmpLen)
	icmp := ip[ipv4MinHeader : ipv4MinHeader+icmpLen]
	icmp[0] = ICMPv4Unreachable
	icmp[1] = code
	// Checksum and the 4 unused bytes start at zero.
	copy(icmp[icmpHeaderLen:], f.IPHeader)
	copy(icmp[icmpHeaderLen+len(f.IPHeader):], quoteL4)
	binary.BigEndian.PutUint16(icmp[2:4], finish(sum16(0, icmp)))
	return b
}

// ipv6MinMTU bounds an ICMPv6 error (RFC 4443 §2.4 (c): as much of the
// invoking packet as fits in the minimum IPv6 MTU).
const ipv6MinMTU = 1280

// BuildICMPv6Unreachable builds an ICMPv6 destination unreachable (type 1)
// with the given code, answering the IPv6 packet in f (which Parse
// accepted): sent from f's destination address and MAC to its source,
// quoting as much of f as keeps the reply within 1,280 bytes of IPv6, with
// its checksum over the IPv6 pseudo-header. It returns nil for IPv4, for
// ICMPv6 errors and neighbour discovery (RFC 4443 §2.4 (e)), and for
// packets that may not be answered.
func BuildICMPv6Unreachable(dst []byte, f *Frame, code uint8) []byte {
	if !f.IPValid || !f.Tuple.Src.Is6() || f.ICMPError || !answerable(f) || len(f.IPHeader) != ipv6HeaderLen {
		return nil
	}
	if f.Tuple.Proto == ProtoICMPv6 && (f.ICMPType < 128 || f.ICMPType >= ICMPv6RouterSolicit && f.ICMPType <= 137) {
		return nil // errors, and neighbour discovery (router and neighbour messages, redirects)
	}
	quote := min(len(f.L4), ipv6MinMTU-ipv6HeaderLen-icmpHeaderLen-ipv6HeaderLen)
	icmpLen := icmpHeaderLen + ipv6HeaderLen + quote
	n := ethHeaderLen + ipv6HeaderLen + icmpLen
	b := frameBuf(dst, max(n, minEthFrame))
	ip := putReplyHeaders(b, f, ProtoICMPv6, icmpLen)
	icmp := ip[ipv6HeaderLen : ipv6HeaderLen+icmpLen]
	icmp[0] = ICMPv6Unreachable
	icmp[1] = code
	copy(icmp[icmpHeaderLen:], f.IPHeader)
	copy(icmp[icmpHeaderLen+ipv6HeaderLen:], f.L4[:quote])
	binary.BigEndian.PutUint16(icmp[2:4], transportChecksum(f.Tuple.Dst, f.Tuple.Src, ProtoICMPv6, icmp))
	return b
}

// BuildUnreachable answers a rejected non-TCP packet: ICMPv4 with code4 or
// ICMPv6 with code6, by f's family.
func BuildUnreachable(dst []byte, f *Frame, code4, code6 uint8) []byte {
	if f.Tuple.Src.Is6() {
		return BuildICMPv6Unreachable(dst, f, code6)
	}
	return BuildICMPUnreachable(dst, f, code4)
}

// isICMPv4Error reports the ICMPv4 error types (RFC 1122 §3.2.2): no error
// is ever sent about one of these.
func isICMPv4Error(t uint8) bool {
	switch t {
	case ICMPv4Unreachable, 4 /* source quench */, 5 /* redirect */, ICMPv4TimeExceeded, ICMPv4ParamProblem:
		return true
	}
	return false
}

// answerable reports whether f's sender may be answered: both IP addresses
// and both MACs unicast (the reply is sent from f's destination MAC).
func answerable(f *Frame) bool {
	return !f.Src.IsMulticast() && !f.Dst.IsMulticast() && unicast(f.Tuple.Src) && unicast(f.Tuple.Dst)
}

func unicast(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && a != limitedBroadcast
}

// frameBuf returns n zeroed bytes in dst's storage if it fits, else new ones.
func frameBuf(dst []byte, n int) []byte {
	if cap(dst) < n {
		return make([]byte, n)
	}
	b := dst[:n]
	clear(b)
	return b
}

// putReplyHeaders writes into b (zeroed) the Ethernet and IP headers of a
// reply to f carrying l4Len bytes of proto, and returns b from the IP header
// on. The reply goes from f's destination to f's source.
func putReplyHeaders(b []byte, f *Frame, proto uint8, l4Len int) []byte {
	copy(b[0:6], f.Src[:])
	copy(b[6:12], f.Dst[:])
	ip := b[ethHeaderLen:]
	if f.Tuple.Src.Is4() {
		binary.BigEndian.PutUint16(b[12:14], EtherTypeIPv4)
		ip[0] = ipv4Version
		binary.BigEndian.PutUint16(ip[2:4], uint16(ipv4MinHeader+l4Len))
		binary.BigEndian.PutUint16(ip[6:8], ipv4DF)
		ip[8] = replyTTL
		ip[9] = proto
		src, dst := f.Tuple.Dst.As4(), f.Tuple.Src.As4()
		copy(ip[12:16], src[:])
		copy(ip[16:20], dst[:])
		binary.BigEndian.PutUint16(ip[10:12], finish(sum16(0, ip[:ipv4MinHeader])))
		return ip
	}
	binary.BigEndian.PutUint16(b[12:14], EtherTypeIPv6)
	ip[0] = ipv6Version
	binary.BigEndian.PutUint16(ip[4:6], uint16(l4Len))
	ip[6] = proto
	ip[7] = replyTTL
	src, dst := f.Tuple.Dst.As16(), f.Tuple.Src.As16()
	copy(ip[8:24], src[:])
	copy(ip[24:40], dst[:])
	return ip
}

// transportChecksum is the TCP/UDP/ICMPv6 checksum of l4 (its checksum field
// zero) with the IPv4 or IPv6 pseudo-header of src, dst and proto.
func transportChecksum(src, dst netip.Addr, proto uint8, l4 []byte) uint16 {
	sum := uint32(proto) + uint32(len(l4))
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		sum = sum16(sum16(sum, s[:]), d[:])
	} else {
		s, d := src.As16(), dst.As16()
		sum = sum16(sum16(sum, s[:]), d[:])
	}
	return finish(sum16(sum, l4))
}

// sum16 adds b to the running one's-complement sum as big-endian 16-bit
// words, an odd last byte padded with zero (RFC 1071). A frame is at most
// MaxFrame bytes, so a uint32 cannot overflow before finish folds it.
func sum16(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// finish folds the carries of sum and returns its complement, the value for
// a checksum field.
func finish(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
