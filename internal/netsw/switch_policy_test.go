package netsw

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/firewall"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

var (
	appGroup = firewall.Group{Name: "app"}
	dbGroup  = firewall.Group{Name: "db", Rules: []firewall.Rule{allowIn("pg", firewall.TCP, 5432, "app")}}
)

// Removing the rule that allowed a connection cuts it on its next packet;
// putting the rule back allows new connections again. A configuration that
// does not compile is refused and the installed policy stays in force.
func TestRuleChangeCutsEstablishedFlow(t *testing.T) {
	ts := newTestSwitch(t, []firewall.Group{appGroup, dbGroup})
	a := ts.attach("a", 0, "n", 1, "app")
	b := ts.attach("b", 0, "n", 2, "db")
	handshake(a, b, 40000, 5432)
	before := tcpData(a, b, 40000, 5432, "before")
	a.send(before)
	b.expect(before)

	ts.setFirewall(appGroup, firewall.Group{Name: "db"})
	a.send(tcpData(a, b, 40000, 5432, "after"))
	a.send(a.flow(b).TCP(40001, 5432, packet.TCPSyn, 1, 0, nil))
	a.expectNotForwarded(b)
	ts.waitDrops(a, "fw_revoked", 1)
	ts.waitDrops(b, "fw_default_deny", 1)
	if n := ts.flows("n"); n != 0 {
		t.Errorf("%d flows left after the revocation, want 0", n)
	}

	ts.setFirewall(appGroup, dbGroup)
	handshake(a, b, 40002, 5432)

	bad := firewall.Group{Name: "db", Rules: []firewall.Rule{allowIn("pg", firewall.TCP, 5432, "nope")}}
	err := ts.sw.SetFirewall([]firewall.Group{appGroup, bad}, nil)
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("SetFirewall with an unknown remote group: %v", err)
	}
	// The established flow is not re-checked (the policy did not change),
	// new flows are still allowed, and what was denied still is.
	data := tcpData(a, b, 40002, 5432, "still")
	a.send(data)
	b.expect(data)
	handshake(a, b, 40003, 5432)
	b.send(b.flow(a).TCP(5432, 40004, packet.TCPSyn, 1, 0, nil))
	b.expectNotForwarded(a)
	ts.waitDrops(a, "fw_default_deny", 1)
	if d := ts.status(a).Drops["fw_revoked"]; d != 1 {
		t.Errorf("%d fw_revoked drops, want 1", d)
	}

	// The removed rule's count is kept, marked removed; the re-added one
	// counts the two flows it allowed since.
	var pg []firewall.RuleHit
	for _, h := range ts.sw.RuleHits() {
		if h.Group == "db" && h.RuleID == "pg" {
			pg = append(pg, h)
		}
	}
	want := []firewall.RuleHit{{Group: "db", RuleID: "pg", Hits: 2}, {Group: "db", RuleID: "pg", Hits: 1, Removed: true}}
	if !slices.Equal(pg, want) {
		t.Errorf("rule db/pg: %+v, want %+v", pg, want)
	}
}

// The firewall log has one JSON line per new-flow decision, naming the
// deciding rule (none for a network default).
func TestFirewallLogNamesRules(t *testing.T) {
	db := dbGroup
	db.Rules = append(db.Rules[:1:1], rejectIn("telnet", firewall.TCP, 23))
	ts := newTestSwitch(t, []firewall.Group{appGroup, db})
	a := ts.attach("a", 0, "n", 1, "app")
	b := ts.attach("b", 0, "n", 2, "db")

	syn := a.flow(b).TCP(40000, 5432, packet.TCPSyn, 1, 0, nil)
	a.send(syn)
	b.expect(syn)
	a.send(a.flow(b).TCP(40001, 23, packet.TCPSyn, 1, 0, nil))
	a.recv() // the reset
	a.send(a.flow(b).ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(9, 1)))
	a.expectNotForwarded(b)

	want := []FirewallEvent{
		{Action: "allow", Group: "db", Rule: "pg", Proto: packet.ProtoTCP, SrcPort: 40000, DstPort: 5432},
		{Action: "reject", Reason: "fw_reject", Group: "db", Rule: "telnet", Proto: packet.ProtoTCP, SrcPort: 40001, DstPort: 23},
		{Action: "drop", Reason: "fw_default_deny", Proto: packet.ProtoICMP, SrcPort: 9, DstPort: 9},
	}
	var got []FirewallEvent
	deadline := time.Now().Add(waitLimit)
	for len(got) < len(want) && time.Now().Before(deadline) {
		got = decodeLog(t, ts.log.String())
	}
	if len(got) != len(want) {
		t.Fatalf("%d log lines, want %d:\n%s", len(got), len(want), ts.log.String())
	}
	for i, ev := range got {
		if ev.Time.IsZero() {
			t.Errorf("line %d has no time", i)
		}
		ev.Time = time.Time{}
		w := want[i]
		w.Network, w.InPort, w.OutPort, w.Src, w.Dst = "n", "a/nic0", "b/nic0", "10.0.0.1", "10.0.0.2"
		if ev != w {
			t.Errorf("line %d: %+v\nwant %+v", i, ev, w)
		}
	}
}

// decodeLog parses JSON lines strictly.
func decodeLog(t *testing.T, s string) []FirewallEvent {
	t.Helper()
	var out []FirewallEvent
	for line := range strings.Lines(s) {
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		var ev FirewallEvent
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, ev)
	}
	return out
}

// The log writes at most its rate per second (burst the same) and reports
// what it suppressed on the next line it writes.
func TestEventLogRateLimit(t *testing.T) {
	var buf bytes.Buffer
	l := NewEventLog(&buf, 3)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	write := func(at time.Duration, n int) {
		for i := range n {
			l.write(FirewallEvent{Time: t0.Add(at), Action: "drop", Network: "n", Rule: fmt.Sprint(i)})
		}
	}
	write(0, 10)               // 3 written, 7 suppressed
	write(time.Second, 4)      // refilled to 3: the first reports 7
	write(100*time.Second, 1)  // refilled to the burst only: reports 1
	write(100*time.Second, 10) // 2 more, 8 suppressed

	var suppressed []uint64
	for _, ev := range decodeLog(t, buf.String()) {
		suppressed = append(suppressed, ev.Suppressed)
	}
	want := []uint64{0, 0, 0, 7, 0, 0, 1, 0, 0}
	if fmt.Sprint(suppressed) != fmt.Sprint(want) {
		t.Errorf("suppressed per line %v, want %v", suppressed, want)
	}
	if strings.Count(buf.String(), `"suppressed"`) != 2 {
		t.Errorf("suppressed written on lines that suppressed nothing:\n%s", buf.String())
	}
}

// A MAC bound to a port cannot be bound to a second port of the same
// network: the second port would take over the first's unicast traffic.
func TestAttachRefusesTakenMAC(t *testing.T) {
	ts := newTestSwitch(t, webDB, testNetwork("n", "10.0.0.0/24"), testNetwork("m", "10.0.1.0/24"))
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")

	if _, err := ts.attachAddr("x", 0, "n", a.mac, netip.MustParseAddr("10.0.0.9"), "web"); err == nil {
		t.Fatal("a second port with a's MAC was attached")
	}
	if _, err := os.Stat(ts.dir + "/x.0.sw"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("refused port's socket: %v, want none", err)
	}
	for _, st := range ts.sw.Ports() {
		if st.VM == "x" {
			t.Errorf("refused port %s is listed", st.Name)
		}
	}
	// Another network is another L2 segment.
	if _, err := ts.attachAddr("y", 0, "m", a.mac, netip.MustParseAddr("10.0.1.9"), "web"); err != nil {
		t.Fatal(err)
	}
	echo := b.flow(a).ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(1, 1))
	b.send(echo)
	a.expect(echo)
}

// Ports attached while another port floods broadcasts are never sent to
// before they can send (a port is published with its socket).
func TestAttachWhileFlooding(t *testing.T) {
	nw := testNetwork("n", "10.0.0.0/24")
	nw.StormPPS = MaxStormPPS
	ts := newTestSwitch(t, webDB, nw)
	a := ts.attach("a", 0, "n", 1, "web")

	stop := make(chan struct{})
	type result struct {
		sent uint64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		who := packettest.ARP(packet.Broadcast, a.mac, packet.ARPRequest, a.mac, a.ip, packet.MAC{}, netip.MustParseAddr("10.0.0.200"))
		var r result
		for {
			select {
			case <-stop:
				done <- r
				return
			default:
			}
			if r.err = a.trySend(who); r.err != nil {
				done <- r
				return
			}
			r.sent++
		}
	}()
	var last *nic
	for i := range 30 {
		last = ts.attach(fmt.Sprintf("x%d", i), 0, "n", byte(10+i), "web")
	}
	close(stop)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	// Once the flood is handled, empty the last port's queue and check that
	// it still receives.
	ts.barrier(a)
	if st := ts.status(a); st.RxFrames != r.sent+1 {
		t.Fatalf("a: %d frames read, want %d", st.RxFrames, r.sent+1)
	}
	for range ts.status(last).TxFrames {
		last.recv()
	}
	echo := a.flow(last).ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(1, 1))
	a.send(echo)
	last.expect(echo)
}
