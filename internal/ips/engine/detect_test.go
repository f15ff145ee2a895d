package engine

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

func newTestDetector(t testing.TB, ruleText string) *Detector {
	t.Helper()
	set, st := rules.Load(strings.NewReader(ruleText), &rules.Options{Disabled: Disabled})
	if st.SkippedTotal()+st.ErrorTotal() > 0 {
		t.Fatalf("rules not loaded: %v", st.Warnings)
	}
	e, err := New(set, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return NewDetector(e, Config{})
}

var (
	cliIP = netip.MustParseAddr("10.0.0.1")
	srvIP = netip.MustParseAddr("10.0.0.2")
	t0    = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// tcpConn drives one TCP connection through a Detector.
type tcpConn struct {
	d              *Detector
	cseq, sseq     uint32
	cport, sport   uint16
	now            time.Time
	alerts         []uint32 // sids, in order
	alertsToServer []bool
}

func (c *tcpConn) send(toServer bool, flags uint8, payload string) {
	p := Packet{Time: c.now, Proto: ProtoTCP, TCPFlags: flags, Window: 65535, Payload: []byte(payload)}
	if toServer {
		p.Src, p.Dst, p.SrcPort, p.DstPort, p.Seq, p.Ack = cliIP, srvIP, c.cport, c.sport, c.cseq, c.sseq
		c.cseq += uint32(len(payload))
		if flags&(rules.TCPSyn|rules.TCPFin) != 0 {
			c.cseq++
		}
	} else {
		p.Src, p.Dst, p.SrcPort, p.DstPort, p.Seq, p.Ack = srvIP, cliIP, c.sport, c.cport, c.sseq, c.cseq
		c.sseq += uint32(len(payload))
		if flags&(rules.TCPSyn|rules.TCPFin) != 0 {
			c.sseq++
		}
	}
	c.now = c.now.Add(time.Millisecond)
	for _, a := range c.d.Packet(&p) {
		c.alerts = append(c.alerts, a.Rule.SID)
		c.alertsToServer = append(c.alertsToServer, a.ToServer)
	}
}

func newTCPConn(d *Detector, cport uint16) *tcpConn {
	c := &tcpConn{d: d, cseq: 1000, sseq: 5000, cport: cport, sport: 80, now: t0}
	c.send(true, rules.TCPSyn, "")
	c.send(false, rules.TCPSyn|rules.TCPAck, "")
	c.send(true, rules.TCPAck, "")
	return c
}

func count(sids []uint32, sid uint32) int {
	n := 0
	for _, s := range sids {
		if s == sid {
			n++
		}
	}
	return n
}

// TestSplitPattern: a pattern split across two segments matches through
// the stream window, once.
func TestSplitPattern(t *testing.T) {
	d := newTestDetector(t, `alert tcp any any -> any 80 (msg:"split"; flow:to_server,established; content:"EVILPATTERN"; sid:1;)`)
	c := newTCPConn(d, 40000)
	c.send(true, rules.TCPAck|rules.TCPPsh, "hello EVIL")
	c.send(false, rules.TCPAck, "")
	c.send(true, rules.TCPAck|rules.TCPPsh, "PATTERN world")
	c.send(false, rules.TCPAck, "")
	c.send(true, rules.TCPAck|rules.TCPPsh, "more data after it")
	if n := count(c.alerts, 1); n != 1 {
		t.Fatalf("alerts %v, want sid 1 once", c.alerts)
	}
}

// TestEstablished: flow:established needs the three-way handshake.
func TestEstablished(t *testing.T) {
	d := newTestDetector(t, `alert tcp any any -> any any (flow:established; content:"x"; sid:1;)`)
	c := &tcpConn{d: d, cseq: 1, sseq: 1, cport: 1, sport: 80, now: t0}
	c.send(true, rules.TCPAck|rules.TCPPsh, "x")
	if len(c.alerts) != 0 {
		t.Fatalf("alerted without a handshake: %v", c.alerts)
	}
	c = newTCPConn(d, 2)
	c.send(true, rules.TCPAck|rules.TCPPsh, "x")
	if count(c.alerts, 1) != 1 {
		t.Fatalf("alerts %v", c.alerts)
	}
}

// TestFlowbits: set in one packet, checked in a later one of the same
// flow only; unset; noalert; isnotset; and set-before-isset ordering in
// one packet.
func TestFlowbits(t *testing.T) {
	d := newTestDetector(t, `
alert tcp any any -> any any (content:"LOGIN"; flowbits:set,auth; flowbits:noalert; sid:1;)
alert tcp any any -> any any (content:"CMD"; flowbits:isset,auth; sid:2;)
alert tcp any any -> any any (content:"LOGOUT"; flowbits:unset,auth; sid:3;)
alert tcp any any -> any any (content:"CMD"; flowbits:isnotset,auth; sid:4;)
alert tcp any any -> any any (content:"BOTH"; flowbits:isset,auth; sid:5;)
alert tcp any any -> any any (content:"BOTH"; flowbits:set,auth; flowbits:noalert; sid:6;)
`)
	c := newTCPConn(d, 1)
	c.send(true, rules.TCPAck, "CMD")      // 4
	c.send(true, rules.TCPAck, "LOGIN")    // (1, noalert)
	c.send(true, rules.TCPAck, "CMD")      // 2
	c.send(true, rules.TCPAck, "LOGOUT")   // 3
	c.send(true, rules.TCPAck, "CMD")      // 4
	other := newTCPConn(d, 2)              // another flow: bits are per flow
	other.send(true, rules.TCPAck, "CMD")  // 4
	other.send(true, rules.TCPAck, "BOTH") // 6 sets before 5 reads: 5
	want := []uint32{4, 2, 3, 4}
	if len(c.alerts) != len(want) {
		t.Fatalf("alerts %v, want %v", c.alerts, want)
	}
	for i := range want {
		if c.alerts[i] != want[i] {
			t.Fatalf("alerts %v, want %v", c.alerts, want)
		}
	}
	if count(other.alerts, 4) != 1 || count(other.alerts, 5) != 1 || count(other.alerts, 2) != 0 {
		t.Fatalf("other flow alerts %v", other.alerts)
	}
}

func icmpEcho(d *Detector, src netip.Addr, at time.Time) []uint32 {
	p := Packet{Time: at, Proto: ProtoICMP, Src: src, Dst: srvIP, ICMPType: 8, Payload: []byte("ping")}
	var sids []uint32
	for _, a := range d.Packet(&p) {
		sids = append(sids, a.Rule.SID)
	}
	return sids
}

// TestThresholds checks limit, threshold, both and detection_filter,
// per source, and the window restart.
func TestThresholds(t *testing.T) {
	d := newTestDetector(t, `
alert icmp any any -> any any (itype:8; threshold:type limit, track by_src, count 2, seconds 60; sid:1;)
alert icmp any any -> any any (itype:8; threshold:type threshold, track by_src, count 3, seconds 60; sid:2;)
alert icmp any any -> any any (itype:8; threshold:type both, track by_src, count 3, seconds 60; sid:3;)
alert icmp any any -> any any (itype:8; detection_filter:track by_src, count 4, seconds 60; sid:4;)
alert icmp any any -> any any (itype:8; threshold:type limit, track by_rule, count 1, seconds 60; sid:5;)
`)
	var all []uint32
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	for i := 0; i < 7; i++ {
		all = append(all, icmpEcho(d, a, t0.Add(time.Duration(i)*time.Second))...)
	}
	for _, tc := range []struct{ sid, want int }{{1, 2}, {2, 2}, {3, 1}, {4, 3}, {5, 1}} {
		if n := count(all, uint32(tc.sid)); n != tc.want {
			t.Errorf("sid %d: %d alerts, want %d (all %v)", tc.sid, n, tc.want, all)
		}
	}
	// Another source has its own counters; by_rule does not.
	other := icmpEcho(d, b, t0.Add(10*time.Second))
	if count(other, 1) != 1 || count(other, 5) != 0 {
		t.Errorf("second source: %v", other)
	}
	// After the window the limit allows again.
	later := icmpEcho(d, a, t0.Add(2*time.Minute))
	if count(later, 1) != 1 || count(later, 5) != 1 {
		t.Errorf("after the window: %v", later)
	}
}

// TestThresholdTableBound: the table never grows past its bound.
func TestThresholdTableBound(t *testing.T) {
	d := newTestDetector(t, `alert icmp any any -> any any (itype:8; detection_filter:track by_src, count 0, seconds 60; sid:1;)`)
	d.th.max = 16
	for i := 0; i < 100; i++ {
		icmpEcho(d, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), t0)
	}
	if len(d.th.m) > 16 || d.Stats().ThresholdFull != 84 {
		t.Fatalf("table %d entries, full %d", len(d.th.m), d.Stats().ThresholdFull)
	}
}

// TestFlowTableBound: the flow table evicts the least recently seen.
func TestFlowTableBound(t *testing.T) {
	d := newTestDetector(t, `alert udp any any -> any any (content:"x"; sid:1;)`)
	d.cfg.MaxFlows = 8
	for i := 0; i < 50; i++ {
		p := Packet{Time: t0, Proto: ProtoUDP, Src: cliIP, Dst: srvIP, SrcPort: uint16(1000 + i), DstPort: 9, Payload: []byte("x")}
		if len(d.Packet(&p)) != 1 {
			t.Fatal("no alert")
		}
	}
	if len(d.flows) != 8 || d.Stats().FlowsEvicted != 42 {
		t.Fatalf("%d flows, %d evicted", len(d.flows), d.Stats().FlowsEvicted)
	}
}

// TestHTTPOncePerTx: an HTTP rule alerts once per transaction although
// the transaction is inspected at headers and at completion.
func TestHTTPOncePerTx(t *testing.T) {
	d := newTestDetector(t, `
alert http any any -> any any (msg:"uri"; flow:to_server; http.uri; content:"/admin"; sid:1;)
alert http any any -> any any (msg:"ua"; http.user_agent; content:"sqlmap"; nocase; sid:2;)
alert http any any -> any any (msg:"body"; http.response_body; content:"secret"; sid:3;)
`)
	c := newTCPConn(d, 3333)
	c.send(true, rules.TCPAck|rules.TCPPsh, "GET /admin/x HTTP/1.1\r\nHost: a\r\nUser-Agent: SQLMap/1.0\r\n\r\n")
	c.send(false, rules.TCPAck|rules.TCPPsh, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nthe ")
	c.send(false, rules.TCPAck|rules.TCPPsh, "secret!!")
	c.send(true, rules.TCPAck|rules.TCPPsh, "GET /other HTTP/1.1\r\nHost: a\r\n\r\n")
	if count(c.alerts, 1) != 1 || count(c.alerts, 2) != 1 || count(c.alerts, 3) != 1 {
		t.Fatalf("alerts %v", c.alerts)
	}
}

// TestOneWindowScan: a stream window is scanned once per packet that adds
// to it, also when the scan finds no candidate (it used to be scanned
// again by inspectStream then), and not at all for a pure ACK.
func TestOneWindowScan(t *testing.T) {
	d := newTestDetector(t, `alert tcp any any -> any 80 (content:"attack"; sid:1;)`)
	c := newTCPConn(d, 4100)
	for i, tt := range []struct {
		toServer bool
		payload  string
		scans    uint64
	}{
		{true, "nothing to see", 1},
		{false, "", 0},
		{false, "a reply", 1},
		{true, "", 0},
		{true, "an attack here", 1},
	} {
		before := d.windowScans
		c.send(tt.toServer, rules.TCPAck|rules.TCPPsh, tt.payload)
		if got := d.windowScans - before; got != tt.scans {
			t.Errorf("packet %d: %d window scans, want %d", i, got, tt.scans)
		}
	}
	if count(c.alerts, 1) != 1 {
		t.Errorf("alerts %v", c.alerts)
	}
}
