package packet

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

// checkChecksums verifies a reply's IP header and transport checksums with
// packettest's independent implementation.
func checkChecksums(t *testing.T, r *Frame) {
	t.Helper()
	if r.Tuple.Src.Is4() {
		if c := packettest.Checksum(r.IPHeader); c != 0 {
			t.Errorf("IPv4 header checksum off by %#04x", c)
		}
	}
	var c uint16
	if r.Tuple.Proto == ProtoICMP {
		c = packettest.Checksum(r.L4)
	} else {
		c = packettest.L4Checksum(r.Tuple.Src, r.Tuple.Dst, r.Tuple.Proto, r.L4)
	}
	if c != 0 {
		t.Errorf("transport checksum off by %#04x", c)
	}
}

func TestBuildTCPReset(t *testing.T) {
	tests := []struct {
		name     string
		frame    []byte
		seq, ack uint32
		flags    uint8
	}{
		{"syn", flow4.TCP(40000, 22, TCPSyn, 1000, 0, nil), 0, 1001, TCPRst | TCPAck},
		{"syn with data", flow4.TCP(40000, 22, TCPSyn, 1000, 0, []byte("tfo")), 0, 1004, TCPRst | TCPAck},
		{"fin without ack", flow4.TCP(40000, 22, TCPFin, 0xffffffff, 0, nil), 0, 0, TCPRst | TCPAck}, // wraps
		{"data without ack", flow4.TCP(40000, 22, TCPPsh, 5, 0, make([]byte, 10)), 0, 15, TCPRst | TCPAck},
		{"ack", flow4.TCP(40000, 22, TCPAck, 5, 777, nil), 777, 0, TCPRst},
		{"fin ack with data", flow4.TCP(40000, 22, TCPFin|TCPAck|TCPPsh, 5, 778, []byte("bye")), 778, 0, TCPRst},
		{"syn ack", flow4.TCP(40000, 22, TCPSyn|TCPAck, 5, 779, nil), 779, 0, TCPRst},
		{"padded", append(flow4.TCP(40000, 22, TCPSyn, 9, 0, nil), 0, 0, 0, 0, 0, 0), 0, 10, TCPRst | TCPAck},
		{"ipv6 syn", flow6.TCP(40000, 22, TCPSyn, 1000, 0, nil), 0, 1001, TCPRst | TCPAck},
		{"ipv6 ack", flow6.TCP(40000, 22, TCPAck, 1000, 31, []byte("x")), 31, 0, TCPRst},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse(t, tt.frame)
			// A dirty, reused buffer must not leak into the reply.
			dst := bytes.Repeat([]byte{0xee}, 128)
			out := BuildTCPReset(dst[:0], f)
			if out == nil {
				t.Fatal("no reset built")
			}
			if &out[0] != &dst[0] {
				t.Error("did not reuse dst")
			}
			if len(out) < 60 {
				t.Errorf("frame of %d bytes, want Ethernet minimum 60", len(out))
			}
			r := mustParse(t, out)
			if r.Src != f.Dst || r.Dst != f.Src {
				t.Errorf("MACs %v→%v, want %v→%v", r.Src, r.Dst, f.Dst, f.Src)
			}
			if r.Tuple != f.Tuple.Reverse() {
				t.Errorf("tuple %v, want %v", r.Tuple, f.Tuple.Reverse())
			}
			if r.TCPFlags != tt.flags {
				t.Errorf("flags %#x, want %#x", r.TCPFlags, tt.flags)
			}
			seq, ack := binary.BigEndian.Uint32(r.L4[4:8]), binary.BigEndian.Uint32(r.L4[8:12])
			if seq != tt.seq || ack != tt.ack {
				t.Errorf("seq %d ack %d, want %d %d", seq, ack, tt.seq, tt.ack)
			}
			if len(r.L4) != 20 {
				t.Errorf("segment of %d bytes, want a bare 20-byte header", len(r.L4))
			}
			checkChecksums(t, r)
		})
	}
}

func TestBuildICMPUnreachable(t *testing.T) {
	withOptions := mut(append(flow4.UDP(9, 10, []byte("0123456789"))[:34:34], append([]byte{1, 1, 1, 0}, flow4.UDP(9, 10, []byte("0123456789"))[34:]...)...),
		func(b []byte) { b[14] = 0x46; binary.BigEndian.PutUint16(b[16:18], 24+18) })
	tests := []struct {
		name  string
		frame []byte
	}{
		{"tcp", flow4.TCP(40000, 443, TCPSyn, 1, 0, []byte("longer than eight bytes"))},
		{"udp", flow4.UDP(40000, 53, nil)},
		{"udp with ip options", withOptions},
		{"echo request", flow4.ICMP(ICMPv4EchoRequest, 0, packettest.Echo(3, 4))},
		{"padded", append(flow4.UDP(1, 2, nil), make([]byte, 10)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse(t, tt.frame)
			out := BuildICMPUnreachable(nil, f, ICMPv4AdminProhibited)
			r := mustParse(t, out)
			if r.Src != f.Dst || r.Dst != f.Src {
				t.Errorf("MACs %v→%v, want %v→%v", r.Src, r.Dst, f.Dst, f.Src)
			}
			want := Tuple{Src: f.Tuple.Dst, Dst: f.Tuple.Src, Proto: ProtoICMP}
			if r.Tuple != want {
				t.Errorf("tuple %v, want %v", r.Tuple, want)
			}
			if r.ICMPType != ICMPv4Unreachable || r.ICMPCode != ICMPv4AdminProhibited || !r.ICMPError {
				t.Errorf("type %d code %d error %v", r.ICMPType, r.ICMPCode, r.ICMPError)
			}
			if !r.InnerValid || r.Inner != f.Tuple {
				t.Errorf("inner %v (valid %v), want %v", r.Inner, r.InnerValid, f.Tuple)
			}
			quote := append(append([]byte(nil), f.IPHeader...), f.L4[:8]...)
			if !bytes.Equal(r.L4[8:], quote) {
				t.Errorf("quote %x, want %x", r.L4[8:], quote)
			}
			checkChecksums(t, r)
		})
	}

	// A payload shorter than 8 bytes is quoted whole.
	f := mustParse(t, flow4.IP(47, []byte{1, 2, 3}))
	out := BuildICMPUnreachable(nil, f, ICMPv4HostUnreachable)
	var r Frame
	if got := Parse(out, &r); got != BadICMPEmbedded { // our parser wants 8 quoted bytes
		t.Fatalf("Parse = %v", got)
	}
	if !bytes.Equal(r.L4[8:], append(append([]byte(nil), f.IPHeader...), 1, 2, 3)) {
		t.Errorf("short quote %x", r.L4[8:])
	}
	checkChecksums(t, &r)
}

func TestBuildICMPv6Unreachable(t *testing.T) {
	big := make([]byte, 1400)
	for _, tt := range []struct {
		name  string
		frame []byte
		quote int // bytes of the packet's payload quoted
	}{
		{"udp", flow6.UDP(40000, 53, []byte("query")), 8 + 5},
		{"tcp", flow6.TCP(40000, 443, TCPSyn, 1, 0, nil), 20},
		{"echo request", flow6.ICMP(ICMPv6EchoRequest, 0, packettest.Echo(1, 2)), 8},
		{"large: cut at the minimum MTU", flow6.UDP(1, 2, big), 1280 - 40 - 8 - 40},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse(t, tt.frame)
			out := BuildUnreachable(nil, f, ICMPv4AdminProhibited, ICMPv6AdminProhibited)
			r := mustParse(t, out)
			if r.Src != f.Dst || r.Dst != f.Src {
				t.Errorf("MACs %v→%v, want %v→%v", r.Src, r.Dst, f.Dst, f.Src)
			}
			if want := (Tuple{Src: f.Tuple.Dst, Dst: f.Tuple.Src, Proto: ProtoICMPv6}); r.Tuple != want {
				t.Errorf("tuple %v, want %v", r.Tuple, want)
			}
			if r.ICMPType != ICMPv6Unreachable || r.ICMPCode != ICMPv6AdminProhibited || !r.ICMPError {
				t.Errorf("type %d code %d error %v", r.ICMPType, r.ICMPCode, r.ICMPError)
			}
			if !r.InnerValid || r.Inner != f.Tuple {
				t.Errorf("inner %v (valid %v), want %v", r.Inner, r.InnerValid, f.Tuple)
			}
			if got := len(r.L4) - 8 - 40; got != tt.quote {
				t.Errorf("quoted %d payload bytes, want %d", got, tt.quote)
			}
			if n := len(out) - 14; n > 1280 {
				t.Errorf("IPv6 packet of %d bytes exceeds the minimum MTU", n)
			}
			checkChecksums(t, r)
		})
	}
	for _, tt := range []struct {
		name  string
		frame []byte
	}{
		{"ipv4", flow4.UDP(1, 2, nil)},
		{"icmpv6 error", icmpError6(ICMPv6Unreachable, ipPacket(flow6.UDP(1, 2, nil)))},
		{"neighbour solicitation", flow6.ICMP(ICMPv6NeighborSolicit, 0, packettest.ND(0, ip6B))},
		{"router advertisement", flow6.ICMP(ICMPv6RouterAdvert, 0, make([]byte, 12))},
		{"multicast", packettest.Flow{SrcMAC: macA, DstMAC: macB, Src: ip6A, Dst: netip.MustParseAddr("ff02::1")}.UDP(1, 2, nil)},
	} {
		if BuildICMPv6Unreachable(nil, mustParse(t, tt.frame), ICMPv6AdminProhibited) != nil {
			t.Errorf("%s: answered", tt.name)
		}
	}
}

func TestBuildRefuses(t *testing.T) {
	mcast := packettest.Flow{SrcMAC: macA, DstMAC: macB, Src: ip4A, Dst: netip.MustParseAddr("224.0.0.251")}
	bcast := packettest.Flow{SrcMAC: macA, DstMAC: Broadcast, Src: ip4A, Dst: netip.MustParseAddr("255.255.255.255")}
	unspec := packettest.Flow{SrcMAC: macA, DstMAC: macB, Src: netip.IPv4Unspecified(), Dst: ip4B}
	groupSrc := packettest.Flow{SrcMAC: MAC{0x01, 0, 0x5e, 0, 0, 1}, DstMAC: macB, Src: ip4A, Dst: ip4B}
	groupDst := packettest.Flow{SrcMAC: macA, DstMAC: Broadcast, Src: ip4A, Dst: ip4B}
	mcast6 := packettest.Flow{SrcMAC: macA, DstMAC: macB, Src: ip6A, Dst: netip.MustParseAddr("ff02::1")}
	tests := []struct {
		name       string
		frame      []byte
		rst, unrch bool // whether each builder may answer
	}{
		{"rst", flow4.TCP(1, 2, TCPRst, 0, 0, nil), false, true},
		{"rst ack", flow4.TCP(1, 2, TCPRst|TCPAck, 0, 0, nil), false, true},
		{"udp", flow4.UDP(1, 2, nil), false, true},
		{"multicast dst", mcast.UDP(1, 2, nil), false, false},
		{"multicast dst tcp", mcast.TCP(1, 2, TCPSyn, 0, 0, nil), false, false},
		{"broadcast dst", bcast.UDP(1, 2, nil), false, false},
		{"unspecified src", unspec.TCP(1, 2, TCPSyn, 0, 0, nil), false, false},
		{"group src mac", groupSrc.TCP(1, 2, TCPSyn, 0, 0, nil), false, false},
		{"group dst mac", groupDst.TCP(1, 2, TCPSyn, 0, 0, nil), false, false},
		{"ipv6 udp", flow6.UDP(1, 2, nil), false, false},
		{"ipv6 tcp", flow6.TCP(1, 2, TCPSyn, 0, 0, nil), true, false},
		{"ipv6 multicast", mcast6.UDP(1, 2, nil), false, false},
		{"icmp error", icmpError4(ICMPv4Unreachable, ipPacket(flow4.UDP(1, 2, nil))), false, false},
		{"icmp redirect", flow4.ICMP(5, 0, make([]byte, 32)), false, false},
		{"icmp source quench", flow4.ICMP(4, 0, make([]byte, 32)), false, false},
		{"arp", packettest.ARP(macB, macA, ARPReply, macA, ip4A, macB, ip4B), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse(t, tt.frame)
			if got := BuildTCPReset(nil, f) != nil; got != tt.rst {
				t.Errorf("BuildTCPReset answered: %v, want %v", got, tt.rst)
			}
			if got := BuildICMPUnreachable(nil, f, ICMPv4PortUnreachable) != nil; got != tt.unrch {
				t.Errorf("BuildICMPUnreachable answered: %v, want %v", got, tt.unrch)
			}
		})
	}
	// A hand-made Frame that Parse would not produce is refused, not read past.
	bad := mustParse(t, flow4.TCP(1, 2, TCPSyn, 0, 0, nil))
	bad.L4 = bad.L4[:12]
	if BuildTCPReset(nil, bad) != nil {
		t.Error("answered a truncated segment")
	}
	bad.L4 = append(bad.L4[:12:12], 0xf0, TCPSyn, 0, 0, 0, 0, 0, 0)
	if BuildTCPReset(nil, bad) != nil {
		t.Error("answered a segment whose data offset is past its end")
	}
	if BuildTCPReset(nil, &Frame{}) != nil || BuildICMPUnreachable(nil, &Frame{}, 3) != nil {
		t.Error("answered an empty frame")
	}
}
