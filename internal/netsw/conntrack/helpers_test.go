package conntrack

import (
	"net/netip"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

var (
	vmA = netip.MustParseAddr("10.0.0.1")
	vmB = netip.MustParseAddr("10.0.0.2")
)

const sec = int64(time.Second)

func tuple(proto uint8, src, dst netip.Addr, sp, dp uint16) packet.Tuple {
	return packet.Tuple{Src: src, Dst: dst, SrcPort: sp, DstPort: dp, Proto: proto}
}

func tcp(src, dst netip.Addr, sp, dp uint16, flags uint8) *packet.Frame {
	return &packet.Frame{IPValid: true, Tuple: tuple(packet.ProtoTCP, src, dst, sp, dp), TCPFlags: flags}
}

func udp(src, dst netip.Addr, sp, dp uint16) *packet.Frame {
	return &packet.Frame{IPValid: true, Tuple: tuple(packet.ProtoUDP, src, dst, sp, dp)}
}

// icmp builds an ICMPv4 or ICMPv6 echo packet; request and reply both carry
// the echo id in both ports, so a reply's tuple is the request's reversed.
func icmp(proto uint8, src, dst netip.Addr, id uint16, typ uint8) *packet.Frame {
	return &packet.Frame{IPValid: true, Tuple: tuple(proto, src, dst, id, id), ICMPType: typ}
}

// reverse returns f as the other end would send it, with new flags.
func reverse(f *packet.Frame, flags uint8) *packet.Frame {
	r := *f
	r.Tuple = f.Tuple.Reverse()
	r.TCPFlags = flags
	return &r
}

func withFlags(f *packet.Frame, flags uint8) *packet.Frame {
	c := *f
	c.TCPFlags = flags
	return &c
}

const (
	syn    = packet.TCPSyn
	ack    = packet.TCPAck
	fin    = packet.TCPFin
	rst    = packet.TCPRst
	psh    = packet.TCPPsh
	synack = syn | ack
	finack = fin | ack
	pshack = psh | ack
)
