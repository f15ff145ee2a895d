package engine

import (
	"time"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

// Inline inspection: the per-packet decision of an engine that sits on the
// data path (the switch's IPS stage) rather than beside it.

// InlineAction is what an inline engine does with a packet.
type InlineAction uint8

const (
	// InlinePass lets the packet through.
	InlinePass InlineAction = iota
	// InlineDrop discards it.
	InlineDrop
	// InlineReject discards it and answers the sender (a TCP RST or an
	// ICMP unreachable, which the caller builds).
	InlineReject
)

// InlineReason says why an inline verdict drops.
type InlineReason uint8

const (
	InlineNone InlineReason = iota
	// InlineRule: a drop or reject rule matched the packet (or its
	// stream or transaction); Verdict.Rule names it.
	InlineRule
	// InlineFlowBlocked: an earlier packet of the flow was dropped for a
	// rule; this one is dropped without inspection.
	InlineFlowBlocked
	// InlineStream: the TCP reassembler refused the segment (different
	// data for bytes already held, beyond the window, over a bound): the
	// receiver must not get a version of the stream that was not
	// inspected.
	InlineStream
)

// InlineVerdict is the decision about one packet.
type InlineVerdict struct {
	Action InlineAction
	Why    InlineReason
	// Rule is the first drop or reject rule that matched (Why
	// InlineRule), and RuleIndex its index in Engine.Rules; nil and -1
	// otherwise.
	Rule      *rules.Rule
	RuleIndex int32
	// FlowID is the packet's flow (0 for a packet that is not IP).
	FlowID uint64
}

// Inline inspects one decoded packet as an inline engine and returns its
// alerts (the Detector's slice, valid until the next call) and the verdict.
//
// With enforce (the caller blocks), a drop or reject match marks the flow
// blocked, and every later packet of a blocked flow is dropped without
// inspection until the flow times out or is evicted. Without enforce (alert
// only), nothing is marked and blocked flows are inspected like any other;
// the verdict still says what a blocking engine would do, so the caller can
// report it.
//
// A pass rule that matched the packet wins over drop and reject matches of
// the same packet (Suricata's order: pass stops the packet's inspection).
// Alerts of other flows (HTTP transactions inspected when an idle flow is
// evicted for this packet's) are returned but never decide the verdict.
//
// Known differences from Suricata inline: a drop or reject rule that does
// not alert (noalert, a threshold suppressing it, past
// Config.MaxAlertsPerPacket) does not drop.
func (d *Detector) Inline(p *Packet, enforce bool) ([]Alert, InlineVerdict) {
	v := InlineVerdict{RuleIndex: -1}
	if p.Proto == 0 {
		return d.Packet(p), v
	}
	if enforce {
		k := keyOf(p)
		f := d.flows[k]
		if f == nil && d.evictedBlocked.has(k) {
			f, _ = d.lookup(p) // comes back with its blocked mark
			f.last = p.Time.Add(-1)
		}
		if f != nil && f.blocked && p.Time.Sub(f.last) <= d.cfg.FlowTimeout {
			d.lookup(p) // keep it recent: a blocked flow stays blocked while it is used
			d.alerts = d.alerts[:0]
			v.Action, v.Why, v.FlowID = InlineDrop, InlineFlowBlocked, f.id
			return d.alerts, v
		}
	}
	before := d.stats.StreamDrops
	alerts := d.Packet(p)
	f := d.head // lookup made the packet's flow the most recent
	if f == nil || f.key != keyOf(p) {
		f = d.flows[keyOf(p)]
		if f == nil {
			return alerts, v
		}
	}
	v.FlowID = f.id
	if d.passed {
		return alerts, v
	}
	for i := range alerts {
		a := &alerts[i]
		if a.FlowID != f.id {
			continue
		}
		switch a.Rule.Action {
		case rules.ActionDrop:
			if v.Rule == nil {
				v.Action, v.Why, v.Rule, v.RuleIndex = InlineDrop, InlineRule, a.Rule, a.RuleIndex
			}
		case rules.ActionReject:
			if v.Rule == nil {
				v.Why, v.Rule, v.RuleIndex = InlineRule, a.Rule, a.RuleIndex
			}
			v.Action = InlineReject
		}
	}
	if v.Rule != nil {
		if enforce {
			f.blocked = true
		}
		return alerts, v
	}
	if d.stats.StreamDrops != before {
		v.Action, v.Why = InlineDrop, InlineStream
	}
	return alerts, v
}

// InlineInner inspects the IP packet a GRE packet carries, outer being
// the packet Inline has just inspected, as Frame does offline: into inner,
// with its own flow (in this Detector: every packet of the tunnel comes to
// the same one). ok is false when outer carries none or a pass rule
// matched it. One layer: a tunnel inside the tunnel is inspected as a GRE
// packet only. The alerts are valid until the next call.
func (d *Detector) InlineInner(outer, inner *Packet, enforce bool) (alerts []Alert, v InlineVerdict, ok bool) {
	if outer.tunnel == 0 || d.passed {
		return nil, InlineVerdict{RuleIndex: -1}, false
	}
	st := outer.tunnelStart
	inner.HasEther, inner.SrcMAC, inner.DstMAC, inner.LinkType, inner.Time = outer.HasEther, outer.SrcMAC, outer.DstMAC, outer.LinkType, outer.Time
	if decodeInner(outer.Frame[st:], outer.tunnel-st, inner) != DecodeOK || inner.Fragment {
		return nil, InlineVerdict{RuleIndex: -1}, false
	}
	alerts, v = d.Inline(inner, enforce)
	return alerts, v, true
}

// AdoptFlows carries old's flows into d (a Detector of a newly loaded rule
// set replacing old), oldest first, up to d's flow table bound: each keeps
// its client side, its TCP handshake state (so flow:established rules
// still match a connection opened before the reload) and its blocked mark
// (so a connection blocked under the old rules stays blocked: without it,
// the guest's retransmissions would resume it). Stream reassembly, the
// application-layer parsers and rule state (flowbits, thresholds) start
// afresh, as for a flow picked up mid-stream. It returns how many flows
// it carried.
func (d *Detector) AdoptFlows(old *Detector) int {
	n := 0
	for f := old.tail; f != nil && n < d.cfg.MaxFlows; f = f.prev {
		srv, srvPort := f.key.a, f.key.ap
		if srv == f.cliAddr && srvPort == f.cliPort {
			srv, srvPort = f.key.b, f.key.bp
		}
		p := Packet{Time: f.last, Proto: f.key.proto, Src: f.cliAddr, Dst: srv, SrcPort: f.cliPort, DstPort: srvPort}
		nf, _ := d.lookup(&p)
		nf.blocked, nf.tcp, nf.seen = f.blocked, f.tcp, f.seen
		n++
	}
	return n
}

// AdoptBlocked carries only old's blocked flows (see AdoptFlows) and
// returns how many.
func (d *Detector) AdoptBlocked(old *Detector) int {
	n := 0
	for f := old.tail; f != nil && n < d.cfg.MaxFlows; f = f.prev {
		if !f.blocked {
			continue
		}
		p := Packet{Time: f.last, Proto: f.key.proto, Src: f.key.a, Dst: f.key.b, SrcPort: f.key.ap, DstPort: f.key.bp}
		nf, _ := d.lookup(&p)
		nf.blocked = true
		n++
	}
	return n
}

// BlockedFlows returns the number of flows marked blocked.
func (d *Detector) BlockedFlows() int {
	n := 0
	for _, f := range d.flows {
		if f.blocked {
			n++
		}
	}
	return n
}

// maxEvictedBlocked bounds the blocked flows remembered after eviction,
// per Detector.
const maxEvictedBlocked = 16384

// blockedMemory holds the keys of blocked flows evicted from a full flow
// table. Without it, a guest could open MaxFlows new flows to push its
// blocked connection out, then resume that connection mid-stream, where
// flow:established rules no longer match. Only blocked flows enter it, so
// pushing one out of here takes maxEvictedBlocked more blocked flows (each
// an alert). An entry lasts FlowTimeout from its flow's last packet, like
// the flow it stands for. Oldest entries go first.
type blockedMemory struct {
	at   map[flowKey]evicted
	ring []flowKey
	next int
}

type evicted struct {
	last time.Time
	slot int // its place in ring, so a stale slot never removes a newer entry
}

func (m *blockedMemory) add(k flowKey, last time.Time) {
	if m.at == nil {
		m.at = map[flowKey]evicted{}
	}
	slot := len(m.ring)
	if slot < maxEvictedBlocked {
		m.ring = append(m.ring, k)
	} else {
		slot = m.next
		if old := m.ring[slot]; m.at[old].slot == slot {
			delete(m.at, old)
		}
		m.ring[slot] = k
		m.next = (m.next + 1) % maxEvictedBlocked
	}
	m.at[k] = evicted{last: last, slot: slot}
}

// has reports whether k is remembered (cheap when nothing is).
func (m *blockedMemory) has(k flowKey) bool {
	if len(m.at) == 0 {
		return false
	}
	_, ok := m.at[k]
	return ok
}

// take reports whether k was a blocked flow evicted less than timeout
// before now, and forgets it (the flow it starts again carries the mark).
func (m *blockedMemory) take(k flowKey, now time.Time, timeout time.Duration) bool {
	if len(m.at) == 0 {
		return false
	}
	e, ok := m.at[k]
	if !ok {
		return false
	}
	delete(m.at, k)
	return now.Sub(e.last) <= timeout
}
