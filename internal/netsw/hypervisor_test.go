package netsw

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/firewall"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

// The tests in this package run a real Switch whose VM ports talk to fake
// hypervisors: for each port the test binds the unixgram socket the switch
// sends to (VMPortSpec.Peer, QEMU's local address) and sends frames to the
// switch's socket from it, one Ethernet frame per datagram, as QEMU's
// "-netdev dgram" does.
//
// Nothing here asserts on time. A test waits for what it expects with a
// generous deadline (waitLimit), and proves that a frame was NOT delivered
// by sending a marker after it from the same port: one reader goroutine per
// port handles that port's frames in order, and a peer socket receives in
// send order, so when the marker is the next frame to arrive, the earlier
// frame was not forwarded.

// waitLimit bounds every wait for something that must happen; it is only
// reached when a test fails.
const waitLimit = 10 * time.Second

// testSwitch is a Switch under test with its firewall log.
type testSwitch struct {
	t   *testing.T
	sw  *Switch
	dir string // sockets
	log *lockedBuffer
}

// lockedBuffer is the firewall log's writer; the switch writes it from port
// goroutines while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testNetwork is a network as the brief's examples configure one, after
// Normalize: same-group ingress, egress allowed, 100 broadcast frames/s.
func testNetwork(name, subnet string) Network {
	n := Network{Name: name, Subnet: subnet, DefaultIngress: "same-group", DefaultEgress: "allow", StormPPS: 100}
	n.Normalize()
	return n
}

// newTestSwitch starts a switch with the given groups and networks (network
// "n", 10.0.0.0/24, when none is given). The switch is closed when the test
// ends.
func newTestSwitch(t *testing.T, groups []firewall.Group, nets ...Network) *testSwitch {
	t.Helper()
	// Not t.TempDir: a Unix socket path must stay under 108 bytes, and
	// TempDir's includes the test's name.
	dir, err := os.MkdirTemp("", "netsw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ts := &testSwitch{t: t, dir: dir, log: &lockedBuffer{}}
	ts.sw = New(slog.New(slog.DiscardHandler), NewEventLog(ts.log, 1000))
	t.Cleanup(ts.sw.Close)
	if len(nets) == 0 {
		nets = []Network{testNetwork("n", "10.0.0.0/24")}
	}
	for _, n := range nets {
		if err := n.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := ts.sw.AddNetwork(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.sw.SetFirewall(groups, nil); err != nil {
		t.Fatal(err)
	}
	return ts
}

// nic is one VM NIC attached to the switch, seen from its fake hypervisor.
type nic struct {
	t    *testing.T
	port *Port
	conn *net.UnixConn // the hypervisor's socket, bound at the port's Peer
	sw   *net.UnixAddr // the switch's socket for the port
	mac  packet.MAC
	ip   netip.Addr
}

// attach creates the port of NIC idx of VM vm on network, with host address
// host in the network's subnet and MAC 02:00:00:00:<subnet's 3rd byte>:host.
func (ts *testSwitch) attach(vm string, idx int, network string, host byte, groups ...string) *nic {
	ts.t.Helper()
	n, err := ts.tryAttach(vm, idx, network, host, groups...)
	if err != nil {
		ts.t.Fatalf("attach %s/nic%d: %v", vm, idx, err)
	}
	return n
}

func (ts *testSwitch) tryAttach(vm string, idx int, network string, host byte, groups ...string) (*nic, error) {
	ts.sw.mu.Lock()
	nw := ts.sw.networks[network]
	ts.sw.mu.Unlock()
	if nw == nil {
		return nil, fmt.Errorf("no network %q", network)
	}
	a := netip.MustParsePrefix(nw.cfg.Subnet).Addr().As4()
	a[3] = host
	return ts.attachAddr(vm, idx, network, packet.MAC{0x02, 0, 0, 0, a[2], host}, netip.AddrFrom4(a), groups...)
}

// attachAddr is attach with an explicit MAC and address.
func (ts *testSwitch) attachAddr(vm string, idx int, network string, mac packet.MAC, ip netip.Addr, groups ...string) (*nic, error) {
	base := filepath.Join(ts.dir, fmt.Sprintf("%s.%d", vm, idx))
	peer := &net.UnixAddr{Name: base + ".qemu", Net: "unixgram"}
	os.Remove(peer.Name)
	conn, err := net.ListenUnixgram("unixgram", peer)
	if err != nil {
		return nil, err
	}
	ts.t.Cleanup(func() { conn.Close(); os.Remove(peer.Name) })
	spec := VMPortSpec{VM: vm, NIC: idx, Network: network, MAC: mac, IPs: []netip.Addr{ip}, Groups: groups,
		Socket: base + ".sw", Peer: peer.Name, UID: os.Geteuid()}
	p, err := ts.sw.AttachVMPort(spec)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &nic{t: ts.t, port: p, conn: conn, sw: &net.UnixAddr{Name: spec.Socket, Net: "unixgram"}, mac: mac, ip: ip}, nil
}

// flows returns the number of tracked flows of a network.
func (ts *testSwitch) flows(network string) int {
	ts.sw.mu.Lock()
	n := ts.sw.networks[network]
	ts.sw.mu.Unlock()
	return n.ct.Len()
}

// setFirewall installs groups or fails the test.
func (ts *testSwitch) setFirewall(groups ...firewall.Group) {
	ts.t.Helper()
	if err := ts.sw.SetFirewall(groups, nil); err != nil {
		ts.t.Fatal(err)
	}
}

// status returns the port's current status.
func (ts *testSwitch) status(n *nic) PortStatus {
	ts.t.Helper()
	for _, st := range ts.sw.Ports() {
		if st.ID == n.port.ID {
			return st
		}
	}
	ts.t.Fatalf("port %s is gone", n.port.Name)
	return PortStatus{}
}

// waitStatus polls the port's status until cond holds.
func (ts *testSwitch) waitStatus(n *nic, what string, cond func(PortStatus) bool) PortStatus {
	ts.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		st := ts.status(n)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("port %s: waited %v for %s; status %+v", n.port.Name, waitLimit, what, st)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitDrops waits until the port has counted want drops for reason.
func (ts *testSwitch) waitDrops(n *nic, reason string, want uint64) {
	ts.t.Helper()
	ts.waitStatus(n, fmt.Sprintf("%d %s drops", want, reason), func(st PortStatus) bool {
		if st.Drops[reason] > want {
			ts.t.Fatalf("port %s: %d %s drops, want %d", n.port.Name, st.Drops[reason], reason, want)
		}
		return st.Drops[reason] == want
	})
}

// barrier returns once the switch has handled every frame n sent before:
// it sends a frame with a foreign source MAC and waits until the port has
// counted it (a port's frames are handled in order; rx_frames is counted
// before a frame is handled, drops after).
func (ts *testSwitch) barrier(n *nic) {
	ts.t.Helper()
	want := ts.status(n).Drops["spoofed_mac"] + 1
	n.send(packettest.Flow{SrcMAC: packet.MAC{0x02, 0xba, 0xd0, 0, 0, 1}, DstMAC: n.mac, Src: n.ip, Dst: n.ip}.UDP(1, 2, nil))
	ts.waitDrops(n, "spoofed_mac", want)
}

// flow returns a frame builder from n to peer.
func (n *nic) flow(peer *nic) packettest.Flow {
	return packettest.Flow{SrcMAC: n.mac, DstMAC: peer.mac, Src: n.ip, Dst: peer.ip}
}

// send sends one frame into the switch as the hypervisor does.
func (n *nic) send(frame []byte) {
	n.t.Helper()
	if err := n.trySend(frame); err != nil {
		n.t.Fatalf("%s: send: %v", n.port.Name, err)
	}
}

// trySend is send for other goroutines than the test's.
func (n *nic) trySend(frame []byte) error {
	n.conn.SetWriteDeadline(time.Now().Add(waitLimit))
	_, err := n.conn.WriteToUnix(frame, n.sw)
	return err
}

// recv returns the next frame the switch delivered to n.
func (n *nic) recv() []byte {
	n.t.Helper()
	buf := make([]byte, readBuf)
	n.conn.SetReadDeadline(time.Now().Add(waitLimit))
	k, _, err := n.conn.ReadFromUnix(buf)
	if err != nil {
		n.t.Fatalf("%s: no frame delivered: %v", n.port.Name, err)
	}
	return buf[:k]
}

// expect requires the next frame delivered to n to be want.
func (n *nic) expect(want []byte) {
	n.t.Helper()
	if got := n.recv(); !bytes.Equal(got, want) {
		n.t.Fatalf("%s received %s\nwant %s", n.port.Name, describe(got), describe(want))
	}
}

// marker returns a frame the switch always forwards from n to peer, without
// firewall or storm control: a unicast ARP request for peer's address.
func (n *nic) marker(peer *nic) []byte {
	return packettest.ARP(peer.mac, n.mac, packet.ARPRequest, n.mac, n.ip, packet.MAC{}, peer.ip)
}

// expectNotForwarded proves that the frames n sent to peer so far were not
// delivered: a marker sent after them is the next frame peer receives.
func (n *nic) expectNotForwarded(peer *nic) {
	n.t.Helper()
	m := n.marker(peer)
	n.send(m)
	peer.expect(m)
}

// describe summarises a frame for failure messages.
func describe(b []byte) string {
	var f packet.Frame
	r := packet.Parse(b, &f)
	switch {
	case r != packet.OK:
		return fmt.Sprintf("%d-byte frame (%s)", len(b), r)
	case f.EtherType == packet.EtherTypeARP:
		return fmt.Sprintf("ARP op %d %s -> %s", f.ARPOp, f.ARPSenderIP, f.ARPTargetIP)
	default:
		return fmt.Sprintf("%+v flags %#x icmp %d/%d (%d bytes)", f.Tuple, f.TCPFlags, f.ICMPType, f.ICMPCode, len(b))
	}
}

// handshake runs a TCP three-way handshake from c to s and checks that every
// segment is delivered.
func handshake(c, s *nic, sport, dport uint16) {
	c.t.Helper()
	fl := c.flow(s)
	syn := fl.TCP(sport, dport, packet.TCPSyn, 1000, 0, nil)
	c.send(syn)
	s.expect(syn)
	synack := fl.Reverse().TCP(dport, sport, packet.TCPSyn|packet.TCPAck, 5000, 1001, nil)
	s.send(synack)
	c.expect(synack)
	ack := fl.TCP(sport, dport, packet.TCPAck, 1001, 5001, nil)
	c.send(ack)
	s.expect(ack)
}

// tcpData is a data segment of an established connection from c.
func tcpData(c, s *nic, sport, dport uint16, payload string) []byte {
	return c.flow(s).TCP(sport, dport, packet.TCPAck|packet.TCPPsh, 1001, 5001, []byte(payload))
}

// Rule constructors for the tests' groups.

func allowIn(id string, proto firewall.Proto, port uint16, remoteGroup string) firewall.Rule {
	return firewall.Rule{ID: id, Direction: firewall.Ingress, Action: firewall.Allow, Proto: proto,
		PortMin: port, PortMax: port, ICMPType: -1, RemoteGroup: remoteGroup}
}

func rejectIn(id string, proto firewall.Proto, port uint16) firewall.Rule {
	return firewall.Rule{ID: id, Direction: firewall.Ingress, Action: firewall.Reject, Proto: proto,
		PortMin: port, PortMax: port, ICMPType: -1}
}

// logHas waits until the firewall log contains s, and reports whether it did.
func (ts *testSwitch) logHas(s string) bool {
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		if strings.Contains(ts.log.String(), s) {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return false
}
