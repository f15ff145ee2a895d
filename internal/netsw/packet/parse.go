package packet

import (
	"encoding/binary"
	"net/netip"
)

// Parse fills f with the view of the Ethernet frame b and returns OK, or the
// reason the frame must be dropped. It resets f first, so fields of an
// earlier frame never leak into this one; on a drop, the fields filled before
// the fault are kept for logging and must not be used for decisions.
//
// Parse reads only within b, checks every length before it reads, does not
// allocate and does not retain b beyond the slices it stores in f (Raw,
// IPHeader, L4 alias b, capped so that appending to them cannot overwrite b).
//
// What it accepts: untagged Ethernet carrying Ethernet/IPv4 ARP, IPv4 (with
// options, not fragmented) or IPv6 (without extension headers). Transport
// headers of TCP, UDP, ICMP and ICMPv6 must be complete; other IP protocols
// pass with ports 0 and are left to the firewall. Trailing Ethernet padding
// is allowed: L4 is bounded by the IP length fields, not the frame.
func Parse(b []byte, f *Frame) Reason {
	*f = Frame{Raw: b}
	if len(b) < MinFrame {
		return TooShort
	}
	if len(b) > MaxFrame {
		return TooLong
	}
	f.Dst = MAC(b[0:6])
	f.Src = MAC(b[6:12])
	f.EtherType = binary.BigEndian.Uint16(b[12:14])
	p := b[ethHeaderLen:]
	switch f.EtherType {
	case EtherTypeVLAN, EtherTypeQinQ:
		// A guest has no business choosing VLANs; the switch assigns them.
		return VLANTagged
	case EtherTypeARP:
		return parseARP(p, f)
	case EtherTypeIPv4:
		return parseIPv4(p, f)
	case EtherTypeIPv6:
		return parseIPv6(p, f)
	}
	return UnknownEther
}

func parseARP(p []byte, f *Frame) Reason {
	if len(p) < arpLen {
		return BadARP
	}
	// Hardware type 1 (Ethernet), protocol IPv4, address lengths 6 and 4:
	// the only layout whose fields sit where we read them.
	if binary.BigEndian.Uint16(p[0:2]) != 1 || binary.BigEndian.Uint16(p[2:4]) != EtherTypeIPv4 ||
		p[4] != 6 || p[5] != 4 {
		return BadARP
	}
	op := binary.BigEndian.Uint16(p[6:8])
	if op != ARPRequest && op != ARPReply {
		return BadARP
	}
	f.ARPOp = op
	f.ARPSenderMAC = MAC(p[8:14])
	f.ARPSenderIP = netip.AddrFrom4([4]byte(p[14:18]))
	f.ARPTargetMAC = MAC(p[18:24])
	f.ARPTargetIP = netip.AddrFrom4([4]byte(p[24:28]))
	return OK
}

func parseIPv4(p []byte, f *Frame) Reason {
	if len(p) < ipv4MinHeader || p[0]>>4 != 4 {
		return BadIPHeader
	}
	ihl := int(p[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(p[2:4]))
	if ihl < ipv4MinHeader || ihl > len(p) || total < ihl || total > len(p) {
		return BadIPHeader
	}
	// Fragments are dropped rather than reassembled (decided in issue 15):
	// only the first carries the ports, overlapping fragments are a classic
	// filter bypass, and a reassembly buffer per guest is memory a guest
	// controls. Every port's MTU is 1500 and the switch never fragments, so
	// traffic between VMs needs none; what does (UDP datagrams over the
	// MTU, e.g. DNS with a large EDNS buffer) must be sent with DF and path
	// MTU discovery, or over TCP. Drops are counted and logged as
	// ip_fragment (IPv6 fragment headers: ipv6_ext_header).
	if binary.BigEndian.Uint16(p[6:8])&(ipv4MF|ipv4OffsetMask) != 0 {
		return IPFragment
	}
	f.IPValid = true
	f.Tuple = Tuple{
		Src:   netip.AddrFrom4([4]byte(p[12:16])),
		Dst:   netip.AddrFrom4([4]byte(p[16:20])),
		Proto: p[9],
	}
	f.IPHeader = p[:ihl:ihl]
	f.L4 = p[ihl:total:total]
	return parseL4(f, false)
}

func parseIPv6(p []byte, f *Frame) Reason {
	if len(p) < ipv6HeaderLen || p[0]>>4 != 6 {
		return BadIPHeader
	}
	end := ipv6HeaderLen + int(binary.BigEndian.Uint16(p[4:6]))
	if end > len(p) {
		return BadIPHeader
	}
	next := p[6]
	if isIPv6ExtHeader(next) {
		return IPv6ExtHeader
	}
	f.IPValid = true
	f.Tuple = Tuple{
		Src:   netip.AddrFrom16([16]byte(p[8:24])),
		Dst:   netip.AddrFrom16([16]byte(p[24:40])),
		Proto: next,
	}
	f.IPHeader = p[:ipv6HeaderLen:ipv6HeaderLen]
	f.L4 = p[ipv6HeaderLen:end:end]
	return parseL4(f, true)
}

// parseL4 reads the transport header in f.L4 for f.Tuple.Proto. ICMP is only
// ICMP over IPv4 and ICMPv6 only over IPv6; the wrong pairing is an unknown
// protocol (ports 0), like any other.
func parseL4(f *Frame, v6 bool) Reason {
	l4 := f.L4
	switch f.Tuple.Proto {
	case ProtoTCP:
		if len(l4) < tcpMinHeader {
			return TruncatedL4
		}
		off := int(l4[12]>>4) * 4
		if off < tcpMinHeader || off > len(l4) {
			return TruncatedL4
		}
		f.Tuple.SrcPort, f.Tuple.DstPort = ports(l4)
		f.TCPFlags = l4[13]
	case ProtoUDP:
		if len(l4) < udpHeaderLen {
			return TruncatedL4
		}
		f.Tuple.SrcPort, f.Tuple.DstPort = ports(l4)
		f.DHCPServer = isDHCPServer(&f.Tuple, l4[udpHeaderLen:], v6)
	case ProtoICMP:
		if !v6 {
			return parseICMPv4(f)
		}
	case ProtoICMPv6:
		if v6 {
			return parseICMPv6(f)
		}
	}
	return OK
}

func parseICMPv4(f *Frame) Reason {
	l4 := f.L4
	if len(l4) < icmpHeaderLen {
		return TruncatedL4
	}
	f.ICMPType, f.ICMPCode = l4[0], l4[1]
	switch l4[0] {
	case ICMPv4EchoRequest, ICMPv4EchoReply:
		id := binary.BigEndian.Uint16(l4[4:6])
		f.Tuple.SrcPort, f.Tuple.DstPort = id, id
	case ICMPv4Unreachable, ICMPv4TimeExceeded, ICMPv4ParamProblem:
		f.ICMPError = true
		return parseQuotedIPv4(l4[icmpHeaderLen:], f)
	}
	return OK
}

func parseICMPv6(f *Frame) Reason {
	l4 := f.L4
	if len(l4) < icmpHeaderLen {
		return TruncatedL4
	}
	f.ICMPType, f.ICMPCode = l4[0], l4[1]
	switch l4[0] {
	case ICMPv6EchoRequest, ICMPv6EchoReply:
		id := binary.BigEndian.Uint16(l4[4:6])
		f.Tuple.SrcPort, f.Tuple.DstPort = id, id
	case ICMPv6Unreachable, ICMPv6PacketTooBig, ICMPv6TimeExceeded, ICMPv6ParamProblem:
		f.ICMPError = true
		return parseQuotedIPv6(l4[icmpHeaderLen:], f)
	case ICMPv6NeighborSolicit, ICMPv6NeighborAdvert:
		if len(l4) < ndMinLen {
			return TruncatedL4
		}
		f.NDTarget = netip.AddrFrom16([16]byte(l4[8:24]))
	}
	return OK
}

// parseQuotedIPv4 reads the packet an ICMPv4 error quotes: its IP header and
// at least the first 8 bytes of its transport header (RFC 792). The quoted
// total length is the original packet's, normally more than was quoted, so
// only its lower bound is checked.
func parseQuotedIPv4(q []byte, f *Frame) Reason {
	if len(q) < ipv4MinHeader || q[0]>>4 != 4 {
		return BadICMPEmbedded
	}
	ihl := int(q[0]&0x0f) * 4
	if ihl < ipv4MinHeader || ihl+quotedL4Len > len(q) || int(binary.BigEndian.Uint16(q[2:4])) < ihl {
		return BadICMPEmbedded
	}
	// A non-first fragment has no transport header to quote.
	if binary.BigEndian.Uint16(q[6:8])&ipv4OffsetMask != 0 {
		return BadICMPEmbedded
	}
	f.Inner = Tuple{
		Src:   netip.AddrFrom4([4]byte(q[12:16])),
		Dst:   netip.AddrFrom4([4]byte(q[16:20])),
		Proto: q[9],
	}
	quotedPorts(&f.Inner, q[ihl:ihl+quotedL4Len], ProtoICMP, ICMPv4EchoRequest, ICMPv4EchoReply)
	f.InnerValid = true
	return OK
}

// parseQuotedIPv6 reads the packet an ICMPv6 error quotes: its fixed header
// and the first 8 bytes after it, which must be a transport header (we never
// forward extension headers, so a quote with one is not about our traffic).
func parseQuotedIPv6(q []byte, f *Frame) Reason {
	if len(q) < ipv6HeaderLen+quotedL4Len || q[0]>>4 != 6 || isIPv6ExtHeader(q[6]) {
		return BadICMPEmbedded
	}
	f.Inner = Tuple{
		Src:   netip.AddrFrom16([16]byte(q[8:24])),
		Dst:   netip.AddrFrom16([16]byte(q[24:40])),
		Proto: q[6],
	}
	quotedPorts(&f.Inner, q[ipv6HeaderLen:ipv6HeaderLen+quotedL4Len], ProtoICMPv6, ICMPv6EchoRequest, ICMPv6EchoReply)
	f.InnerValid = true
	return OK
}

// quotedPorts fills t's ports from the 8 quoted transport bytes l4, with the
// same conventions as the outer Tuple.
func quotedPorts(t *Tuple, l4 []byte, icmpProto, echoReq, echoRep uint8) {
	switch t.Proto {
	case ProtoTCP, ProtoUDP:
		t.SrcPort, t.DstPort = ports(l4)
	case icmpProto:
		if l4[0] == echoReq || l4[0] == echoRep {
			id := binary.BigEndian.Uint16(l4[4:6])
			t.SrcPort, t.DstPort = id, id
		}
	}
}

// isDHCPServer reports whether a UDP datagram with payload is a DHCP
// server's (or relay agent's) message, by port or by content, so that a
// server on an unusual port is recognised too:
//
//   - IPv4: from port 67, to port 68 (only servers send to clients' port),
//     or any port carrying a BOOTREPLY (op 2) with the DHCP magic cookie
//     (RFC 2131 §3: OFFER, ACK and NAK are all BOOTREPLY; clients send
//     BOOTREQUEST only);
//   - IPv6: from port 547 or to port 546 (RFC 8415 §7.2: clients listen on
//     546; only servers and relays send there). DHCPv6 has no magic number,
//     so content alone cannot tell it from other traffic.
func isDHCPServer(t *Tuple, payload []byte, v6 bool) bool {
	if v6 {
		return t.SrcPort == DHCPv6ServerPort || t.DstPort == DHCPv6ClientPort
	}
	if t.SrcPort == DHCPv4ServerPort || t.DstPort == DHCPv4ClientPort {
		return true
	}
	return len(payload) >= bootpCookieEnd && payload[0] == bootReply &&
		binary.BigEndian.Uint32(payload[bootpCookieEnd-4:bootpCookieEnd]) == dhcpMagicCookie
}

// ports reads the source and destination ports that start TCP and UDP
// headers; callers have checked len(l4) >= 4.
func ports(l4 []byte) (src, dst uint16) {
	return binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
}
