package netsw

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
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
