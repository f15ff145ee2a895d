package netsw

import (
	"errors"
	"io/fs"
	"os"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/firewall"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
	"github.com/bulwark-project/bulwark/internal/netsw/portsec"
)

var webDB = []firewall.Group{{Name: "web"}, {Name: "db"}}

// Members of one group reach each other under the same-group default, in
// both directions and for ICMP and TCP; nothing leaks to a third port.
func TestForwardWithinGroup(t *testing.T) {
	ts := newTestSwitch(t, webDB)
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")
	c := ts.attach("c", 0, "n", 3, "db")

	fl := a.flow(b)
	echo := fl.ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(7, 1))
	a.send(echo)
	b.expect(echo)
	reply := fl.Reverse().ICMP(packet.ICMPv4EchoReply, 0, packettest.Echo(7, 1))
	b.send(reply)
	a.expect(reply)

	handshake(a, b, 40000, 80)
	data := tcpData(a, b, 40000, 80, "GET /")
	a.send(data)
	b.expect(data)
	back := fl.Reverse().TCP(80, 40000, packet.TCPAck|packet.TCPPsh, 5001, 1006, []byte("200 OK"))
	b.send(back)
	a.expect(back)

	a.expectNotForwarded(c)
	for _, n := range []*nic{a, b} {
		if st := ts.status(n); len(st.Drops) != 0 {
			t.Errorf("%s dropped frames: %v", st.Name, st.Drops)
		}
	}
	if st := ts.status(b); st.RxFrames != 3 || st.TxFrames != 4 {
		t.Errorf("b: rx %d tx %d frames, want 3 and 4", st.RxFrames, st.TxFrames)
	}
	if n := ts.flows("n"); n != 2 {
		t.Errorf("%d flows tracked, want 2 (echo and tcp)", n)
	}
}

// A new flow across groups is denied by the receiver's same-group default
// and counted on the receiver, whose ingress policy decided.
func TestDefaultDenyAcrossGroups(t *testing.T) {
	ts := newTestSwitch(t, webDB)
	a := ts.attach("a", 0, "n", 1, "web")
	c := ts.attach("c", 0, "n", 3, "db")

	fl := a.flow(c)
	a.send(fl.TCP(40000, 5432, packet.TCPSyn, 1000, 0, nil))
	a.send(fl.ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(1, 1)))
	a.expectNotForwarded(c)
	ts.waitDrops(c, "fw_default_deny", 2)
	if d := ts.status(a).Drops; len(d) != 0 {
		t.Errorf("sender counted the receiver's ingress drops: %v", d)
	}

	// The other way too, now counted on a.
	c.send(fl.Reverse().TCP(5432, 40000, packet.TCPSyn, 1, 0, nil))
	c.expectNotForwarded(a)
	ts.waitDrops(a, "fw_default_deny", 1)
}

// A reply of a flow a rule allowed passes although the receiver's policy
// would deny a new flow the other way.
func TestReplyOfAllowedFlowPasses(t *testing.T) {
	groups := []firewall.Group{{Name: "app"}, {Name: "db", Rules: []firewall.Rule{allowIn("pg", firewall.TCP, 5432, "app")}}}
	ts := newTestSwitch(t, groups)
	a := ts.attach("a", 0, "n", 1, "app")
	b := ts.attach("b", 0, "n", 2, "db")

	handshake(a, b, 40000, 5432)
	reply := b.flow(a).TCP(5432, 40000, packet.TCPAck|packet.TCPPsh, 5001, 1001, []byte("row"))
	b.send(reply)
	a.expect(reply)

	// A new flow from b to a is not a reply: a's ingress denies it.
	b.send(b.flow(a).TCP(5432, 40001, packet.TCPSyn, 1, 0, nil))
	b.expectNotForwarded(a)
	ts.waitDrops(a, "fw_default_deny", 1)
	// Nor is a port outside the rule's range.
	a.send(a.flow(b).TCP(40002, 5433, packet.TCPSyn, 1, 0, nil))
	a.expectNotForwarded(b)
	ts.waitDrops(b, "fw_default_deny", 1)
}

// A network whose default egress is deny drops new flows no egress rule
// allows, counted on the sender.
func TestDefaultEgressDeny(t *testing.T) {
	nw := testNetwork("n", "10.0.0.0/24")
	nw.DefaultEgress = "deny"
	groups := []firewall.Group{{Name: "web", Rules: []firewall.Rule{{ID: "out-http", Direction: firewall.Egress,
		Action: firewall.Allow, Proto: firewall.TCP, PortMin: 80, PortMax: 80, ICMPType: -1}}}}
	ts := newTestSwitch(t, groups, nw)
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")

	a.send(a.flow(b).ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(1, 1)))
	a.send(a.flow(b).TCP(40000, 22, packet.TCPSyn, 1, 0, nil))
	a.expectNotForwarded(b)
	ts.waitDrops(a, "fw_default_deny", 2)

	handshake(a, b, 40001, 80) // the egress rule allows it; replies pass
	if d := ts.status(b).Drops; len(d) != 0 {
		t.Errorf("receiver counted the sender's egress drops: %v", d)
	}
}

// A reject rule answers a TCP SYN with a reset and UDP with an ICMP
// administratively-prohibited unreachable, sent back to the sender's port.
func TestRejectAnswersSender(t *testing.T) {
	groups := []firewall.Group{{Name: "db", Rules: []firewall.Rule{
		rejectIn("telnet", firewall.TCP, 23), rejectIn("dns", firewall.UDP, 53)}}}
	ts := newTestSwitch(t, groups)
	a := ts.attach("a", 0, "n", 1, "db")
	b := ts.attach("b", 0, "n", 2, "db")
	fl := a.flow(b)

	syn := fl.TCP(40000, 23, packet.TCPSyn, 1000, 0, nil)
	a.send(syn)
	var f, sent packet.Frame
	packet.Parse(syn, &sent)
	if r := packet.Parse(a.recv(), &f); r != packet.OK {
		t.Fatalf("reset does not parse: %s", r)
	}
	if f.TCPFlags != packet.TCPRst|packet.TCPAck || f.Tuple != sent.Tuple.Reverse() || f.Src != b.mac || f.Dst != a.mac {
		t.Fatalf("reset %s, want RST|ACK from b to a", describe(f.Raw))
	}
	if ack := uint32(f.L4[8])<<24 | uint32(f.L4[9])<<16 | uint32(f.L4[10])<<8 | uint32(f.L4[11]); ack != 1001 {
		t.Errorf("reset acknowledges %d, want 1001 (the SYN's sequence + 1)", ack)
	}

	udp := fl.UDP(40000, 53, []byte("query"))
	a.send(udp)
	packet.Parse(udp, &sent)
	if r := packet.Parse(a.recv(), &f); r != packet.OK {
		t.Fatalf("unreachable does not parse: %s", r)
	}
	if f.ICMPType != packet.ICMPv4Unreachable || f.ICMPCode != packet.ICMPv4AdminProhibited ||
		!f.InnerValid || f.Inner != sent.Tuple || f.Tuple.Src != b.ip || f.Tuple.Dst != a.ip {
		t.Fatalf("got %s quoting %+v, want admin-prohibited unreachable for %+v", describe(f.Raw), f.Inner, sent.Tuple)
	}

	// Over IPv6 (link-local, which anti-spoofing lets a port use): an
	// ICMPv6 administratively-prohibited unreachable.
	fl6 := packettest.Flow{SrcMAC: a.mac, DstMAC: b.mac, Src: portsec.LinkLocal(a.mac), Dst: portsec.LinkLocal(b.mac)}
	udp6 := fl6.UDP(40000, 53, []byte("query"))
	a.send(udp6)
	packet.Parse(udp6, &sent)
	if r := packet.Parse(a.recv(), &f); r != packet.OK {
		t.Fatalf("ICMPv6 unreachable does not parse: %s", r)
	}
	if f.Tuple.Proto != packet.ProtoICMPv6 || f.ICMPType != packet.ICMPv6Unreachable || f.ICMPCode != packet.ICMPv6AdminProhibited ||
		!f.InnerValid || f.Inner != sent.Tuple || f.Tuple.Src != fl6.Dst || f.Tuple.Dst != fl6.Src {
		t.Fatalf("got %s quoting %+v, want an ICMPv6 admin-prohibited unreachable for %+v", describe(f.Raw), f.Inner, sent.Tuple)
	}

	a.expectNotForwarded(b)
	ts.waitDrops(b, "fw_reject", 3)
}

// A broadcast floods to every other port of its network, never to another
// network, and never back to its sender.
func TestBroadcastStaysInNetwork(t *testing.T) {
	ts := newTestSwitch(t, webDB, testNetwork("n", "10.0.0.0/24"), testNetwork("m", "10.0.1.0/24"))
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")
	c := ts.attach("c", 0, "n", 3, "db")
	d := ts.attach("d", 0, "m", 1, "web")
	e := ts.attach("e", 0, "m", 2, "web")

	who := packettest.ARP(packet.Broadcast, a.mac, packet.ARPRequest, a.mac, a.ip, packet.MAC{}, b.ip)
	a.send(who)
	b.expect(who)
	c.expect(who) // the last port of n: a's flood loop is done

	// The first frame d and a see is one sent after the flood.
	who2 := packettest.ARP(packet.Broadcast, e.mac, packet.ARPRequest, e.mac, e.ip, packet.MAC{}, d.ip)
	e.send(who2)
	d.expect(who2)
	isAt := packettest.ARP(a.mac, b.mac, packet.ARPReply, b.mac, b.ip, a.mac, a.ip)
	b.send(isAt)
	a.expect(isAt)
}

// DetachVM removes the VM's ports, their flows and their sockets; the other
// ports keep working and the VM can attach again.
func TestDetachVM(t *testing.T) {
	ts := newTestSwitch(t, webDB)
	a := ts.attach("a", 0, "n", 1, "web")
	b0 := ts.attach("b", 0, "n", 2, "web")
	b1 := ts.attach("b", 1, "n", 3, "web")
	c := ts.attach("c", 0, "n", 4, "web")

	handshake(a, b0, 40000, 80)
	echo := a.flow(b1).ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(1, 1))
	a.send(echo)
	b1.expect(echo)
	handshake(a, c, 40001, 80)
	if n := ts.flows("n"); n != 3 {
		t.Fatalf("%d flows before detach, want 3", n)
	}

	ts.sw.DetachVM("b")
	for _, st := range ts.sw.Ports() {
		if st.VM == "b" {
			t.Errorf("port %s still listed", st.Name)
		}
	}
	for _, n := range []*nic{b0, b1} {
		if _, err := os.Stat(n.sw.Name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket %s: %v, want it removed", n.sw.Name, err)
		}
	}
	if n := ts.flows("n"); n != 1 {
		t.Errorf("%d flows after detach, want 1 (a to c)", n)
	}

	// Frames to b's MAC are now unknown unicast: flooded to c, whose
	// firewall has no flow for them.
	a.send(tcpData(a, b0, 40000, 80, "late"))
	a.expectNotForwarded(c)
	data := tcpData(a, c, 40001, 80, "still here")
	a.send(data)
	c.expect(data)

	b0 = ts.attach("b", 0, "n", 2, "web")
	handshake(a, b0, 40002, 80)
}
