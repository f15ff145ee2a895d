package ipsstage

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

// In alert mode a drop rule's match is reported ("allowed") and the
// receiver gets the packet; the EVE line has Suricata's fields and
// Bulwark's attribution, and jq reads it.
func TestAlertModeReports(t *testing.T) {
	l := newLab(t, Policy{Networks: map[string]NetPolicy{"n": {Mode: ModeAlert}}}, Options{})
	a, b := l.attach("a", 1), l.attach("b", 2)
	c := connect(a, b, 40000, 80)
	d := c.data("GET /x HTTP/1.1\r\nHost: b\r\nX-Payload: ATTACK-7f3a9\r\n\r\n")
	a.send(d)
	b.expect(d)
	more := c.data("still allowed")
	a.send(more)
	b.expect(more)
	ev := l.ev.wait(t, 1)[0]
	if ev.Alert.Rule.SID != 1000001 || ev.Blocked || ev.InIface != "b/nic0" {
		t.Fatalf("event sid %d blocked %v in_iface %q", ev.Alert.Rule.SID, ev.Blocked, ev.InIface)
	}
	line := ev.EVE()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("EVE line is not JSON: %v\n%s", err, line)
	}
	alert, _ := m["alert"].(map[string]any)
	bw, _ := m["bulwark"].(map[string]any)
	for k, want := range map[string]any{
		"event_type": "alert", "src_ip": "10.0.0.1", "dest_ip": "10.0.0.2", "src_port": 40000.0, "dest_port": 80.0,
		"proto": "TCP", "in_iface": "b/nic0", "app_proto": "http",
	} {
		if m[k] != want {
			t.Errorf("EVE %s = %v, want %v\n%s", k, m[k], want, line)
		}
	}
	for k, want := range map[string]any{"action": "allowed", "gid": 1.0, "signature_id": 1000001.0, "rev": 2.0,
		"signature": "IPS test: attack string to a web server", "severity": 3.0} {
		if alert[k] != want {
			t.Errorf("EVE alert.%s = %v, want %v", k, alert[k], want)
		}
	}
	for k, want := range map[string]any{"network": "n", "src_vm": "a", "src_port": "a/nic0", "dest_vm": "b",
		"dest_port": "b/nic0", "mode": "alert"} {
		if bw[k] != want {
			t.Errorf("EVE bulwark.%s = %v, want %v", k, bw[k], want)
		}
	}
	if _, ok := m["flow_id"].(float64); !ok {
		t.Errorf("EVE flow_id missing: %s", line)
	}
	if ts, _ := m["timestamp"].(string); !strings.HasPrefix(ts, time.Now().UTC().Format("2006-01-02")) {
		t.Errorf("EVE timestamp %q is not today", ts)
	}
	if jq, err := exec.LookPath("jq"); err == nil {
		cmd := exec.Command(jq, "-r", `[.event_type, .alert.signature_id, .alert.action, .bulwark.src_vm, .in_iface] | @tsv`)
		cmd.Stdin = bytes.NewReader(append(line, '\n'))
		out, err := cmd.Output()
		if err != nil || string(out) != "alert\t1000001\tallowed\ta\tb/nic0\n" {
			t.Errorf("jq: %q, %v", out, err)
		}
	}
	st := l.ips.Stats()
	if st.Networks["n"].Alerts != 1 || st.InspectedPackets < 5 || st.BlockedPackets != 0 {
		t.Errorf("stats %+v", st)
	}
	if hits := l.ips.RuleHits(); len(hits) != 1 || hits[0].SID != 1000001 || hits[0].Hits != 1 || hits[0].LastHit.IsZero() {
		t.Errorf("rule hits %+v", hits)
	}
}

// In block mode a drop rule's match never reaches the receiver, nor does
// anything later of its flow; the drops are counted at the sender's port
// and logged with the reason, and the event says "blocked".
func TestBlockModeDropsFlow(t *testing.T) {
	l := newLab(t, blockPolicy(), Options{})
	a, b := l.attach("a", 1), l.attach("b", 2)
	c := connect(a, b, 40001, 80)
	ok := c.data("GET / HTTP/1.1\r\nHost: b\r\n\r\n")
	a.send(ok)
	b.expect(ok)
	a.send(c.data("GET /?q=ATTACK-7f3a9 HTTP/1.1\r\nHost: b\r\n\r\n"))
	a.send(c.data("and the rest of the flow"))
	a.expectNotForwarded(b)
	l.waitDrops(a, "ips_drop", 1)
	l.waitDrops(a, "ips_flow_blocked", 1)
	// The other direction of the blocked flow is dropped too.
	b.send(c.ack())
	b.expectNotForwarded(a)
	l.waitDrops(b, "ips_flow_blocked", 1)
	ev := l.ev.wait(t, 1)
	if len(ev) != 1 || !ev[0].Blocked || ev[0].Bulwark.Mode != ModeBlock {
		t.Fatalf("events %+v", ev)
	}
	var m struct {
		Alert struct{ Action string } `json:"alert"`
	}
	if err := json.Unmarshal(ev[0].EVE(), &m); err != nil || m.Alert.Action != "blocked" {
		t.Errorf("EVE alert.action %q (%v)", m.Alert.Action, err)
	}
	st := l.ips.Stats().Networks["n"]
	if st.BlockedFlows != 1 || st.BlockedPackets != 3 || st.FlowBlockedDrops != 2 {
		t.Errorf("stats %+v", st)
	}
	deadline := time.Now().Add(waitLimit)
	for !strings.Contains(l.fwlog.String(), `"reason":"ips_drop"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no ips_drop line in the switch's log:\n%s", l.fwlog.String())
		}
		time.Sleep(time.Millisecond)
	}
	// Another connection between the same VMs is not affected.
	c2 := connect(a, b, 40002, 80)
	d := c2.data("fine")
	a.send(d)
	b.expect(d)
}

// A GRE packet between VMs is inspected and so is what it carries: a
// tunnel is no way around the rules. The inner packet that a drop rule
// matches drops the GRE packet; a clean one passes.
func TestGREInnerInspected(t *testing.T) {
	l := newLab(t, blockPolicy(), Options{})
	a, b := l.attach("a", 1), l.attach("b", 2)
	inner := func(payload string) []byte {
		src, dst := netip.MustParseAddr("192.168.77.1"), netip.MustParseAddr("192.168.77.2")
		return packettest.IPv4(src, dst, 17, packettest.UDP(src, dst, 5555, 9999, []byte(payload)))
	}
	gre := func(payload string) []byte {
		return a.flow(b).IP(47, append([]byte{0, 0, 0x08, 0x00}, inner(payload)...))
	}
	clean := gre("harmless")
	a.send(clean)
	b.expect(clean)
	a.send(gre("x UDP-BAD y"))
	a.expectNotForwarded(b)
	l.waitDrops(a, "ips_drop", 1)
	ev := l.ev.wait(t, 1)
	if len(ev) != 1 || !ev[0].Blocked {
		t.Fatalf("events %+v", ev)
	}
	var m struct {
		Alert struct {
			SignatureID int `json:"signature_id"`
		} `json:"alert"`
		DestPort int `json:"dest_port"`
	}
	if err := json.Unmarshal(ev[0].EVE(), &m); err != nil || m.Alert.SignatureID != 1000006 || m.DestPort != 9999 {
		t.Errorf("EVE of the inner packet: %s (%v)", ev[0].EVE(), err)
	}
}

// A reject rule drops the segment and answers the sender with a RST.
func TestRejectSendsReset(t *testing.T) {
	l := newLab(t, blockPolicy(), Options{})
	a, b := l.attach("a", 1), l.attach("b", 2)
	c := connect(a, b, 40003, 8080)
	a.send(c.data("please REJECT-ME now"))
	rst := a.recv()
	var f packet.Frame
	if r := packet.Parse(rst, &f); r != packet.OK || f.Tuple.Proto != packet.ProtoTCP || f.TCPFlags&packet.TCPRst == 0 ||
		f.Tuple.Src != b.ip || f.Tuple.SrcPort != 8080 || f.Tuple.DstPort != 40003 {
		t.Fatalf("a received %s, want a RST from b:8080", describe(rst))
	}
	a.expectNotForwarded(b)
	l.waitDrops(a, "ips_drop", 1)
}

// A pattern split across two segments matches the stream: the second
// segment is dropped.
func TestSplitPatternMatches(t *testing.T) {
	l := newLab(t, blockPolicy(), Options{})
	a, b := l.attach("a", 1), l.attach("b", 2)
	c := connect(a, b, 40004, 80)
	first := c.data("POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 20\r\n\r\nATTA")
	a.send(first)
	b.expect(first)
	a.send(c.data("CK-7f3a9 rest"))
	a.expectNotForwarded(b)
	l.waitDrops(a, "ips_drop", 1)
	if ev := l.ev.wait(t, 1); ev[0].Alert.Rule.SID != 1000001 {
		t.Errorf("sid %d", ev[0].Alert.Rule.SID)
	}
}

// A segment that rewrites bytes already sent with different data is
// dropped in block mode (ips_stream): the receiver never sees a second
// version of the stream.
func TestOverlapDropped(t *testing.T) {
	l := newLab(t, blockPolicy(), Options{})
	a, b := l.attach("a", 1), l.attach("b", 2)
	c := connect(a, b, 40005, 80)
	seq := c.cseq
	first := c.data("GET /harmless HTTP/1.1\r\n")
	a.send(first)
	b.expect(first)
	a.send(a.flow(b).TCP(40005, 80, packet.TCPAck|packet.TCPPsh, seq, c.sseq, []byte("GET /different HTTP/1.1\r\n")))
	a.expectNotForwarded(b)
	l.waitDrops(a, "ips_stream", 1)
}

// DNS query and TLS SNI rules fire on traffic between VMs.
func TestDNSAndTLSRules(t *testing.T) {
	l := newLab(t, Policy{Networks: map[string]NetPolicy{"n": {Mode: ModeAlert}}}, Options{})
	a, b := l.attach("a", 1), l.attach("b", 2)
	q := a.flow(b).UDP(5353, 53, dnsQuery("www.EVIL.example"))
	a.send(q)
	b.expect(q)
	c := connect(a, b, 40006, 443)
	hello := clientHello(t, "bad.example")
	d := c.data(string(hello))
	a.send(d)
	b.expect(d)
	l.ev.wait(t, 2)
	if ev := l.ev.bySID(1000003); len(ev) != 1 || ev[0].Alert.App.String() != "dns" {
		t.Errorf("dns events %v", ev)
	}
	if ev := l.ev.bySID(1000004); len(ev) != 1 || ev[0].Alert.App.String() != "tls" {
		t.Errorf("tls events %v", ev)
	}
}

// clientHello is the first flight of Go's TLS client for server name sni.
func clientHello(t *testing.T, sni string) []byte {
	cli, srv := net.Pipe()
	defer srv.Close()
	go func() {
		// One key share keeps the hello in one frame (post-quantum shares are over 1 KiB).
		tls.Client(cli, &tls.Config{ServerName: sni, CurvePreferences: []tls.CurveID{tls.X25519}}).Handshake()
		cli.Close()
	}()
	buf := make([]byte, 4096)
	srv.SetReadDeadline(time.Now().Add(waitLimit))
	n, err := srv.Read(buf)
	if err != nil || n < 5 || buf[0] != 0x16 {
		t.Fatalf("no ClientHello: %v", err)
	}
	return buf[:n]
}

// A group's override makes its members alert-only inside a block
// network: traffic to them passes (and alerts); traffic between others is
// still blocked.
func TestGroupOverride(t *testing.T) {
	pol := blockPolicy()
	pol.Groups = map[string]Mode{"lab": ModeAlert}
	l := newLab(t, pol, Options{})
	a, b, c := l.attach("a", 1), l.attach("b", 2), l.attach("c", 3, "web", "lab")
	tc := connect(a, c, 40007, 80)
	d := tc.data("ATTACK-7f3a9")
	a.send(d)
	c.expect(d)
	tb := connect(a, b, 40008, 80)
	a.send(tb.data("ATTACK-7f3a9"))
	a.expectNotForwarded(b)
	l.waitDrops(a, "ips_drop", 1)
	evs := l.ev.wait(t, 2)
	modes := map[string]Mode{}
	for _, ev := range evs {
		modes[ev.Bulwark.DestVM] = ev.Bulwark.Mode
		if ev.Blocked != (ev.Bulwark.DestVM == "b") {
			t.Errorf("event to %s blocked %v", ev.Bulwark.DestVM, ev.Blocked)
		}
	}
	if modes["c"] != ModeAlert || modes["b"] != ModeBlock {
		t.Errorf("modes %v", modes)
	}
	if g := evs[0].Bulwark; len(g.SrcGroups) == 0 || g.SrcGroups[0] != "web" {
		t.Errorf("src groups %v", g.SrcGroups)
	}
	// Off for a group: not inspected at all.
	pol.Groups["lab"] = ModeOff
	if err := l.ips.SetPolicy(pol); err != nil {
		t.Fatal(err)
	}
	before := l.ips.Stats().InspectedPackets
	d = tc.data("ATTACK-7f3a9 again")
	a.send(d)
	c.expect(d)
	if after := l.ips.Stats().InspectedPackets; after != before {
		t.Errorf("inspected %d packets of an off group", after-before)
	}
}

// holdShards locks every shard, as a Detector busy with other packets
// would, until the returned function is called.
func holdShards(s *Stage) func() {
	for i := range s.shards {
		s.shards[i].mu.Lock()
	}
	return func() {
		for i := range s.shards {
			s.shards[i].mu.Unlock()
		}
	}
}

// An overloaded shard passes packets uninspected (fail-open) or drops them
// (fail-closed, the default), per network.
func TestOverload(t *testing.T) {
	for _, ov := range []Overload{"", FailOpen} {
		t.Run(string(ov)+"default", func(t *testing.T) {
			l := newLab(t, Policy{Networks: map[string]NetPolicy{"n": {Mode: ModeBlock, Overload: ov}}}, Options{MaxWaiters: -1})
			a, b := l.attach("a", 1), l.attach("b", 2)
			u := a.flow(b).UDP(1000, 9999, []byte("UDP-BAD but nobody has time"))
			release := holdShards(l.ips)
			a.send(u)
			if ov == FailOpen {
				b.expect(u)
			} else {
				a.expectNotForwarded(b)
				l.waitDrops(a, "ips_overload", 1)
			}
			release()
			st := l.ips.Stats()
			if ov == FailOpen && (st.OverloadPass != 1 || st.OverloadDrop != 0) ||
				ov != FailOpen && (st.OverloadPass != 0 || st.OverloadDrop != 1) {
				t.Errorf("stats %+v", st.NetStats)
			}
			// Inspected again once the shard is free.
			a.send(u)
			a.expectNotForwarded(b)
			l.waitDrops(a, "ips_drop", 1)
		})
	}
}

// Without rules everything passes uninspected, counted.
func TestNoEngine(t *testing.T) {
	l := newLab(t, blockPolicy(), Options{})
	l.ips.SetEngine(nil)
	a, b := l.attach("a", 1), l.attach("b", 2)
	u := a.flow(b).UDP(1000, 9999, []byte("UDP-BAD"))
	a.send(u)
	b.expect(u)
	if st := l.ips.Stats(); st.Uninspected != 1 || st.InspectedPackets != 0 || st.Rules != 0 {
		t.Errorf("stats %+v", st)
	}
}

// A new rule set keeps the flows blocked under the old one blocked.
func TestSetEngineKeepsBlockedFlows(t *testing.T) {
	l := newLab(t, blockPolicy(), Options{})
	a, b := l.attach("a", 1), l.attach("b", 2)
	c := connect(a, b, 40009, 80)
	a.send(c.data("ATTACK-7f3a9"))
	a.expectNotForwarded(b)
	l.waitDrops(a, "ips_drop", 1)
	l.ips.SetEngine(loadEngine(t, `alert udp any any -> any any (msg:"other"; content:"zzz"; sid:7;)`))
	a.send(c.data("after the reload"))
	a.expectNotForwarded(b)
	l.waitDrops(a, "ips_flow_blocked", 1)
	if h := l.ips.RuleHits(); len(h) != 0 {
		t.Errorf("rule hits of the new set %+v", h)
	}
}

// A broadcast frame flooded to several ports is inspected once and
// dropped for all of them.
func TestBroadcastInspectedOnce(t *testing.T) {
	l := newLab(t, blockPolicy(), Options{})
	a, b, c := l.attach("a", 1), l.attach("b", 2), l.attach("c", 3)
	fl := a.flow(b)
	fl.DstMAC = packet.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	fl.Dst = netipAddr("10.0.0.255")
	ok := fl.UDP(1000, 9999, []byte("hello all"))
	a.send(ok)
	b.expect(ok)
	c.expect(ok)
	if st := l.ips.Stats(); st.InspectedPackets != 1 {
		t.Errorf("inspected %d packets for one broadcast to two ports", st.InspectedPackets)
	}
	a.send(fl.UDP(1000, 9999, []byte("UDP-BAD to all")))
	a.expectNotForwarded(b)
	a.expectNotForwarded(c)
	l.waitDrops(a, "ips_drop", 2)
	if st := l.ips.Stats(); st.InspectedPackets != 2 || st.Alerts != 1 {
		t.Errorf("stats %+v", st.NetStats)
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, tt := range []struct {
		p    Policy
		want string // "" valid
	}{
		{Policy{}, ""},
		{Policy{Networks: map[string]NetPolicy{"n": {Mode: ModeBlock, Overload: FailOpen}}, Groups: map[string]Mode{"web": ModeOff}}, ""},
		{Policy{Networks: map[string]NetPolicy{"n": {Mode: "drop"}}}, `networks["n"].mode: "drop" is not one of off, alert, block`},
		{Policy{Networks: map[string]NetPolicy{"n": {}}}, `networks["n"].mode`},
		{Policy{Networks: map[string]NetPolicy{"n": {Mode: ModeAlert, Overload: "open"}}}, `networks["n"].overload: "open"`},
		{Policy{Networks: map[string]NetPolicy{"Bad Name": {Mode: ModeAlert}}}, `networks["Bad Name"]`},
		{Policy{Groups: map[string]Mode{"web": "ids"}}, `groups["web"]: "ids" is not one of off, alert, block`},
	} {
		err := tt.p.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.p, err, tt.want)
		}
	}
	if err := New(Options{}).SetPolicy(Policy{Networks: map[string]NetPolicy{"n": {Mode: "x"}}}); err == nil {
		t.Error("SetPolicy accepted an invalid policy")
	}
}

var _ netsw.Stage = (*Stage)(nil)
