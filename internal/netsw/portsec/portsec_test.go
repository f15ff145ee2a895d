package portsec

import (
	"net/netip"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

var (
	vmMAC    = packet.MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	otherMAC = packet.MAC{0x52, 0x54, 0x00, 0x65, 0x43, 0x21}
	gwMAC    = packet.MAC{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}
	vm4      = netip.MustParseAddr("10.0.0.5")
	other4   = netip.MustParseAddr("10.0.0.6")
	gw4      = netip.MustParseAddr("10.0.0.1")
	vm6      = netip.MustParseAddr("fd00::5")
	other6   = netip.MustParseAddr("fd00::6")
	vmLL     = netip.MustParseAddr("fe80::5054:ff:fe12:3456") // EUI-64 of vmMAC
	otherLL  = netip.MustParseAddr("fe80::1234")
	allNodes = netip.MustParseAddr("ff02::1")
	mldv2    = netip.MustParseAddr("ff02::16")
	zero4    = netip.IPv4Unspecified()
	zero6    = netip.IPv6Unspecified()

	bound   = Binding{MAC: vmMAC, IPs: []netip.Addr{vm4, vm6}}
	noIPs   = Binding{MAC: vmMAC}
	zeroMAC = Binding{IPs: []netip.Addr{vm4}}
)

// from returns a flow from the VM's MAC and src to dst.
func from(src, dst netip.Addr) packettest.Flow {
	return packettest.Flow{SrcMAC: vmMAC, DstMAC: gwMAC, Src: src, Dst: dst}
}

func arp(ethSrc packet.MAC, op uint16, sha packet.MAC, spa, tpa netip.Addr) []byte {
	return packettest.ARP(packet.Broadcast, ethSrc, op, sha, spa, packet.MAC{}, tpa)
}

func nd(typ uint8, src, target netip.Addr, opts ...[]byte) []byte {
	return from(src, allNodes).ICMP(typ, 0, packettest.ND(0, target, opts...))
}

func slla(m packet.MAC) []byte { return packettest.LinkAddrOption(1, m) }
func tlla(m packet.MAC) []byte { return packettest.LinkAddrOption(2, m) }

func TestLinkLocal(t *testing.T) {
	if got := LinkLocal(vmMAC); got != vmLL {
		t.Errorf("LinkLocal(%x) = %v, want %v", vmMAC[:], got, vmLL)
	}
}

func TestCheckEgress(t *testing.T) {
	nonce := []byte{14, 1, 1, 2, 3, 4, 5, 6} // ND nonce option: not a link-layer address
	tests := []struct {
		name  string
		b     *Binding
		frame []byte
		want  packet.Reason
	}{
		// Ethernet.
		{"own mac", &bound, from(vm4, gw4).TCP(1, 2, packet.TCPSyn, 0, 0, nil), packet.OK},
		{"foreign mac", &bound, packettest.Flow{SrcMAC: otherMAC, DstMAC: gwMAC, Src: vm4, Dst: gw4}.UDP(1, 2, nil), packet.SpoofedMAC},
		{"zero binding mac", &zeroMAC, packettest.Flow{DstMAC: gwMAC, Src: vm4, Dst: gw4}.UDP(1, 2, nil), packet.SpoofedMAC},

		// ARP.
		{"arp request", &bound, arp(vmMAC, packet.ARPRequest, vmMAC, vm4, gw4), packet.OK},
		{"arp reply", &bound, packettest.ARP(gwMAC, vmMAC, packet.ARPReply, vmMAC, vm4, gwMAC, gw4), packet.OK},
		{"arp announcement", &bound, arp(vmMAC, packet.ARPRequest, vmMAC, vm4, vm4), packet.OK},
		{"arp probe", &bound, arp(vmMAC, packet.ARPRequest, vmMAC, zero4, vm4), packet.OK},
		{"arp probe no ips", &noIPs, arp(vmMAC, packet.ARPRequest, vmMAC, zero4, vm4), packet.OK},
		{"arp probe for foreign", &bound, arp(vmMAC, packet.ARPRequest, vmMAC, zero4, other4), packet.OK},
		{"arp reply from 0.0.0.0", &bound, arp(vmMAC, packet.ARPReply, vmMAC, zero4, gw4), packet.SpoofedARP},
		{"arp foreign sender mac", &bound, arp(vmMAC, packet.ARPReply, otherMAC, vm4, gw4), packet.SpoofedARP},
		{"arp foreign sender ip", &bound, packettest.ARP(gwMAC, vmMAC, packet.ARPReply, vmMAC, gw4, gwMAC, gw4), packet.SpoofedARP},
		{"gratuitous arp foreign", &bound, arp(vmMAC, packet.ARPRequest, vmMAC, other4, other4), packet.SpoofedARP},
		{"arp request no ips", &noIPs, arp(vmMAC, packet.ARPRequest, vmMAC, vm4, gw4), packet.SpoofedARP},
		{"arp foreign ether src", &bound, arp(otherMAC, packet.ARPRequest, vmMAC, vm4, gw4), packet.SpoofedMAC},

		// IPv4.
		{"ipv4 own", &bound, from(vm4, gw4).UDP(5000, 53, nil), packet.OK},
		{"ipv4 foreign", &bound, from(other4, gw4).UDP(5000, 53, nil), packet.SpoofedIP},
		{"ipv4 no ips", &noIPs, from(vm4, gw4).TCP(1, 2, packet.TCPSyn, 0, 0, nil), packet.SpoofedIP},
		{"dhcp discover", &bound, from(zero4, netip.MustParseAddr("255.255.255.255")).UDP(68, 67, nil), packet.OK},
		{"dhcp discover no ips", &noIPs, from(zero4, netip.MustParseAddr("255.255.255.255")).UDP(68, 67, nil), packet.OK},
		{"dhcp renew", &bound, from(vm4, gw4).UDP(68, 67, nil), packet.OK},
		{"0.0.0.0 udp not dhcp", &bound, from(zero4, gw4).UDP(68, 69, nil), packet.SpoofedIP},
		{"0.0.0.0 udp to 67 from 69", &bound, from(zero4, gw4).UDP(69, 67, nil), packet.SpoofedIP},
		{"0.0.0.0 tcp", &bound, from(zero4, gw4).TCP(68, 67, packet.TCPSyn, 0, 0, nil), packet.SpoofedIP},
		{"dhcp offer", &bound, from(vm4, other4).UDP(67, 68, nil), packet.RogueDHCP},
		{"dhcp offer from 0.0.0.0", &bound, from(zero4, other4).UDP(67, 68, nil), packet.RogueDHCP},
		{"dhcp relay", &bound, from(vm4, gw4).UDP(67, 67, nil), packet.RogueDHCP},

		// IPv6 sources.
		{"ipv6 own", &bound, from(vm6, other6).TCP(1, 2, packet.TCPSyn, 0, 0, nil), packet.OK},
		{"ipv6 eui-64 link-local", &bound, from(vmLL, otherLL).UDP(1, 2, nil), packet.OK},
		{"ipv6 eui-64 link-local no ips", &noIPs, from(vmLL, otherLL).UDP(1, 2, nil), packet.OK},
		{"ipv6 foreign", &bound, from(other6, vm6).UDP(1, 2, nil), packet.SpoofedIP},
		{"ipv6 no ips", &noIPs, from(vm6, other6).UDP(1, 2, nil), packet.SpoofedIP},
		{"ipv6 other link-local", &bound, from(otherLL, vmLL).UDP(1, 2, nil), packet.SpoofedIP},
		{"ipv6 :: udp", &bound, from(zero6, other6).UDP(546, 547, nil), packet.SpoofedIP},
		{"ipv6 :: echo", &bound, from(zero6, other6).ICMP(packet.ICMPv6EchoRequest, 0, packettest.Echo(1, 1)), packet.SpoofedIP},
		{"mldv2 report from ::", &bound, from(zero6, mldv2).ICMP(packet.ICMPv6MLDv2Report, 0, make([]byte, 4)), packet.OK},
		{"mldv1 report from ::", &bound, from(zero6, mldv2).ICMP(packet.ICMPv6MLDv1Report, 0, make([]byte, 20)), packet.OK},
		{"mld query from ::", &bound, from(zero6, allNodes).ICMP(130, 0, make([]byte, 20)), packet.SpoofedIP},
		{"dhcpv6 client", &bound, from(vmLL, netip.MustParseAddr("ff02::1:2")).UDP(546, 547, nil), packet.OK},
		{"dhcpv6 server", &bound, from(vmLL, otherLL).UDP(547, 546, nil), packet.RogueDHCP},
		{"router advertisement", &bound, from(vmLL, allNodes).ICMP(packet.ICMPv6RouterAdvert, 0, make([]byte, 12)), packet.RogueRA},
		{"router advertisement spoofed src", &bound, from(otherLL, allNodes).ICMP(packet.ICMPv6RouterAdvert, 0, make([]byte, 12)), packet.RogueRA},

		// Neighbor Discovery.
		{"dad own", &bound, nd(packet.ICMPv6NeighborSolicit, zero6, vm6), packet.OK},
		{"dad link-local", &noIPs, nd(packet.ICMPv6NeighborSolicit, zero6, vmLL), packet.OK},
		{"dad foreign", &bound, nd(packet.ICMPv6NeighborSolicit, zero6, other6), packet.SpoofedND},
		{"ns for foreign", &bound, nd(packet.ICMPv6NeighborSolicit, vm6, other6, slla(vmMAC)), packet.OK},
		{"ns foreign slla", &bound, nd(packet.ICMPv6NeighborSolicit, vm6, other6, slla(otherMAC)), packet.SpoofedND},
		{"ns nonce option", &bound, nd(packet.ICMPv6NeighborSolicit, vmLL, other6, nonce, slla(vmMAC)), packet.OK},
		{"ns second slla foreign", &bound, nd(packet.ICMPv6NeighborSolicit, vm6, other6, slla(vmMAC), slla(otherMAC)), packet.SpoofedND},
		{"ns option length 0", &bound, nd(packet.ICMPv6NeighborSolicit, vm6, other6, []byte{1, 0, 1, 2, 3, 4, 5, 6}), packet.SpoofedND},
		{"ns option overruns", &bound, nd(packet.ICMPv6NeighborSolicit, vm6, other6, []byte{14, 2, 1, 2, 3, 4, 5, 6}), packet.SpoofedND},
		{"ns option stub", &bound, nd(packet.ICMPv6NeighborSolicit, vm6, other6, slla(vmMAC), []byte{14}), packet.SpoofedND},
		{"na own", &bound, nd(packet.ICMPv6NeighborAdvert, vm6, vm6, tlla(vmMAC)), packet.OK},
		{"na link-local", &bound, nd(packet.ICMPv6NeighborAdvert, vmLL, vmLL), packet.OK},
		{"na foreign target", &bound, nd(packet.ICMPv6NeighborAdvert, vm6, other6, tlla(vmMAC)), packet.SpoofedND},
		{"na foreign link-local target", &bound, nd(packet.ICMPv6NeighborAdvert, vmLL, otherLL), packet.SpoofedND},
		{"na foreign tlla", &bound, nd(packet.ICMPv6NeighborAdvert, vm6, vm6, tlla(otherMAC)), packet.SpoofedND},
		{"na from ::", &bound, nd(packet.ICMPv6NeighborAdvert, zero6, vm6), packet.SpoofedIP},
		{"na no ips", &noIPs, nd(packet.ICMPv6NeighborAdvert, vmLL, vm6), packet.SpoofedND},
		{"rs own", &bound, from(vmLL, allNodes).ICMP(packet.ICMPv6RouterSolicit, 0, append(make([]byte, 4), slla(vmMAC)...)), packet.OK},
		{"rs foreign slla", &bound, from(vmLL, allNodes).ICMP(packet.ICMPv6RouterSolicit, 0, append(make([]byte, 4), slla(otherMAC)...)), packet.SpoofedND},
		{"echo own", &bound, from(vm6, other6).ICMP(packet.ICMPv6EchoRequest, 0, packettest.Echo(1, 1)), packet.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f packet.Frame
			if r := packet.Parse(tt.frame, &f); r != packet.OK {
				t.Fatalf("Parse = %v", r)
			}
			if got := tt.b.CheckEgress(&f); got != tt.want {
				t.Errorf("CheckEgress = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCheckEgressFailsClosed covers frames Parse would not accept.
func TestCheckEgressFailsClosed(t *testing.T) {
	tests := []struct {
		name string
		f    packet.Frame
		want packet.Reason
	}{
		{"unknown ethertype", packet.Frame{Src: vmMAC, EtherType: 0x88cc}, packet.UnknownEther},
		{"ipv4 not parsed", packet.Frame{Src: vmMAC, EtherType: packet.EtherTypeIPv4}, packet.BadIPHeader},
		{"ipv6 not parsed", packet.Frame{Src: vmMAC, EtherType: packet.EtherTypeIPv6}, packet.BadIPHeader},
		{"group source", packet.Frame{Src: packet.Broadcast, EtherType: packet.EtherTypeARP}, packet.SpoofedMAC},
	}
	group := Binding{MAC: packet.Broadcast}
	for _, tt := range tests {
		if got := bound.CheckEgress(&tt.f); got != tt.want {
			t.Errorf("%s: CheckEgress = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := group.CheckEgress(&tests[3].f); got != packet.SpoofedMAC {
		t.Errorf("group binding: CheckEgress = %v, want spoofed_mac", got)
	}
}

func TestValidate(t *testing.T) {
	nine := make([]netip.Addr, MaxIPs+1)
	for i := range nine {
		nine[i] = netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})
	}
	tests := []struct {
		name string
		b    Binding
		ok   bool
	}{
		{"bound", bound, true},
		{"no ips", noIPs, true},
		{"eight ips", Binding{MAC: vmMAC, IPs: nine[:MaxIPs]}, true},
		{"link-local bound", Binding{MAC: vmMAC, IPs: []netip.Addr{otherLL}}, true},
		{"zero mac", zeroMAC, false},
		{"multicast mac", Binding{MAC: packet.MAC{0x01, 0, 0x5e, 0, 0, 1}}, false},
		{"nine ips", Binding{MAC: vmMAC, IPs: nine}, false},
		{"invalid ip", Binding{MAC: vmMAC, IPs: []netip.Addr{{}}}, false},
		{"4in6", Binding{MAC: vmMAC, IPs: []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.5")}}, false},
		{"zone", Binding{MAC: vmMAC, IPs: []netip.Addr{netip.MustParseAddr("fe80::1%eth0")}}, false},
		{"unspecified", Binding{MAC: vmMAC, IPs: []netip.Addr{zero4}}, false},
		{"multicast ip", Binding{MAC: vmMAC, IPs: []netip.Addr{allNodes}}, false},
		{"broadcast ip", Binding{MAC: vmMAC, IPs: []netip.Addr{netip.MustParseAddr("255.255.255.255")}}, false},
	}
	for _, tt := range tests {
		if err := tt.b.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func sampleFrames() [][]byte {
	return [][]byte{
		from(vm4, gw4).TCP(40000, 443, packet.TCPSyn, 0, 0, make([]byte, 10)),
		arp(vmMAC, packet.ARPRequest, vmMAC, vm4, gw4),
		from(zero4, gw4).UDP(68, 67, nil),
		from(vm6, other6).UDP(1, 2, nil),
		nd(packet.ICMPv6NeighborAdvert, vmLL, vm6, tlla(vmMAC)),
		nd(packet.ICMPv6NeighborSolicit, zero6, vm6),
	}
}

func TestCheckEgressNoAllocs(t *testing.T) {
	frames := make([]packet.Frame, 0, 8)
	for _, b := range sampleFrames() {
		var f packet.Frame
		packet.Parse(b, &f)
		frames = append(frames, f)
	}
	if n := testing.AllocsPerRun(100, func() {
		for i := range frames {
			if r := bound.CheckEgress(&frames[i]); r != packet.OK {
				t.Fatalf("frame %d: %v", i, r)
			}
		}
	}); n != 0 {
		t.Errorf("CheckEgress allocates %v times per batch", n)
	}
}

func BenchmarkCheckEgress(b *testing.B) {
	for _, c := range []struct {
		name  string
		frame []byte
	}{{"tcp4", sampleFrames()[0]}, {"na6", sampleFrames()[4]}} {
		b.Run(c.name, func(b *testing.B) {
			var f packet.Frame
			packet.Parse(c.frame, &f)
			b.ReportAllocs()
			for b.Loop() {
				bound.CheckEgress(&f)
			}
		})
	}
}

// FuzzCheckEgress runs hostile frames that Parse accepts through the port
// check: it must not panic or read out of bounds, and it may pass a frame
// only with the port's MAC.
func FuzzCheckEgress(f *testing.F) {
	for _, b := range sampleFrames() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var fr packet.Frame
		if packet.Parse(in, &fr) != packet.OK {
			return
		}
		r := bound.CheckEgress(&fr)
		if r >= packet.Reason(packet.NumReasons) {
			t.Fatalf("undefined reason %d", r)
		}
		if r == packet.OK && fr.Src != vmMAC {
			t.Fatalf("passed a frame from %x", fr.Src[:])
		}
		noIPs.CheckEgress(&fr)
	})
}
