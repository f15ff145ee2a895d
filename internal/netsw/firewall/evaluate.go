package firewall

import (
	"net/netip"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// Verdict is the firewall's decision on a new flow.
type Verdict struct {
	Action Action
	// Reason is packet.OK when Action is Allow; otherwise FWDrop or FWReject
	// (a rule matched) or FWDefault (a default denied, or a port unknown to
	// the policy). A Reject default has Action Reject and Reason FWDefault.
	Reason packet.Reason
	// Group and RuleID name the deciding rule, empty when a default decided.
	// For an allowed flow: the ingress rule that allowed it, else the egress
	// rule, else empty (both defaults).
	Group  string
	RuleID string
	// Direction is the stage that decided: Egress (the source port's rules
	// or default) or Ingress (the destination port's). For an allowed flow it
	// is the stage of the named rule, or with no rule named the last stage
	// evaluated.
	Direction Direction
}

// Allowed reports whether the verdict lets the flow through.
func (v Verdict) Allowed() bool { return v.Action == Allow }

// Evaluate decides a new flow with tuple t (and ICMP type icmpType, ignored
// for other protocols) from srcPort to dstPort, either of which may be -1
// for "not a VM port". It counts a hit on each rule that matched. It does
// not allocate.
func (p *Policy) Evaluate(t packet.Tuple, icmpType uint8, srcPort, dstPort int32) Verdict {
	return p.evaluate(&t, icmpType, srcPort, dstPort, true)
}

// Allows reports whether the policy would allow a flow, without counting
// hits. The switch calls it for existing flows (their original tuple, the
// creating packet's ICMP type and their ports) when the policy generation
// changes, and cuts those it no longer allows.
func (p *Policy) Allows(orig packet.Tuple, icmpType uint8, srcPort, dstPort int32) bool {
	return p.evaluate(&orig, icmpType, srcPort, dstPort, false).Action == Allow
}

var unknownPort = Verdict{Action: Drop, Reason: packet.FWDefault}

func (p *Policy) evaluate(t *packet.Tuple, icmpType uint8, srcPort, dstPort int32, count bool) Verdict {
	class := packetClass(t.Proto)
	v := Verdict{Action: Allow, Reason: packet.OK, Direction: Ingress}
	if srcPort >= 0 {
		pp := p.ports[srcPort]
		if pp == nil {
			v = unknownPort
			v.Direction = Egress
			return v
		}
		if r := firstMatch(pp.egress.byClass[class], t, class, icmpType, t.Dst, count); r != nil {
			v = ruleVerdict(r, Egress)
		} else if pp.def.Egress != Allow {
			return Verdict{Action: pp.def.Egress, Reason: packet.FWDefault, Direction: Egress}
		} else {
			v.Direction = Egress
		}
		if v.Action != Allow {
			return v
		}
	}
	if dstPort < 0 {
		return v
	}
	pp := p.ports[dstPort]
	if pp == nil {
		v = unknownPort
		v.Direction = Ingress
		return v
	}
	if r := firstMatch(pp.ingress.byClass[class], t, class, icmpType, t.Src, count); r != nil {
		return ruleVerdict(r, Ingress)
	}
	if pp.defaultIngressAllows(t.Src) {
		if v.RuleID == "" {
			v.Direction = Ingress
		}
		return v // keeps the egress rule, if one allowed
	}
	return Verdict{Action: Drop, Reason: packet.FWDefault, Direction: Ingress}
}

func (pp *portPolicy) defaultIngressAllows(src netip.Addr) bool {
	switch pp.def.Ingress {
	case AllowAll:
		return true
	case SameGroup:
		for _, m := range pp.members {
			if m.contains(src) {
				return true
			}
		}
	}
	return false
}

// firstMatch scans rules in order; the list already holds only rules that
// can match the packet's protocol class.
func firstMatch(rules []*crule, t *packet.Tuple, class int, icmpType uint8, remote netip.Addr, count bool) *crule {
	for _, r := range rules {
		if r.portMax != 0 && (t.DstPort < r.portMin || t.DstPort > r.portMax) {
			continue
		}
		if r.icmpType >= 0 && (class != classICMP || r.icmpType != int16(icmpType)) {
			continue
		}
		if !r.remote.contains(remote) {
			continue
		}
		if count {
			r.hits.Add(1)
		}
		return r
	}
	return nil
}

func ruleVerdict(r *crule, d Direction) Verdict {
	v := Verdict{Action: r.action, Group: r.group, RuleID: r.id, Direction: d}
	switch r.action {
	case Drop:
		v.Reason = packet.FWDrop
	case Reject:
		v.Reason = packet.FWReject
	}
	return v
}

func packetClass(proto uint8) int {
	switch proto {
	case packet.ProtoTCP:
		return classTCP
	case packet.ProtoUDP:
		return classUDP
	case packet.ProtoICMP, packet.ProtoICMPv6:
		return classICMP
	}
	return classOther
}
