package packet

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

var (
	macA = MAC{0x52, 0x54, 0x00, 0x00, 0x00, 0x0a}
	macB = MAC{0x52, 0x54, 0x00, 0x00, 0x00, 0x0b}
	ip4A = netip.MustParseAddr("10.0.0.10")
	ip4B = netip.MustParseAddr("10.0.0.11")
	ip6A = netip.MustParseAddr("fd00::a")
	ip6B = netip.MustParseAddr("fd00::b")

	flow4 = packettest.Flow{SrcMAC: macA, DstMAC: macB, Src: ip4A, Dst: ip4B}
	flow6 = packettest.Flow{SrcMAC: macA, DstMAC: macB, Src: ip6A, Dst: ip6B}
)

// mut returns a copy of b changed by fn.
func mut(b []byte, fn func(b []byte)) []byte {
	c := append([]byte(nil), b...)
	fn(c)
	return c
}

// ipPacket strips the Ethernet header: what an ICMP error quotes.
func ipPacket(frame []byte) []byte { return frame[packettest.EthLen:] }

// icmpError4 returns an ICMPv4 error of typ from B to A quoting quote.
func icmpError4(typ uint8, quote []byte) []byte {
	return flow4.Reverse().ICMP(typ, 0, append(make([]byte, 4), quote...))
}

func icmpError6(typ uint8, quote []byte) []byte {
	return flow6.Reverse().ICMP(typ, 0, append(make([]byte, 4), quote...))
}

func mustParse(t *testing.T, b []byte) *Frame {
	t.Helper()
	var f Frame
	if r := Parse(b, &f); r != OK {
		t.Fatalf("Parse = %v, want ok", r)
	}
	return &f
}

func tuple(src, dst netip.Addr, sport, dport uint16, proto uint8) Tuple {
	return Tuple{Src: src, Dst: dst, SrcPort: sport, DstPort: dport, Proto: proto}
}

func TestParseAccepts(t *testing.T) {
	tcp4 := flow4.TCP(40000, 443, TCPSyn, 1000, 0, nil)
	udp4 := flow4.UDP(5353, 53, []byte("query"))
	udp6 := flow6.UDP(40000, 53, nil)
	echo4 := flow4.ICMP(ICMPv4EchoRequest, 0, packettest.Echo(77, 1))
	tests := []struct {
		name  string
		frame []byte
		want  Frame // MACs and EtherType filled in below when zero
	}{
		{"tcp4", tcp4, Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 40000, 443, ProtoTCP), TCPFlags: TCPSyn}},
		{"tcp4 padded", append(flow4.TCP(1, 2, TCPAck, 0, 0, nil), 0, 0, 0, 0, 0, 0),
			Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 1, 2, ProtoTCP), TCPFlags: TCPAck}},
		{"tcp4 options", mut(append(tcp4[:packettest.IPv4L4:packettest.IPv4L4], append([]byte{1, 1, 1, 0}, tcp4[packettest.IPv4L4:]...)...), func(b []byte) {
			b[14] = 0x46 // IHL 6: one word of options (NOPs, EOL)
			binary.BigEndian.PutUint16(b[16:18], 24+20)
		}), Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 40000, 443, ProtoTCP), TCPFlags: TCPSyn}},
		{"udp4 max frame", flow4.UDP(1, 2, make([]byte, MaxFrame-42)), Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 1, 2, ProtoUDP)}},
		{"udp4", udp4, Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 5353, 53, ProtoUDP)}},
		{"dhcp4 server", flow4.UDP(67, 68, nil), Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 67, 68, ProtoUDP), DHCPServer: true}},
		{"dhcp4 client", flow4.UDP(68, 67, nil), Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 68, 67, ProtoUDP)}},
		{"dhcp4 server to the client port", flow4.UDP(6767, 68, nil), Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 6767, 68, ProtoUDP), DHCPServer: true}},
		{"dhcp4 offer on other ports", flow4.UDP(6767, 6868, bootp(2, true)), Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 6767, 6868, ProtoUDP), DHCPServer: true}},
		{"bootrequest on other ports", flow4.UDP(6767, 6868, bootp(1, true)), Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 6767, 6868, ProtoUDP)}},
		{"bootreply without cookie", flow4.UDP(6767, 6868, bootp(2, false)), Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 6767, 6868, ProtoUDP)}},
		{"bootreply cut before the cookie", flow4.UDP(6767, 6868, bootp(2, true)[:239]), Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 6767, 6868, ProtoUDP)}},
		{"icmp4 echo request", echo4, Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 77, 77, ProtoICMP), ICMPType: ICMPv4EchoRequest}},
		{"icmp4 echo reply", flow4.ICMP(ICMPv4EchoReply, 0, packettest.Echo(77, 1)),
			Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 77, 77, ProtoICMP), ICMPType: ICMPv4EchoReply}},
		{"icmp4 timestamp", flow4.ICMP(13, 0, make([]byte, 16)), Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 0, 0, ProtoICMP), ICMPType: 13}},
		{"icmp4 unreachable tcp", icmpError4(ICMPv4Unreachable, ipPacket(tcp4)[:28]), Frame{
			IPValid: true, Tuple: tuple(ip4B, ip4A, 0, 0, ProtoICMP), ICMPType: ICMPv4Unreachable,
			ICMPError: true, InnerValid: true, Inner: tuple(ip4A, ip4B, 40000, 443, ProtoTCP)}},
		{"icmp4 time exceeded udp", icmpError4(ICMPv4TimeExceeded, ipPacket(udp4)), Frame{
			IPValid: true, Tuple: tuple(ip4B, ip4A, 0, 0, ProtoICMP), ICMPType: ICMPv4TimeExceeded,
			ICMPError: true, InnerValid: true, Inner: tuple(ip4A, ip4B, 5353, 53, ProtoUDP)}},
		{"icmp4 param problem echo", icmpError4(ICMPv4ParamProblem, ipPacket(echo4)), Frame{
			IPValid: true, Tuple: tuple(ip4B, ip4A, 0, 0, ProtoICMP), ICMPType: ICMPv4ParamProblem,
			ICMPError: true, InnerValid: true, Inner: tuple(ip4A, ip4B, 77, 77, ProtoICMP)}},
		{"gre4", flow4.IP(47, []byte{0, 0}), Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 0, 0, 47)}},
		{"icmpv6 over ipv4 is opaque", flow4.IP(ProtoICMPv6, []byte{128}), Frame{IPValid: true, Tuple: tuple(ip4A, ip4B, 0, 0, ProtoICMPv6)}},
		{"arp request", packettest.ARP(Broadcast, macA, ARPRequest, macA, ip4A, MAC{}, ip4B), Frame{
			Dst: Broadcast, EtherType: EtherTypeARP, ARPOp: ARPRequest, ARPSenderMAC: macA, ARPSenderIP: ip4A, ARPTargetIP: ip4B}},
		{"arp reply", packettest.ARP(macB, macA, ARPReply, macA, ip4A, macB, ip4B), Frame{
			Dst: macB, EtherType: EtherTypeARP, ARPOp: ARPReply, ARPSenderMAC: macA, ARPSenderIP: ip4A, ARPTargetMAC: macB, ARPTargetIP: ip4B}},
		{"tcp6", flow6.TCP(40000, 22, TCPSyn|TCPAck, 5, 6, []byte("x")),
			Frame{IPValid: true, Tuple: tuple(ip6A, ip6B, 40000, 22, ProtoTCP), TCPFlags: TCPSyn | TCPAck}},
		{"udp6", udp6, Frame{IPValid: true, Tuple: tuple(ip6A, ip6B, 40000, 53, ProtoUDP)}},
		{"dhcp6 server", flow6.UDP(547, 546, nil), Frame{IPValid: true, Tuple: tuple(ip6A, ip6B, 547, 546, ProtoUDP), DHCPServer: true}},
		{"dhcp4 port over ipv6", flow6.UDP(67, 68, nil), Frame{IPValid: true, Tuple: tuple(ip6A, ip6B, 67, 68, ProtoUDP)}},
		{"dhcp6 to the client port", flow6.UDP(5470, 546, nil), Frame{IPValid: true, Tuple: tuple(ip6A, ip6B, 5470, 546, ProtoUDP), DHCPServer: true}},
		{"icmpv6 echo", flow6.ICMP(ICMPv6EchoRequest, 0, packettest.Echo(9, 1)),
			Frame{IPValid: true, Tuple: tuple(ip6A, ip6B, 9, 9, ProtoICMPv6), ICMPType: ICMPv6EchoRequest}},
		{"icmpv6 ns", flow6.ICMP(ICMPv6NeighborSolicit, 0, packettest.ND(0, ip6B)),
			Frame{IPValid: true, Tuple: tuple(ip6A, ip6B, 0, 0, ProtoICMPv6), ICMPType: ICMPv6NeighborSolicit, NDTarget: ip6B}},
		{"icmpv6 na", flow6.ICMP(ICMPv6NeighborAdvert, 0, packettest.ND(0x60000000, ip6A, packettest.LinkAddrOption(2, macA))),
			Frame{IPValid: true, Tuple: tuple(ip6A, ip6B, 0, 0, ProtoICMPv6), ICMPType: ICMPv6NeighborAdvert, NDTarget: ip6A}},
		{"icmpv6 unreachable udp", icmpError6(ICMPv6Unreachable, ipPacket(udp6)), Frame{
			IPValid: true, Tuple: tuple(ip6B, ip6A, 0, 0, ProtoICMPv6), ICMPType: ICMPv6Unreachable,
			ICMPError: true, InnerValid: true, Inner: tuple(ip6A, ip6B, 40000, 53, ProtoUDP)}},
		{"icmpv6 packet too big", icmpError6(ICMPv6PacketTooBig, ipPacket(flow6.TCP(1, 2, TCPAck, 0, 0, nil))[:48]), Frame{
			IPValid: true, Tuple: tuple(ip6B, ip6A, 0, 0, ProtoICMPv6), ICMPType: ICMPv6PacketTooBig,
			ICMPError: true, InnerValid: true, Inner: tuple(ip6A, ip6B, 1, 2, ProtoTCP)}},
		{"icmp over ipv6 is opaque", flow6.IP(ProtoICMP, []byte{8}), Frame{IPValid: true, Tuple: tuple(ip6A, ip6B, 0, 0, ProtoICMP)}},
		{"no next header", flow6.IP(59, nil), Frame{IPValid: true, Tuple: tuple(ip6A, ip6B, 0, 0, 59)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse(t, tt.frame)
			w := tt.want
			if w.Tuple.Src == ip4B || w.Tuple.Src == ip6B {
				w.Src, w.Dst = macB, macA // a reply from B
			} else {
				w.Src = macA
				if w.Dst == (MAC{}) {
					w.Dst = macB
				}
			}
			if w.EtherType == 0 {
				w.EtherType = EtherTypeIPv4
				if w.Tuple.Src.Is6() {
					w.EtherType = EtherTypeIPv6
				}
			}
			// Slices are checked by TestParseLayout; compare the rest.
			if got, want := scalars(*f), scalars(w); got != want {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// scalars returns f without its slices, so that it can be compared.
func scalars(f Frame) any {
	type frameScalars struct {
		Dst, Src, ARPSenderMAC, ARPTargetMAC       MAC
		EtherType, ARPOp                           uint16
		ARPSenderIP, ARPTargetIP, NDTarget         netip.Addr
		IPValid, DHCPServer, ICMPError, InnerValid bool
		Tuple, Inner                               Tuple
		TCPFlags, ICMPType, ICMPCode               uint8
	}
	return frameScalars{
		f.Dst, f.Src, f.ARPSenderMAC, f.ARPTargetMAC, f.EtherType, f.ARPOp,
		f.ARPSenderIP, f.ARPTargetIP, f.NDTarget, f.IPValid, f.DHCPServer, f.ICMPError, f.InnerValid,
		f.Tuple, f.Inner, f.TCPFlags, f.ICMPType, f.ICMPCode,
	}
}

func TestParseLayout(t *testing.T) {
	padded := append(flow4.TCP(1, 2, TCPAck, 0, 0, []byte("abc")), make([]byte, 7)...)
	f := mustParse(t, padded)
	if &f.Raw[0] != &padded[0] || len(f.Raw) != len(padded) {
		t.Error("Raw does not alias the frame")
	}
	if &f.IPHeader[0] != &padded[14] || len(f.IPHeader) != 20 || cap(f.IPHeader) != 20 {
		t.Errorf("IPHeader len %d cap %d, want 20 20 at offset 14", len(f.IPHeader), cap(f.IPHeader))
	}
	if &f.L4[0] != &padded[34] || len(f.L4) != 23 || cap(f.L4) != 23 {
		t.Errorf("L4 len %d cap %d, want 23 23 at offset 34 (padding excluded)", len(f.L4), cap(f.L4))
	}
	f = mustParse(t, flow6.UDP(1, 2, []byte("abc")))
	if len(f.IPHeader) != 40 || len(f.L4) != 11 {
		t.Errorf("IPv6 header %d L4 %d, want 40 11", len(f.IPHeader), len(f.L4))
	}
}

func TestParseResetsFrame(t *testing.T) {
	var f Frame
	Parse(icmpError4(ICMPv4Unreachable, ipPacket(flow4.TCP(1, 2, TCPSyn, 0, 0, nil))), &f)
	if r := Parse(packettest.ARP(Broadcast, macA, ARPRequest, macA, ip4A, MAC{}, ip4B), &f); r != OK {
		t.Fatal(r)
	}
	if f.IPValid || f.ICMPError || f.InnerValid || f.Tuple != (Tuple{}) || f.L4 != nil {
		t.Errorf("fields of the previous frame leaked: %+v", f)
	}
}

// TestEchoTuplesReverse pins the convention conntrack relies on.
func TestEchoTuplesReverse(t *testing.T) {
	for _, c := range []struct {
		fl       packettest.Flow
		req, rep uint8
	}{{flow4, ICMPv4EchoRequest, ICMPv4EchoReply}, {flow6, ICMPv6EchoRequest, ICMPv6EchoReply}} {
		req := mustParse(t, c.fl.ICMP(c.req, 0, packettest.Echo(4242, 1)))
		rep := mustParse(t, c.fl.Reverse().ICMP(c.rep, 0, packettest.Echo(4242, 1)))
		if rep.Tuple.Reverse() != req.Tuple {
			t.Errorf("reply %v reversed != request %v", rep.Tuple, req.Tuple)
		}
	}
}

func TestParseDrops(t *testing.T) {
	tcp4 := flow4.TCP(1, 2, TCPSyn, 0, 0, nil)
	udp4 := flow4.UDP(1, 2, nil)
	tcp6 := flow6.TCP(1, 2, TCPSyn, 0, 0, nil)
	arp := packettest.ARP(Broadcast, macA, ARPRequest, macA, ip4A, MAC{}, ip4B)
	quote4 := ipPacket(tcp4)[:28]
	quote6 := ipPacket(tcp6)[:48]
	setTotal := func(n uint16) func([]byte) { return func(b []byte) { binary.BigEndian.PutUint16(b[16:18], n) } }
	setQuoted := func(off int, v byte) []byte { // v into quote4[off], as an ICMP error
		return icmpError4(ICMPv4Unreachable, mut(quote4, func(q []byte) { q[off] = v }))
	}
	tests := []struct {
		name  string
		frame []byte
		want  Reason
	}{
		{"empty", nil, TooShort},
		{"13 bytes", make([]byte, 13), TooShort},
		{"jumbo", make([]byte, MaxFrame+1), TooLong},
		{"vlan", mut(tcp4, func(b []byte) { b[12], b[13] = 0x81, 0x00 }), VLANTagged},
		{"qinq", mut(tcp4, func(b []byte) { b[12], b[13] = 0x88, 0xa8 }), VLANTagged},
		{"lldp", mut(tcp4, func(b []byte) { b[12], b[13] = 0x88, 0xcc }), UnknownEther},
		{"802.3 length", mut(tcp4, func(b []byte) { b[12], b[13] = 0x00, 0x40 }), UnknownEther},
		{"bare ethernet", packettest.Ether(macB, macA, EtherTypeIPv4, nil)[:14], BadIPHeader},

		{"arp short", arp[:14+27], BadARP},
		{"arp htype", mut(arp, func(b []byte) { b[15] = 6 }), BadARP},
		{"arp ptype", mut(arp, func(b []byte) { b[16] = 0x86 }), BadARP},
		{"arp hlen", mut(arp, func(b []byte) { b[18] = 8 }), BadARP},
		{"arp plen", mut(arp, func(b []byte) { b[19] = 16 }), BadARP},
		{"arp op 0", mut(arp, func(b []byte) { b[21] = 0 }), BadARP},
		{"arp op 3 (rarp)", mut(arp, func(b []byte) { b[21] = 3 }), BadARP},

		{"ipv4 short", tcp4[:14+19], BadIPHeader},
		{"ipv4 version 6", mut(tcp4, func(b []byte) { b[14] = 0x65 }), BadIPHeader},
		{"ipv4 ihl 4", mut(tcp4, func(b []byte) { b[14] = 0x44 }), BadIPHeader},
		{"ipv4 ihl past frame", mut(tcp4, func(b []byte) { b[14] = 0x4f }), BadIPHeader},
		{"ipv4 total < ihl", mut(tcp4, setTotal(19)), BadIPHeader},
		{"ipv4 total past frame", mut(tcp4, setTotal(41)), BadIPHeader},
		{"ipv6 short", tcp6[:14+39], BadIPHeader},
		{"ipv6 version 4", mut(tcp6, func(b []byte) { b[14] = 0x40 }), BadIPHeader},
		{"ipv6 payload past frame", mut(tcp6, func(b []byte) { b[19]++ }), BadIPHeader},

		{"fragment mf", mut(tcp4, func(b []byte) { b[20] = 0x20 }), IPFragment},
		{"fragment offset", mut(tcp4, func(b []byte) { b[20], b[21] = 0x00, 0x01 }), IPFragment},
		{"fragment last", mut(tcp4, func(b []byte) { b[20], b[21] = 0x40, 0xb9 }), IPFragment},

		{"tcp4 short", flow4.IP(ProtoTCP, make([]byte, 19)), TruncatedL4},
		{"tcp4 short by total length", mut(tcp4, setTotal(39)), TruncatedL4},
		{"tcp data offset 4", mut(tcp4, func(b []byte) { b[46] = 4 << 4 }), TruncatedL4},
		{"tcp data offset past segment", mut(tcp4, func(b []byte) { b[46] = 6 << 4 }), TruncatedL4},
		{"udp4 short", mut(udp4, setTotal(27)), TruncatedL4},
		{"icmp4 short", flow4.IP(ProtoICMP, make([]byte, 7)), TruncatedL4},
		{"tcp6 short", flow6.IP(ProtoTCP, make([]byte, 19)), TruncatedL4},
		{"udp6 short", flow6.IP(ProtoUDP, make([]byte, 7)), TruncatedL4},
		{"icmpv6 short", flow6.IP(ProtoICMPv6, []byte{128, 0, 0, 0, 0, 0, 0}), TruncatedL4},
		{"ns short", flow6.ICMP(ICMPv6NeighborSolicit, 0, make([]byte, 19)), TruncatedL4},
		{"na short", flow6.ICMP(ICMPv6NeighborAdvert, 0, make([]byte, 19)), TruncatedL4},

		{"quote4 short", icmpError4(ICMPv4Unreachable, quote4[:27]), BadICMPEmbedded},
		{"quote4 header only", icmpError4(ICMPv4TimeExceeded, quote4[:20]), BadICMPEmbedded},
		{"quote4 version 6", setQuoted(0, 0x65), BadICMPEmbedded},
		{"quote4 ihl 4", setQuoted(0, 0x44), BadICMPEmbedded},
		{"quote4 ihl past quote", setQuoted(0, 0x46), BadICMPEmbedded},
		{"quote4 total < ihl", icmpError4(ICMPv4Unreachable, mut(quote4, func(q []byte) { q[2], q[3] = 0, 19 })), BadICMPEmbedded},
		{"quote4 fragment offset", setQuoted(7, 1), BadICMPEmbedded},
		{"quote4 empty", icmpError4(ICMPv4ParamProblem, nil), BadICMPEmbedded},
		{"quote6 short", icmpError6(ICMPv6Unreachable, quote6[:47]), BadICMPEmbedded},
		{"quote6 version 4", icmpError6(ICMPv6TimeExceeded, mut(quote6, func(q []byte) { q[0] = 0x45 })), BadICMPEmbedded},
		{"quote6 fragment header", icmpError6(ICMPv6PacketTooBig, mut(quote6, func(q []byte) { q[6] = 44 })), BadICMPEmbedded},
		{"quote6 empty", icmpError6(ICMPv6ParamProblem, nil), BadICMPEmbedded},
	}
	for _, next := range []uint8{0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254} {
		tests = append(tests, struct {
			name  string
			frame []byte
			want  Reason
		}{"ipv6 ext header " + strconv.Itoa(int(next)), flow6.IP(next, make([]byte, 64)), IPv6ExtHeader})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Frame
			if got := Parse(tt.frame, &f); got != tt.want {
				t.Errorf("Parse = %v, want %v", got, tt.want)
			}
		})
	}
}

// bootp returns a 300-byte BOOTP message with op, and the DHCP magic cookie
// and a DHCPOFFER option when cookie is set.
func bootp(op byte, cookie bool) []byte {
	b := make([]byte, 300)
	b[0], b[1], b[2] = op, 1, 6
	if cookie {
		binary.BigEndian.PutUint32(b[236:240], 0x63825363)
		copy(b[240:], []byte{53, 1, 2, 255})
	}
	return b
}
