// Package packet parses Ethernet frames from guests into a flat, allocation-
// free view for the switch's security pipeline. Every byte comes from an
// untrusted guest: the parser checks every length before reading and
// returns a Drop reason instead of guessing.
package packet

import "net/netip"

// Limits on what a port accepts.
const (
	MinFrame = 14   // Ethernet header
	MaxFrame = 1518 // 1500 MTU + Ethernet header + FCS-less slack; no jumbo frames
)

// EtherTypes the switch understands.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeVLAN = 0x8100
	EtherTypeQinQ = 0x88a8
	EtherTypeIPv6 = 0x86dd
)

// IP protocol numbers.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// TCP flag bits.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
)

// MAC is an Ethernet address.
type MAC [6]byte

// Broadcast is ff:ff:ff:ff:ff:ff.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// IsMulticast reports the group bit (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// Tuple is a flow's 5-tuple as seen in one packet. For ICMP and ICMPv6 echo
// requests and replies alike, SrcPort and DstPort are both the echo
// identifier, so a reply's Reverse() equals its request's tuple and
// conntrack needs no ICMP special case to match them; it tells a request
// from a reply by Frame.ICMPType. For other ICMP, and for IP protocols other
// than TCP, UDP and ICMP, both ports are 0.
type Tuple struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            uint8
}

// Reverse swaps source and destination.
func (t Tuple) Reverse() Tuple {
	return Tuple{Src: t.Dst, Dst: t.Src, SrcPort: t.DstPort, DstPort: t.SrcPort, Proto: t.Proto}
}

// Frame is the parsed view of one Ethernet frame. Parse fills it in place;
// fields that do not apply to the frame's type are zero. Raw aliases the
// caller's buffer: the caller owns it and must not reuse it while the Frame
// is in use.
type Frame struct {
	Raw       []byte
	Dst, Src  MAC
	EtherType uint16

	// ARP (EtherType 0x0806, Ethernet/IPv4 only).
	ARPOp                    uint16 // 1 request, 2 reply
	ARPSenderMAC             MAC
	ARPSenderIP, ARPTargetIP netip.Addr
	ARPTargetMAC             MAC

	// IPv4 and IPv6.
	IPValid  bool
	Tuple    Tuple  // valid when IPValid
	IPHeader []byte // the IP header, aliasing Raw
	L4       []byte // transport header and payload, aliasing Raw (bounded by IP total length)
	TCPFlags uint8
	ICMPType uint8
	ICMPCode uint8
	// DHCPServer is set for a DHCP server's (or relay agent's) message,
	// recognised by port or, over IPv4, by content on any port (see
	// isDHCPServer).
	DHCPServer bool
	// NDTarget is the target address of an IPv6 neighbour solicitation
	// (ICMPv6 135) or advertisement (136).
	NDTarget netip.Addr

	// ICMP errors (dest unreachable, time exceeded, ...) carry the header of
	// the packet that caused them; Inner is that packet's tuple as sent.
	ICMPError  bool
	Inner      Tuple
	InnerValid bool
}
