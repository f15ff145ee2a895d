package ipsstage

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

	"github.com/bulwark-project/bulwark/internal/ips/engine"
	"github.com/bulwark-project/bulwark/internal/ips/rules"
	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/netsw/firewall"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

// The tests run a real switch whose VM ports are unixgram sockets, as the
// hypervisor's "-netdev dgram" uses them (see internal/netsw's
// hypervisor_test.go): the test sends frames from a VM's socket and reads
// what the switch delivers to another's. A frame that was NOT delivered is
// proven by a marker sent after it from the same port (one reader per port
// handles its frames in order).

const waitLimit = 10 * time.Second

// testRules are real Suricata rules, loaded by the real loader.
const testRules = `
drop tcp any any -> any 80 (msg:"IPS test: attack string to a web server"; flow:established,to_server; content:"ATTACK-7f3a9"; sid:1000001; rev:2; classtype:attempted-admin;)
reject tcp any any -> any 8080 (msg:"IPS test: reject"; flow:established,to_server; content:"REJECT-ME"; sid:1000002; rev:1;)
alert dns any any -> any any (msg:"IPS test: DNS query for evil.example"; dns.query; content:"evil.example"; nocase; sid:1000003; rev:1;)
alert tls any any -> any any (msg:"IPS test: TLS SNI bad.example"; tls.sni; content:"bad.example"; sid:1000004; rev:1;)
alert http any any -> any any (msg:"IPS test: HTTP URI"; flow:established,to_server; http.uri; content:"/cgi-bin/probe"; sid:1000005; rev:1;)
drop udp any any -> any 9999 (msg:"IPS test: udp drop"; content:"UDP-BAD"; sid:1000006; rev:1;)
`

func loadEngine(tb testing.TB, text string) *engine.Engine {
	tb.Helper()
	set, st := rules.Load(strings.NewReader(text), &rules.Options{Disabled: engine.Disabled})
	if st.SkippedTotal()+st.ErrorTotal() > 0 {
		tb.Fatalf("rules not loaded: %v", st.Warnings)
	}
	e, err := engine.New(set, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// events collects what the stage's sink receives.
type events struct {
	mu  sync.Mutex
	evs []*Event
}

func (e *events) sink(ev *Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

// wait returns the events once there are at least n (fails after waitLimit).
func (e *events) wait(t *testing.T, n int) []*Event {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		e.mu.Lock()
		got := append([]*Event(nil), e.evs...)
		e.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events, want %d", len(got), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func (e *events) bySID(sid uint32) []*Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*Event
	for _, ev := range e.evs {
		if ev.Alert.Rule.SID == sid {
			out = append(out, ev)
		}
	}
	return out
}

// lab is a switch with the IPS stage and VMs on network "n" (10.0.0.0/24);
// every VM is in group "web" (whose members reach each other).
type lab struct {
	t     testing.TB
	sw    *netsw.Switch
	ips   *Stage
	ev    *events
	dir   string
	fwlog *lockedBuffer
}

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

func newLab(t testing.TB, pol Policy, opts Options) *lab {
	t.Helper()
	dir, err := os.MkdirTemp("", "ipsstage") // short: socket paths are bounded
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l := &lab{t: t, ev: &events{}, dir: dir, fwlog: &lockedBuffer{}}
	l.sw = netsw.New(slog.New(slog.DiscardHandler), netsw.NewEventLog(l.fwlog, 1000))
	t.Cleanup(l.sw.Close)
	n := netsw.Network{Name: "n", Subnet: "10.0.0.0/24"}
	n.Normalize()
	if err := l.sw.AddNetwork(n); err != nil {
		t.Fatal(err)
	}
	if err := l.sw.SetFirewall([]firewall.Group{{Name: "web"}, {Name: "lab"}}, nil); err != nil {
		t.Fatal(err)
	}
	if opts.Sink == nil {
		opts.Sink = l.ev.sink
	}
	if opts.Shards == 0 {
		opts.Shards = 4
	}
	l.ips = New(opts)
	t.Cleanup(l.ips.Close)
	l.ips.SetEngine(loadEngine(t, testRules))
	if err := l.ips.SetPolicy(pol); err != nil {
		t.Fatal(err)
	}
	l.sw.SetInspectStages(l.ips)
	return l
}

func blockPolicy() Policy {
	return Policy{Networks: map[string]NetPolicy{"n": {Mode: ModeBlock}}}
}

// vm is one VM NIC seen from its fake hypervisor.
type vm struct {
	t    testing.TB
	port *netsw.Port
	conn *net.UnixConn
	sw   *net.UnixAddr
	mac  packet.MAC
	ip   netip.Addr
}

func (l *lab) attach(name string, host byte, groups ...string) *vm {
	l.t.Helper()
	if len(groups) == 0 {
		groups = []string{"web"}
	}
	base := filepath.Join(l.dir, name)
	peer := &net.UnixAddr{Name: base + ".q", Net: "unixgram"}
	conn, err := net.ListenUnixgram("unixgram", peer)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { conn.Close() })
	mac := packet.MAC{2, 0, 0, 0, 0, host}
	ip := netip.AddrFrom4([4]byte{10, 0, 0, host})
	p, err := l.sw.AttachVMPort(netsw.VMPortSpec{VM: name, Network: "n", MAC: mac, IPs: []netip.Addr{ip},
		Groups: groups, Socket: base + ".s", Peer: peer.Name, UID: os.Geteuid()})
	if err != nil {
		l.t.Fatal(err)
	}
	return &vm{t: l.t, port: p, conn: conn, sw: &net.UnixAddr{Name: base + ".s", Net: "unixgram"}, mac: mac, ip: ip}
}

func (v *vm) flow(peer *vm) packettest.Flow {
	return packettest.Flow{SrcMAC: v.mac, DstMAC: peer.mac, Src: v.ip, Dst: peer.ip}
}

func (v *vm) send(frame []byte) {
	v.t.Helper()
	v.conn.SetWriteDeadline(time.Now().Add(waitLimit))
	if _, err := v.conn.WriteToUnix(frame, v.sw); err != nil {
		v.t.Fatalf("%s: send: %v", v.port.Name, err)
	}
}

func (v *vm) recv() []byte {
	v.t.Helper()
	buf := make([]byte, 65536)
	v.conn.SetReadDeadline(time.Now().Add(waitLimit))
	n, _, err := v.conn.ReadFromUnix(buf)
	if err != nil {
		v.t.Fatalf("%s: no frame delivered: %v", v.port.Name, err)
	}
	return buf[:n]
}

func (v *vm) expect(want []byte) {
	v.t.Helper()
	if got := v.recv(); !bytes.Equal(got, want) {
		v.t.Fatalf("%s received %s\nwant %s", v.port.Name, describe(got), describe(want))
	}
}

// expectNotForwarded proves the frames v sent to peer so far were not
// delivered: a unicast ARP request sent after them is the next frame.
func (v *vm) expectNotForwarded(peer *vm) {
	v.t.Helper()
	m := packettest.ARP(peer.mac, v.mac, packet.ARPRequest, v.mac, v.ip, packet.MAC{}, peer.ip)
	v.send(m)
	peer.expect(m)
}

func describe(b []byte) string {
	var f packet.Frame
	if r := packet.Parse(b, &f); r != packet.OK {
		return fmt.Sprintf("%d-byte frame (%s)", len(b), r)
	}
	if !f.IPValid {
		return fmt.Sprintf("ethertype %#x", f.EtherType)
	}
	return fmt.Sprintf("%+v flags %#x (%d bytes)", f.Tuple, f.TCPFlags, len(b))
}

// tcpConn is a TCP connection from cli to srv through the switch.
type tcpConn struct {
	cli, srv     *vm
	sport, dport uint16
	cseq, sseq   uint32
}

// connect runs the handshake and checks every segment is delivered.
func connect(cli, srv *vm, sport, dport uint16) *tcpConn {
	cli.t.Helper()
	c := &tcpConn{cli: cli, srv: srv, sport: sport, dport: dport, cseq: 1000, sseq: 5000}
	fl := cli.flow(srv)
	syn := fl.TCP(sport, dport, packet.TCPSyn, c.cseq, 0, nil)
	cli.send(syn)
	srv.expect(syn)
	c.cseq++
	synack := fl.Reverse().TCP(dport, sport, packet.TCPSyn|packet.TCPAck, c.sseq, c.cseq, nil)
	srv.send(synack)
	cli.expect(synack)
	c.sseq++
	ack := fl.TCP(sport, dport, packet.TCPAck, c.cseq, c.sseq, nil)
	cli.send(ack)
	srv.expect(ack)
	return c
}

// data returns the client's next data segment and advances its sequence.
func (c *tcpConn) data(payload string) []byte {
	f := c.cli.flow(c.srv).TCP(c.sport, c.dport, packet.TCPAck|packet.TCPPsh, c.cseq, c.sseq, []byte(payload))
	c.cseq += uint32(len(payload))
	return f
}

// ack returns the server's acknowledgment of everything so far.
func (c *tcpConn) ack() []byte {
	return c.srv.flow(c.cli).TCP(c.dport, c.sport, packet.TCPAck, c.sseq, c.cseq, nil)
}

// waitDrops waits until the port counted want drops for reason.
func (l *lab) waitDrops(v *vm, reason string, want uint64) {
	l.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		var got uint64
		for _, st := range l.sw.Ports() {
			if st.ID == v.port.ID {
				got = st.Drops[reason]
			}
		}
		if got == want {
			return
		}
		if got > want || time.Now().After(deadline) {
			l.t.Fatalf("port %s: %d %s drops, want %d", v.port.Name, got, reason, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// dnsQuery is a DNS query message for name (type A).
func dnsQuery(name string) []byte {
	b := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, label := range strings.Split(name, ".") {
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	return append(b, 0, 0, 1, 0, 1)
}

func netipAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
