package netsw

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
	"github.com/bulwark-project/bulwark/internal/netsw/portsec"
)

// Attacks from guests that got through the switch once (issue 15), each
// reproduced here.

// quoteError returns an ICMPv4 destination-unreachable from flow errFl
// quoting the first bytes of the IPv4 packet in frame.
func quoteError(errFl packettest.Flow, frame []byte) []byte {
	quoted := frame[packettest.EthLen : packettest.IPv4L4+8]
	return errFl.ICMP(packet.ICMPv4Unreachable, packet.ICMPv4PortUnreachable, append(make([]byte, 4), quoted...))
}

// An ICMP error about a flow between a and b passes only from the flow's
// peer: a VM in another group quoting the session is dropped
// (icmp_error_foreign), as is an error quoting nothing tracked
// (icmp_error_unrelated), and the peer's own errors are rate-limited.
func TestICMPErrorsOnlyFromPeer(t *testing.T) {
	ts := newTestSwitch(t, webDB)
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")
	c := ts.attach("c", 0, "n", 3, "db")
	d := ts.attach("d", 0, "n", 4, "web") // same group as a: its rules would allow it

	handshake(a, b, 40000, 80)
	data := tcpData(a, b, 40000, 80, "GET /")
	a.send(data)
	b.expect(data)

	// From c (another group) and d (a's group), to a, quoting a's packet.
	for _, x := range []*nic{c, d} {
		x.send(quoteError(x.flow(a), data))
		ts.waitDrops(x, "icmp_error_foreign", 1)
		x.expectNotForwarded(a)
	}
	// From b about a flow that does not exist.
	other := a.flow(b).TCP(40001, 81, packet.TCPAck, 1, 1, nil)
	b.send(quoteError(b.flow(a), other))
	ts.waitDrops(b, "icmp_error_unrelated", 1)
	b.expectNotForwarded(a)

	// From the peer: delivered, up to ICMPErrorPPS at once.
	e := quoteError(b.flow(a), data)
	b.send(e)
	a.expect(e)
	for range 2 * ICMPErrorPPS {
		b.send(e)
	}
	ts.barrier(b)
	st := ts.status(b)
	if n := st.Drops["icmp_error_rate"]; n < ICMPErrorPPS/2 || n > 2*ICMPErrorPPS {
		t.Errorf("%d icmp_error_rate drops of %d errors", n, 2*ICMPErrorPPS)
	}
	for _, r := range []string{"icmp_error_foreign", "icmp_error_unrelated", "icmp_error_rate"} {
		if !ts.logHas(`"reason":"` + r + `"`) {
			t.Errorf("no log line for %s:\n%s", r, ts.log.String())
		}
	}
}

// dhcpOffer returns a DHCPOFFER (BOOTREPLY with the magic cookie, option 53
// = 2) of 300 bytes.
func dhcpOffer() []byte {
	b := make([]byte, 300)
	b[0], b[1], b[2] = 2, 1, 6
	binary.BigEndian.PutUint32(b[236:240], 0x63825363)
	copy(b[240:], []byte{53, 1, 2, 3, 4, 10, 0, 0, 3, 255}) // router: itself
	return b
}

// A guest's DHCP server is refused whatever its port: an offer from port
// 6767 to the client port, or to any port, is rogue_dhcp at the sender and
// never reaches the neighbour; other UDP from port 6767 still flows.
func TestRogueDHCPByContent(t *testing.T) {
	ts := newTestSwitch(t, webDB)
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")
	bcast := packettest.Flow{SrcMAC: a.mac, DstMAC: packet.Broadcast, Src: a.ip, Dst: netip.MustParseAddr("255.255.255.255")}
	frames := [][]byte{
		bcast.UDP(6767, 68, dhcpOffer()),
		a.flow(b).UDP(6767, 68, dhcpOffer()),
		a.flow(b).UDP(6767, 6868, dhcpOffer()),
		bcast.UDP(67, 68, dhcpOffer()),
	}
	for i, fr := range frames {
		a.send(fr)
		ts.waitDrops(a, "rogue_dhcp", uint64(i+1))
	}
	a.expectNotForwarded(b)
	ok := a.flow(b).UDP(6767, 6868, []byte("not dhcp"))
	a.send(ok)
	b.expect(ok)
}

// fakeUplink gives network n an uplink port whose I/O is a sink (no reader:
// tests call process for frames "from outside").
func (ts *testSwitch) fakeUplink(network string) (*Port, *sinkIO) {
	ts.t.Helper()
	sw := ts.sw
	sw.mu.Lock()
	defer sw.mu.Unlock()
	n := sw.networks[network]
	sink := &sinkIO{}
	sw.nextID++
	p := &Port{ID: sw.nextID, Name: "uplink/" + network, Kind: UplinkPort, net: n, io: sink}
	sw.byID[p.ID] = p
	n.uplink = p
	if err := sw.recompileLocked(); err != nil {
		ts.t.Fatal(err)
	}
	return p, sink
}

// Unicast to a MAC no port has is not flooded: on a VM-only network it is
// dropped (unknown_unicast) and no other port sees a frame of the flood;
// with an uplink it goes to the uplink only, within storm control.
func TestUnknownUnicastNotFlooded(t *testing.T) {
	ts := newTestSwitch(t, webDB)
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")
	c := ts.attach("c", 0, "n", 3, "db")
	nowhere := packet.MAC{0x02, 0, 0, 0, 0, 0x99}
	const flood = 1000
	frames := [][]byte{
		packettest.Flow{SrcMAC: a.mac, DstMAC: nowhere, Src: a.ip, Dst: b.ip}.UDP(1, 2, nil),
		packettest.Flow{SrcMAC: a.mac, DstMAC: nowhere, Src: a.ip, Dst: netip.MustParseAddr("10.0.0.99")}.UDP(1, 2, nil),
		packettest.ARP(nowhere, a.mac, packet.ARPRequest, a.mac, a.ip, packet.MAC{}, c.ip),
	}
	for i := range flood {
		a.send(frames[i%len(frames)])
	}
	ts.waitDrops(a, "unknown_unicast", flood)
	a.expectNotForwarded(b)
	a.expectNotForwarded(c)
	for _, n := range []*nic{b, c} {
		if st := ts.status(n); st.TxFrames != 1 {
			t.Errorf("%s was sent %d frames, want only the marker", st.Name, st.TxFrames)
		}
	}

	// With an uplink: the uplink gets the frames storm control admits.
	up, sink := ts.fakeUplink("n")
	for i := range flood {
		a.send(frames[i%2]) // IP: the uplink side has no rules to refuse them
	}
	ts.barrier(a)
	st := ts.status(a)
	storm := st.Drops["storm_control"]
	if storm == 0 || storm >= flood {
		t.Errorf("storm_control dropped %d of %d unknown-unicast frames", storm, flood)
	}
	got := sink.frames // written by a's reader before the barrier's drop was counted
	if uint64(got)+storm != flood {
		t.Errorf("uplink got %d frames, storm control dropped %d, of %d", got, storm, flood)
	}
	a.expectNotForwarded(b)

	// From the uplink, an unknown destination is nobody's.
	var f packet.Frame
	ts.sw.process(up, packettest.Flow{SrcMAC: packet.MAC{0x02, 9, 9, 9, 9, 9}, DstMAC: nowhere, Src: netip.MustParseAddr("10.0.0.200"), Dst: b.ip}.UDP(1, 2, nil), &f, nil)
	if n := up.status().Drops["unknown_unicast"]; n != 1 {
		t.Errorf("uplink counted %d unknown_unicast drops, want 1", n)
	}
	a.expectNotForwarded(b)
}

// A VM port receives only IP packets for its own addresses (or group
// addresses), whatever the Ethernet destination: a broadcast frame wrapping
// b's address reaches b, not c, though c is in the same group; true
// broadcasts (limited and subnet-directed) reach both.
func TestBroadcastFrameForOneAddress(t *testing.T) {
	ts := newTestSwitch(t, webDB)
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")
	c := ts.attach("c", 0, "n", 3, "web")
	toB := packettest.Flow{SrcMAC: a.mac, DstMAC: packet.Broadcast, Src: a.ip, Dst: b.ip}.UDP(5000, 5001, []byte("for b"))
	a.send(toB)
	b.expect(toB)
	a.expectNotForwarded(c)
	for _, dst := range []string{"255.255.255.255", "10.0.0.255"} {
		bc := packettest.Flow{SrcMAC: a.mac, DstMAC: packet.Broadcast, Src: a.ip, Dst: netip.MustParseAddr(dst)}.UDP(5000, 5002, nil)
		a.send(bc)
		b.expect(bc)
		c.expect(bc)
	}
}

// Members of one group ping each other over IPv6 link-local addresses (the
// same-group default matches a member's link-local source); a port of
// another group is still denied.
func TestIPv6LinkLocalWithinGroup(t *testing.T) {
	ts := newTestSwitch(t, webDB)
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")
	c := ts.attach("c", 0, "n", 3, "db")
	ll := func(n *nic) netip.Addr { return portsec.LinkLocal(n.mac) }
	fl := packettest.Flow{SrcMAC: a.mac, DstMAC: b.mac, Src: ll(a), Dst: ll(b)}
	// Neighbour solicitation to b's solicited-node group, then the echo.
	llb := ll(b).As16()
	group := netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: llb[13], 14: llb[14], 15: llb[15]})
	ns := packettest.Flow{SrcMAC: a.mac, DstMAC: packet.MAC{0x33, 0x33, 0xff, llb[13], llb[14], llb[15]}, Src: ll(a), Dst: group}.
		ICMP(packet.ICMPv6NeighborSolicit, 0, packettest.ND(0, ll(b), packettest.LinkAddrOption(1, a.mac)))
	a.send(ns)
	b.expect(ns)
	echo := fl.ICMP(packet.ICMPv6EchoRequest, 0, packettest.Echo(3, 1))
	a.send(echo)
	b.expect(echo)
	reply := fl.Reverse().ICMP(packet.ICMPv6EchoReply, 0, packettest.Echo(3, 1))
	b.send(reply)
	a.expect(reply)

	toC := packettest.Flow{SrcMAC: a.mac, DstMAC: c.mac, Src: ll(a), Dst: ll(c)}.ICMP(packet.ICMPv6EchoRequest, 0, packettest.Echo(4, 1))
	a.send(toC)
	ts.waitDrops(c, "fw_default_deny", 2) // the flooded solicitation, then the echo
	a.expectNotForwarded(c)
}
