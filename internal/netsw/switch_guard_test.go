package netsw

import (
	"net/netip"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

// Frames claiming an address the port does not own are dropped at the
// sender's port and counted by reason; none reaches another port.
func TestAntiSpoofing(t *testing.T) {
	ts := newTestSwitch(t, webDB)
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")
	c := ts.attach("c", 0, "n", 3, "web")

	foreignMAC := packet.MAC{0x02, 0, 0, 0, 0, 0x99}
	foreignIP := netip.MustParseAddr("10.0.0.99")
	cases := []struct {
		name, reason string
		frame        []byte
	}{
		{"foreign source MAC", "spoofed_mac",
			packettest.Flow{SrcMAC: foreignMAC, DstMAC: b.mac, Src: a.ip, Dst: b.ip}.UDP(1, 2, nil)},
		{"foreign source IP", "spoofed_ip",
			packettest.Flow{SrcMAC: a.mac, DstMAC: b.mac, Src: foreignIP, Dst: b.ip}.TCP(40000, 80, packet.TCPSyn, 1, 0, nil)},
		{"gratuitous ARP for b's address", "spoofed_arp",
			packettest.ARP(packet.Broadcast, a.mac, packet.ARPRequest, a.mac, b.ip, packet.MAC{}, b.ip)},
		{"ARP reply naming a foreign MAC", "spoofed_arp",
			packettest.ARP(c.mac, a.mac, packet.ARPReply, foreignMAC, a.ip, c.mac, c.ip)},
		{"DHCP server reply", "rogue_dhcp",
			packettest.Flow{SrcMAC: a.mac, DstMAC: packet.Broadcast, Src: a.ip, Dst: netip.MustParseAddr("255.255.255.255")}.UDP(67, 68, nil)},
	}
	want := map[string]uint64{}
	for _, tc := range cases {
		a.send(tc.frame)
		want[tc.reason]++
		ts.waitDrops(a, tc.reason, want[tc.reason])
	}
	a.expectNotForwarded(b)
	a.expectNotForwarded(c)

	// The port's own gratuitous ARP is fine.
	garp := packettest.ARP(packet.Broadcast, a.mac, packet.ARPRequest, a.mac, a.ip, packet.MAC{}, a.ip)
	a.send(garp)
	b.expect(garp)
	c.expect(garp)
}

// Malformed frames are dropped and counted at the sender's port, and the
// port keeps forwarding.
func TestMalformedFrames(t *testing.T) {
	ts := newTestSwitch(t, webDB)
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")
	fl := a.flow(b)
	v6 := packettest.Flow{SrcMAC: a.mac, DstMAC: b.mac, Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2")}

	jumbo := make([]byte, 9000)
	copy(jumbo, fl.UDP(1, 2, nil))
	cases := []struct {
		name, reason string
		frame        []byte
	}{
		{"truncated Ethernet header", "too_short", fl.UDP(1, 2, nil)[:10]},
		{"truncated IPv4 header", "bad_ip_header", fl.UDP(1, 2, nil)[:packettest.EthLen+12]},
		{"truncated TCP header", "truncated_l4", fl.IP(packet.ProtoTCP, make([]byte, 10))},
		{"VLAN tag", "vlan_tagged", packettest.Ether(b.mac, a.mac, packet.EtherTypeVLAN, make([]byte, 46))},
		{"IPv4 more-fragments", "ip_fragment", mutate(fl.UDP(1, 2, []byte("frag")), packettest.EthLen+6, 0x20)},
		{"IPv4 fragment offset", "ip_fragment", mutate(fl.UDP(1, 2, []byte("frag")), packettest.EthLen+7, 0x10)},
		{"IHL below 5", "bad_ip_header", mutate(fl.UDP(1, 2, nil), packettest.EthLen, 0x43)},
		{"IHL beyond the packet", "bad_ip_header", mutate(fl.UDP(1, 2, nil), packettest.EthLen, 0x4f)},
		{"IPv6 hop-by-hop header", "ipv6_ext_header", v6.IP(0, make([]byte, 16))},
		{"jumbo 9000 bytes", "too_long", jumbo},
		{"unknown EtherType", "unknown_ethertype", packettest.Ether(b.mac, a.mac, 0x88b5, make([]byte, 46))},
	}
	want := map[string]uint64{}
	for _, tc := range cases {
		a.send(tc.frame)
		want[tc.reason]++
		ts.waitDrops(a, tc.reason, want[tc.reason])
	}
	echo := fl.ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(1, 1))
	a.send(echo)
	b.expect(echo)
	if st := ts.status(a); st.RxFrames != uint64(len(cases)+1) {
		t.Errorf("a received %d frames, want %d", st.RxFrames, len(cases)+1)
	}
}

// mutate sets byte i of b to v (fragment bits, IHL) and returns b.
func mutate(b []byte, i int, v byte) []byte {
	if i == packettest.EthLen {
		b[i] = v
	} else {
		b[i] |= v
	}
	return b
}

// A burst of broadcasts beyond the network's storm_pps is cut at the
// sender's port; unicast still flows.
func TestStormControl(t *testing.T) {
	ts := newTestSwitch(t, webDB) // 100 frames/s, burst 100
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")

	// 1000 frames: dropping none would take the sender over 9 s.
	const burst = 1000
	who := packettest.ARP(packet.Broadcast, a.mac, packet.ARPRequest, a.mac, a.ip, packet.MAC{}, b.ip)
	for range burst {
		a.send(who)
	}
	ts.barrier(a)
	st := ts.status(a)
	if st.Drops["storm_control"] == 0 || st.Drops["storm_control"] >= burst {
		t.Fatalf("storm_control drops %d of %d broadcasts", st.Drops["storm_control"], burst)
	}
	if b.recv()[0] != 0xff {
		t.Fatal("no broadcast reached b")
	}

	echo := a.flow(b).ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(1, 1))
	a.send(echo)
	recvUntil(b, echo)
}

// recvUntil reads n's frames until want arrives, skipping others (such as
// queued broadcasts).
func recvUntil(n *nic, want []byte) {
	n.t.Helper()
	for range 10000 {
		if got := n.recv(); string(got) == string(want) {
			return
		}
	}
	n.t.Fatalf("%s: %s never arrived", n.port.Name, describe(want))
}

// A receiver that never reads fills its queue; the switch then drops frames
// for it (tx_dropped_full) instead of waiting, so the sender's port and the
// rest of the network keep forwarding.
func TestFullReceiverDoesNotStall(t *testing.T) {
	ts := newTestSwitch(t, webDB)
	a := ts.attach("a", 0, "n", 1, "web")
	v := ts.attach("v", 0, "n", 2, "web") // never reads
	c := ts.attach("c", 0, "n", 3, "web")
	d := ts.attach("d", 0, "n", 4, "web")
	v.conn.SetReadBuffer(4096)

	const flood = 5000
	done := make(chan error, 1)
	go func() {
		fl := a.flow(v)
		var err error
		for i := 0; i < flood && err == nil; i++ {
			err = a.trySend(fl.UDP(40000, 9, []byte("flood")))
		}
		done <- err
	}()
	// Meanwhile c and d exchange echoes, each waiting for the last.
	fl := c.flow(d)
	for i := range uint16(200) {
		req := fl.ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(3, i))
		c.send(req)
		d.expect(req)
		rep := fl.Reverse().ICMP(packet.ICMPv4EchoReply, 0, packettest.Echo(3, i))
		d.send(rep)
		c.expect(rep)
	}
	if err := <-done; err != nil {
		t.Fatalf("flooding sender blocked: %v", err)
	}
	ts.barrier(a)
	if st := ts.status(v); st.TxFull == 0 || st.TxFrames+st.TxFull != flood {
		t.Errorf("v: tx %d, tx_dropped_full %d; want some dropped and %d in all", st.TxFrames, st.TxFull, flood)
	}
	// The flooding port still forwards.
	echo := a.flow(c).ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(4, 1))
	a.send(echo)
	c.expect(echo)
}
