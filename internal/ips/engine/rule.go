package engine

import (
	"net/netip"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

// try evaluates rule id in inspection c and, when it matches, applies its
// flowbits, its threshold and its action. It reports whether it matched.
func (d *Detector) try(id int32, c *ictx) bool {
	r := d.e.rules[id]
	meta := &d.e.meta[id]
	d.stats.Evaluated++
	if !d.matches(r, meta, c) {
		return false
	}
	if c.kind == kindStream && len(c.prior) > 0 {
		// Matched the window: new only if the earlier part alone,
		// inspected before, does not match.
		full := c.bufs[rules.BufPayload]
		c.bufs[rules.BufPayload] = c.prior
		again := d.matches(r, meta, c)
		c.bufs[rules.BufPayload] = full
		if again {
			return false
		}
	}
	d.stamp[id] = d.gen
	c.f.bits.apply(meta.bits, len(d.e.bitNames))
	if r.Action == rules.ActionPass {
		c.passed = true
		d.passed = true
		return true
	}
	if r.NoAlert {
		return true
	}
	if t := r.Threshold; t != nil && !d.th.allow(id, t, c.p, c.f.id, c.p.Time) {
		d.stats.Suppressed++
		return true
	}
	if t := r.DetectionFilter; t != nil && !d.th.allow(id, t, c.p, c.f.id, c.p.Time) {
		d.stats.Suppressed++
		return true
	}
	if d.nalert >= d.cfg.MaxAlertsPerPacket {
		d.stats.AlertsDropped++
		return true
	}
	d.nalert++
	d.stats.Alerts++
	p := c.p
	d.alerts = append(d.alerts, Alert{
		Rule: r, RuleIndex: id, Category: meta.category, Time: p.Time, FlowID: c.f.id,
		Src: p.Src, Dst: p.Dst, SrcPort: p.SrcPort, DstPort: p.DstPort, Proto: p.Proto,
		ICMPType: p.ICMPType, ICMPCode: p.ICMPCode, App: c.f.app, ToServer: c.toServer,
		TxID: c.txID, HasTx: c.hasTx,
		LinkType: p.LinkType, Frame: p.Frame, HasEther: p.HasEther, SrcMAC: p.SrcMAC, DstMAC: p.DstMAC,
	})
	return true
}

// matches reports whether rule r holds for inspection c: header, flow,
// packet conditions, every buffer's matches, then flowbits conditions.
func (d *Detector) matches(r *rules.Rule, meta *ruleMeta, c *ictx) bool {
	if !d.headerOK(r, c) {
		return false
	}
	p := c.p
	if r.AppProto != rules.AppNone && c.f.app != r.AppProto {
		return false
	}
	fl := &r.Flow
	if fl.ToServer && !c.toServer || fl.ToClient && c.toServer {
		return false
	}
	if fl.Established && !c.f.established() || fl.NotEstablished && c.f.established() {
		return false
	}
	if r.Dsize != nil {
		n := uint64(len(p.Payload))
		// Suricata files dsize:!N among the rules that need a payload,
		// so an empty packet never matches it.
		if c.kind == kindStream || !r.Dsize.Match(n) || n == 0 && r.Dsize.Op == rules.CmpNe {
			return false
		}
	}
	if r.Flags != nil && (p.Proto != ProtoTCP || !r.Flags.Match(p.TCPFlags)) {
		return false
	}
	icmp := p.Proto == ProtoICMP || p.Proto == ProtoICMPv6
	if r.IType != nil && (!icmp || !r.IType.Match(uint64(p.ICMPType))) {
		return false
	}
	if r.ICode != nil && (!icmp || !r.ICode.Match(uint64(p.ICMPCode))) {
		return false
	}
	if r.URILen != nil {
		b := rules.BufHTTPURI
		if r.URILenRaw {
			b = rules.BufHTTPURIRaw
		}
		if c.have&(1<<b) == 0 || !r.URILen.Match(uint64(len(c.bufs[b]))) {
			return false
		}
	}
	for _, bm := range r.Buffers {
		if len(bm.Matches) == 0 && bm.Bsize == nil && len(bm.Transforms) == 0 {
			// What a content modifier (http_uri, ...) left behind
			// when it moved the content out of the payload.
			continue
		}
		if c.have&(1<<bm.Buffer) == 0 {
			return false
		}
		if !d.m.matchBuffer(bm, c.bufs[bm.Buffer]) {
			return false
		}
	}
	if meta.needBits && !c.f.bits.check(meta.bits) {
		return false
	}
	return true
}

// headerOK checks the rule header: protocol, addresses and ports, in the
// rule's direction or, for "<>", either.
func (d *Detector) headerOK(r *rules.Rule, c *ictx) bool {
	p := c.p
	switch r.Proto {
	case rules.ProtoTCP, rules.ProtoTCPPkt, rules.ProtoTCPStream, rules.ProtoHTTP, rules.ProtoTLS:
		if p.Proto != ProtoTCP {
			return false
		}
	case rules.ProtoUDP:
		if p.Proto != ProtoUDP {
			return false
		}
	case rules.ProtoICMP:
		if p.Proto != ProtoICMP && p.Proto != ProtoICMPv6 {
			return false
		}
	case rules.ProtoDNS:
		if p.Proto != ProtoTCP && p.Proto != ProtoUDP {
			return false
		}
	}
	if endpoints(r, p.Src, p.SrcPort, p.Dst, p.DstPort, p.Proto) {
		return true
	}
	return r.Bidirectional && endpoints(r, p.Dst, p.DstPort, p.Src, p.SrcPort, p.Proto)
}

func endpoints(r *rules.Rule, src netip.Addr, sp uint16, dst netip.Addr, dp uint16, proto uint8) bool {
	if !r.Src.Contains(src) || !r.Dst.Contains(dst) {
		return false
	}
	if proto != ProtoTCP && proto != ProtoUDP {
		// Packets without ports match only port-agnostic rules.
		return r.SrcPorts.IsAny() && r.DstPorts.IsAny()
	}
	return r.SrcPorts.Contains(sp) && r.DstPorts.Contains(dp)
}
