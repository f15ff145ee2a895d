package engine

import (
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

// inlinePkt is the next client or server packet of c, not sent.
func (c *tcpConn) inlinePkt(toServer bool, payload string) *Packet {
	p := &Packet{Time: c.now, Proto: ProtoTCP, TCPFlags: rules.TCPAck | rules.TCPPsh, Window: 65535, Payload: []byte(payload)}
	if toServer {
		p.Src, p.Dst, p.SrcPort, p.DstPort, p.Seq, p.Ack = cliIP, srvIP, c.cport, c.sport, c.cseq, c.sseq
		c.cseq += uint32(len(payload))
	} else {
		p.Src, p.Dst, p.SrcPort, p.DstPort, p.Seq, p.Ack = srvIP, cliIP, c.sport, c.cport, c.sseq, c.cseq
		c.sseq += uint32(len(payload))
	}
	return p
}

const inlineRules = `
drop tcp any any -> any 80 (msg:"drop"; flow:established,to_server; content:"BAD-DROP"; sid:1;)
reject tcp any any -> any 80 (msg:"reject"; flow:established,to_server; content:"BAD-REJECT"; sid:2;)
pass tcp any any -> any 80 (msg:"pass"; content:"LET-IT-BE"; sid:3;)
alert tcp any any -> any 80 (msg:"alert"; content:"NOTE"; sid:4;)
`

func TestInlineVerdicts(t *testing.T) {
	for _, tt := range []struct {
		name, payload string
		action        InlineAction
		why           InlineReason
		sid           uint32
	}{
		{"clean", "hello", InlinePass, InlineNone, 0},
		{"alert only", "a NOTE", InlinePass, InlineNone, 0},
		{"drop", "x BAD-DROP y", InlineDrop, InlineRule, 1},
		{"reject", "x BAD-REJECT y", InlineReject, InlineRule, 2},
		{"reject and drop", "BAD-DROP BAD-REJECT", InlineReject, InlineRule, 1},
		{"pass wins", "LET-IT-BE BAD-DROP", InlinePass, InlineNone, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDetector(t, inlineRules)
			c := newTCPConn(d, 4000)
			_, v := d.Inline(c.inlinePkt(true, tt.payload), true)
			if v.Action != tt.action || v.Why != tt.why || (tt.sid != 0) != (v.Rule != nil) || v.Rule != nil && v.Rule.SID != tt.sid {
				t.Fatalf("verdict %+v, want action %d why %d sid %d", v, tt.action, tt.why, tt.sid)
			}
			if v.FlowID == 0 {
				t.Error("no flow id")
			}
			// The next packet, either direction, of a flow a rule dropped
			// is dropped without inspection.
			alerts, v2 := d.Inline(c.inlinePkt(false, "reply NOTE"), true)
			blocked := tt.why == InlineRule
			if blocked != (v2.Why == InlineFlowBlocked) || blocked && (v2.Action != InlineDrop || len(alerts) != 0) {
				t.Errorf("next packet: %+v, %d alerts", v2, len(alerts))
			}
			if got := d.BlockedFlows(); got != map[bool]int{true: 1}[blocked] {
				t.Errorf("%d blocked flows", got)
			}
		})
	}
}

// Without enforce the verdict is reported but the flow is not blocked.
func TestInlineAlertOnly(t *testing.T) {
	d := newTestDetector(t, inlineRules)
	c := newTCPConn(d, 4001)
	alerts, v := d.Inline(c.inlinePkt(true, "BAD-DROP"), false)
	if v.Action != InlineDrop || len(alerts) != 1 {
		t.Fatalf("verdict %+v, %d alerts", v, len(alerts))
	}
	if _, v := d.Inline(c.inlinePkt(true, "more"), false); v.Action != InlinePass || d.BlockedFlows() != 0 {
		t.Errorf("next: %+v, %d blocked", v, d.BlockedFlows())
	}
}

// A segment the reassembler refuses (different bytes for sequence numbers
// already held) is an InlineStream drop.
func TestInlineStreamDrop(t *testing.T) {
	d := newTestDetector(t, inlineRules)
	c := newTCPConn(d, 4002)
	p := c.inlinePkt(true, "first version")
	if _, v := d.Inline(p, true); v.Action != InlinePass {
		t.Fatalf("first: %+v", v)
	}
	q := *p
	q.Payload = []byte("other version")
	if _, v := d.Inline(&q, true); v.Action != InlineDrop || v.Why != InlineStream {
		t.Fatalf("overlap: %+v", v)
	}
	if _, v := d.Inline(p, true); v.Action != InlinePass {
		t.Fatalf("same bytes again: %+v", v)
	}
}

// A Detector replacing another keeps its blocked flows blocked.
func TestAdoptBlocked(t *testing.T) {
	d := newTestDetector(t, inlineRules)
	c := newTCPConn(d, 4003)
	d.Inline(c.inlinePkt(true, "BAD-DROP"), true)
	newTCPConn(d, 4004) // another flow, not blocked
	nd := NewDetector(d.e, Config{})
	if n := nd.AdoptBlocked(d); n != 1 {
		t.Fatalf("adopted %d", n)
	}
	c.d = nd
	if _, v := nd.Inline(c.inlinePkt(false, "x"), true); v.Why != InlineFlowBlocked {
		t.Errorf("after adoption: %+v", v)
	}
}

// After a rule reload, a connection opened before it still satisfies
// flow:established (and its client side is kept), and a blocked one stays
// blocked.
func TestAdoptFlows(t *testing.T) {
	d := newTestDetector(t, inlineRules)
	c := newTCPConn(d, 4200)
	d.Inline(c.inlinePkt(true, "hello"), true)
	blocked := newTCPConn(d, 4201)
	d.Inline(blocked.inlinePkt(true, "BAD-DROP"), true)
	nd := NewDetector(d.e, Config{})
	if n := nd.AdoptFlows(d); n != 2 {
		t.Fatalf("adopted %d flows, want 2", n)
	}
	c.d, blocked.d = nd, nd
	if _, v := nd.Inline(c.inlinePkt(true, "x BAD-DROP y"), true); v.Action != InlineDrop || v.Why != InlineRule {
		t.Errorf("an established rule on a connection from before the reload: %+v", v)
	}
	if _, v := nd.Inline(blocked.inlinePkt(true, "x"), true); v.Why != InlineFlowBlocked {
		t.Errorf("a blocked flow after the reload: %+v", v)
	}
	// Without adoption the same connection is mid-stream: no match.
	fresh := NewDetector(d.e, Config{})
	c2 := newTCPConn(d, 4202)
	c2.d = fresh
	if _, v := fresh.Inline(c2.inlinePkt(true, "x BAD-DROP y"), true); v.Action != InlinePass {
		t.Errorf("the control (no adoption) matched: %+v", v)
	}
}

// A blocked flow pushed out of a full flow table by new flows stays
// blocked when it comes back: flooding the table is no way to resume a
// blocked connection mid-stream.
func TestBlockedSurvivesEviction(t *testing.T) {
	d := NewDetector(newTestDetector(t, inlineRules).e, Config{MaxFlows: 4})
	c := newTCPConn(d, 4100)
	if _, v := d.Inline(c.inlinePkt(true, "BAD-DROP"), true); v.Action != InlineDrop {
		t.Fatalf("the drop rule: %+v", v)
	}
	for port := uint16(4101); port < 4110; port++ {
		newTCPConn(d, port) // the flood that evicts the blocked flow
	}
	if d.stats.FlowsEvicted == 0 {
		t.Fatal("nothing was evicted")
	}
	if _, v := d.Inline(c.inlinePkt(true, "more"), true); v.Why != InlineFlowBlocked {
		t.Fatalf("the blocked flow after eviction: %+v", v)
	}
	// A key past the flow timeout is forgotten, as the flow would be.
	var m blockedMemory
	k := flowKey{ap: 1}
	m.add(k, t0)
	if m.take(k, t0.Add(time.Hour), time.Minute) || m.take(k, t0, time.Minute) {
		t.Error("a stale or taken key was still blocked")
	}
	// The ring's bound: the oldest key goes, a re-added key keeps its new slot.
	for i := 0; i < maxEvictedBlocked+1; i++ {
		m.add(flowKey{ap: uint16(i), bp: uint16(i >> 16)}, t0)
	}
	if m.take(flowKey{ap: 0}, t0, time.Minute) || !m.take(flowKey{ap: 1}, t0, time.Minute) || len(m.at) > maxEvictedBlocked {
		t.Errorf("ring bound: %d remembered", len(m.at))
	}
}

// Inline adds no allocation to steady-state inspection.
func TestInlineNoAllocs(t *testing.T) {
	d := newTestDetector(t, inlineRules)
	c := newTCPConn(d, 4005)
	data := Packet{Time: t0, Proto: ProtoTCP, Src: cliIP, Dst: srvIP, SrcPort: 4005, DstPort: 80,
		TCPFlags: rules.TCPAck | rules.TCPPsh, Window: 65535, Payload: []byte("plain data, no rule")}
	ack := Packet{Time: t0, Proto: ProtoTCP, Src: srvIP, Dst: cliIP, SrcPort: 80, DstPort: 4005, TCPFlags: rules.TCPAck, Window: 65535}
	n := testing.AllocsPerRun(200, func() {
		data.Seq, data.Ack = c.cseq, c.sseq
		c.cseq += uint32(len(data.Payload))
		ack.Seq, ack.Ack = c.sseq, c.cseq
		d.Inline(&data, true)
		d.Inline(&ack, true)
	})
	if n != 0 {
		t.Errorf("%.1f allocs per data packet and ack", n)
	}
}

// A drop rule matched on client bytes that the server's ACK delivered (out
// of order behind a hole the engine never saw) is the ACK packet's
// verdict, and blocks the flow: the client's next packets are dropped.
func TestInlineDropAtPeerAck(t *testing.T) {
	for _, enforce := range []bool{true, false} {
		d := newTestDetector(t, inlineRules)
		c := newTCPConn(d, 4006)
		c.cseq += 5 // a segment the engine did not see (passed fail-open)
		if _, v := d.Inline(c.inlinePkt(true, "x BAD-"), enforce); v.Action != InlinePass {
			t.Fatalf("first half: %+v", v)
		}
		if _, v := d.Inline(c.inlinePkt(true, "DROP y"), enforce); v.Action != InlinePass {
			t.Fatalf("second half: %+v", v)
		}
		ack := c.inlinePkt(false, "")
		ack.TCPFlags = rules.TCPAck
		alerts, v := d.Inline(ack, enforce)
		if v.Action != InlineDrop || v.Why != InlineRule || v.Rule == nil || v.Rule.SID != 1 || len(alerts) != 1 || !alerts[0].ToServer {
			t.Fatalf("enforce %v: ack verdict %+v, alerts %d", enforce, v, len(alerts))
		}
		_, v = d.Inline(c.inlinePkt(true, "more"), enforce)
		if blocked := v.Why == InlineFlowBlocked; blocked != enforce || d.BlockedFlows() != map[bool]int{true: 1}[enforce] {
			t.Errorf("enforce %v: next client packet %+v, %d blocked flows", enforce, v, d.BlockedFlows())
		}
	}
}
