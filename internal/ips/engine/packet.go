package engine

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Link types of the frames Decode accepts (pcap LINKTYPE_ values).
const (
	LinkNull     = 0   // BSD loopback: 4-byte address family
	LinkEthernet = 1   // Ethernet II, with 802.1Q/802.1ad tags
	LinkRaw      = 101 // raw IPv4 or IPv6
	LinkIPv4     = 228
	LinkIPv6     = 229
)

// IP protocol numbers the engine follows.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoGRE    = 47
	ProtoICMPv6 = 58
)

// maxVLANTags bounds the 802.1Q/802.1ad tags Decode walks.
const maxVLANTags = 4

// maxIPv6Ext bounds the IPv6 extension headers Decode walks.
const maxIPv6Ext = 8

// Packet is one decoded frame. Its slices point into the frame given to
// Decode; the caller keeps the frame alive while the Packet is used.
type Packet struct {
	Time     time.Time
	LinkType uint32
	// Frame is the whole frame as captured.
	Frame []byte

	HasEther       bool
	SrcMAC, DstMAC [6]byte

	Src, Dst netip.Addr
	// Proto is the IP protocol number (0 when the frame is not IP).
	Proto uint8
	// Fragment: an IP fragment (L4 fields are not decoded).
	Fragment bool
	frag     fragInfo
	// tunnel is the frame offset of the IP packet a GRE packet carries
	// (0: none), tunnelStart that of the GRE payload (a PPP header or
	// the IP packet).
	tunnel, tunnelStart int
	// L4Invalid: the transport header is malformed (not decoded); the
	// packet still matches IP-level rules, as in Suricata.
	L4Invalid bool

	SrcPort, DstPort uint16
	// TCP header fields (Proto TCP).
	TCPFlags uint8
	Seq, Ack uint32
	Window   uint16
	WScale   uint8
	// ICMP type and code (Proto ICMP or ICMPv6).
	ICMPType, ICMPCode uint8

	Payload []byte
}

// Decode reasons: why a frame was not decoded as IP (counter keys).
const (
	DecodeOK          = ""
	DecodeLinkType    = "unsupported link type"
	DecodeNotIP       = "not ip"
	DecodeTruncated   = "truncated"
	DecodeBadHeader   = "bad ip header"
	DecodeBadL4       = "bad l4 header"
	DecodeTooManyTags = "too many vlan tags"
)

// Decode decodes frame captured with link type link into p. It returns a
// reason (a Decode* constant) when the frame is not usable; p is then
// only partly filled. Every length is checked against the frame.
func Decode(link uint32, frame []byte, p *Packet) string {
	*p = Packet{LinkType: link, Frame: frame}
	f := frame
	var et uint16
	switch link {
	case LinkEthernet:
		if len(f) < 14 {
			return DecodeTruncated
		}
		p.HasEther = true
		copy(p.DstMAC[:], f[0:6])
		copy(p.SrcMAC[:], f[6:12])
		et = binary.BigEndian.Uint16(f[12:])
		f = f[14:]
		for n := 0; et == 0x8100 || et == 0x88a8; n++ {
			if n >= maxVLANTags {
				return DecodeTooManyTags
			}
			if len(f) < 4 {
				return DecodeTruncated
			}
			et = binary.BigEndian.Uint16(f[2:])
			f = f[4:]
		}
		if et != 0x0800 && et != 0x86dd {
			return DecodeNotIP
		}
	case LinkNull:
		if len(f) < 4 {
			return DecodeTruncated
		}
		f = f[4:]
	case LinkRaw, LinkIPv4, LinkIPv6:
	default:
		return DecodeLinkType
	}
	if len(f) < 1 {
		return DecodeTruncated
	}
	l3 := len(frame) - len(f)
	switch f[0] >> 4 {
	case 4:
		return decodeIPv4(f, l3, p)
	case 6:
		return decodeIPv6(f, l3, p)
	}
	return DecodeNotIP
}

func decodeIPv4(f []byte, l3 int, p *Packet) string {
	if len(f) < 20 {
		return DecodeTruncated
	}
	ihl := int(f[0]&0xf) * 4
	tot := int(binary.BigEndian.Uint16(f[2:]))
	if ihl < 20 || tot < ihl {
		return DecodeBadHeader
	}
	if tot > len(f) {
		return DecodeTruncated
	}
	p.Src = netip.AddrFrom4([4]byte(f[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(f[16:20]))
	p.Proto = f[9]
	frag := binary.BigEndian.Uint16(f[6:])
	if frag&0x3fff != 0 { // more fragments or an offset
		p.Fragment = true
		p.frag = fragInfo{
			id: uint32(binary.BigEndian.Uint16(f[4:])), off: int(frag&0x1fff) * 8, more: frag&0x2000 != 0,
			data: f[ihl:tot], l3: l3, hdrEnd: l3 + ihl,
		}
		return DecodeOK
	}
	return checkL4(decodeL4(f[ihl:tot], p), p)
}

// checkL4 keeps a packet whose transport header is malformed for the
// IP-level rules.
func checkL4(reason string, p *Packet) string {
	if reason == DecodeBadL4 {
		p.L4Invalid = true
		p.SrcPort, p.DstPort, p.Payload = 0, 0, nil
		return DecodeOK
	}
	return reason
}

func decodeIPv6(f []byte, l3 int, p *Packet) string {
	if len(f) < 40 {
		return DecodeTruncated
	}
	plen := int(binary.BigEndian.Uint16(f[4:]))
	if 40+plen > len(f) {
		return DecodeTruncated
	}
	p.Src = netip.AddrFrom16([16]byte(f[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(f[24:40]))
	next := f[6]
	nextOff := l3 + 6 // frame offset of the byte holding next
	rest := f[40 : 40+plen]
	for i := 0; ; i++ {
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if i >= maxIPv6Ext || len(rest) < 8 {
				return DecodeBadHeader
			}
			n := (int(rest[1]) + 1) * 8
			if n > len(rest) {
				return DecodeTruncated
			}
			nextOff = l3 + 40 + plen - len(rest)
			next, rest = rest[0], rest[n:]
			continue
		case 44: // fragment
			if len(rest) < 8 {
				return DecodeTruncated
			}
			p.Proto = rest[0]
			p.Fragment = true
			fo := binary.BigEndian.Uint16(rest[2:])
			hdrEnd := l3 + 40 + plen - len(rest)
			p.frag = fragInfo{
				id: binary.BigEndian.Uint32(rest[4:]), off: int(fo &^ 7), more: fo&1 != 0,
				data: rest[8:], l3: l3, hdrEnd: hdrEnd, nextOff: nextOff, next: rest[0], v6: true,
			}
			if p.frag.off == 0 && !p.frag.more {
				// An atomic fragment: the datagram is whole.
				p.Fragment = false
				return checkL4(decodeL4(rest[8:], p), p)
			}
			return DecodeOK
		}
		break
	}
	p.Proto = next
	return checkL4(decodeL4(rest, p), p)
}

func decodeL4(f []byte, p *Packet) string {
	switch p.Proto {
	case ProtoTCP:
		if len(f) < 20 {
			return DecodeBadL4
		}
		doff := int(f[12]>>4) * 4
		if doff < 20 || doff > len(f) {
			return DecodeBadL4
		}
		p.SrcPort = binary.BigEndian.Uint16(f[0:])
		p.DstPort = binary.BigEndian.Uint16(f[2:])
		p.Seq = binary.BigEndian.Uint32(f[4:])
		p.Ack = binary.BigEndian.Uint32(f[8:])
		p.TCPFlags = f[13]
		p.Window = binary.BigEndian.Uint16(f[14:])
		p.WScale = tcpWScale(f[20:doff])
		p.Payload = f[doff:]
	case ProtoUDP:
		if len(f) < 8 {
			return DecodeBadL4
		}
		p.SrcPort = binary.BigEndian.Uint16(f[0:])
		p.DstPort = binary.BigEndian.Uint16(f[2:])
		ulen := int(binary.BigEndian.Uint16(f[4:]))
		if ulen < 8 || ulen > len(f) {
			return DecodeBadL4
		}
		p.Payload = f[8:ulen]
	case ProtoICMP, ProtoICMPv6:
		if len(f) < 4 {
			return DecodeBadL4
		}
		p.ICMPType, p.ICMPCode = f[0], f[1]
		// Suricata's ICMP payload starts after the 8-byte header.
		if len(f) >= 8 {
			p.Payload = f[8:]
		}
	case ProtoGRE:
		p.Payload = f
		if start, off, ok := greInner(f); ok {
			base := len(p.Frame) - len(f)
			p.tunnelStart, p.tunnel = base+start, base+off
		}
	default:
		p.Payload = f
	}
	return DecodeOK
}

// greInner returns the offsets in a GRE packet of its payload and of the
// IP packet it carries (GRE version 0 or PPTP's version 1; IPv4, IPv6, or
// PPP carrying either).
func greInner(f []byte) (start, ip int, ok bool) {
	if len(f) < 4 {
		return 0, 0, false
	}
	flags := binary.BigEndian.Uint16(f)
	proto := binary.BigEndian.Uint16(f[2:])
	off := 4
	if flags&0x8000 != 0 { // checksum and reserved
		off += 4
	}
	if flags&0x2000 != 0 { // key (PPTP: payload length and call id)
		off += 4
	}
	if flags&0x1000 != 0 { // sequence number
		off += 4
	}
	if flags&7 == 1 && flags&0x0080 != 0 { // PPTP acknowledgment
		off += 4
	}
	if off > len(f) {
		return 0, 0, false
	}
	start = off
	switch proto {
	case 0x0800, 0x86dd:
		return start, off, true
	case 0x880b: // PPP
		b := f[off:]
		if len(b) >= 2 && b[0] == 0xff && b[1] == 0x03 {
			off += 2
			b = b[2:]
		}
		var pp uint16
		switch {
		case len(b) >= 1 && b[0]&1 == 1: // protocol field compressed
			pp, off = uint16(b[0]), off+1
		case len(b) >= 2:
			pp, off = binary.BigEndian.Uint16(b), off+2
		default:
			return 0, 0, false
		}
		return start, off, pp == 0x21 || pp == 0x57
	}
	return 0, 0, false
}

// maxTunnels bounds the tunnel layers Frame decapsulates.
const maxTunnels = 2

// decodeInner decodes, into p, the IP packet starting at frame offset off
// (a tunnel's inner packet or a reassembled datagram's IP header); the
// link-layer fields already in p are kept.
func decodeInner(frame []byte, off int, p *Packet) string {
	t := p.Time
	ether, src, dst, link := p.HasEther, p.SrcMAC, p.DstMAC, p.LinkType
	*p = Packet{Time: t, LinkType: link, Frame: frame, HasEther: ether, SrcMAC: src, DstMAC: dst}
	f := frame[off:]
	if len(f) < 1 {
		return DecodeTruncated
	}
	switch f[0] >> 4 {
	case 4:
		return decodeIPv4(f, off, p)
	case 6:
		return decodeIPv6(f, off, p)
	}
	return DecodeNotIP
}

// tcpWScale returns the window-scale shift of a TCP option list, 0 when
// absent. At most 40 bytes are walked.
func tcpWScale(opts []byte) uint8 {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0:
			return 0
		case 1:
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 {
			return 0
		}
		if opts[i] == 3 && opts[i+1] == 3 && i+2 < len(opts) {
			return min(opts[i+2], 14)
		}
		i += int(opts[i+1])
	}
	return 0
}
