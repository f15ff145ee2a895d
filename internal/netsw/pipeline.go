package netsw

import (
	"net/netip"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/conntrack"
	"github.com/bulwark-project/bulwark/internal/netsw/firewall"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// PickUpWindow is how long after the switch starts mid-stream TCP segments
// may re-create flows of connections established before a daemon restart
// (only in a direction the rules allow). Afterwards such segments are
// invalid, as they should be.
var PickUpWindow = 10 * time.Minute

// readBuf is larger than any frame we accept so that an oversized datagram
// is seen whole (and dropped as too long) rather than truncated.
const readBuf = 65536

// readLoop is the port's only reader; it runs the pipeline for each frame.
func (s *Switch) readLoop(p *Port) {
	buf := make([]byte, readBuf)
	scratch := make([]byte, 0, packet.MaxFrame)
	var f packet.Frame
	for {
		n, err := p.io.read(buf)
		if err != nil {
			if p.closed.Load() {
				return
			}
			s.log.Debug("port read", "port", p.Name, "err", err)
			continue
		}
		p.stats.rxFrames.Add(1)
		p.stats.rxBytes.Add(uint64(n))
		scratch = s.process(p, buf[:n], &f, scratch[:0])
	}
}

// process runs one frame from port src through the pipeline (stage.go):
// the per-frame stages, then the forwarding core's L2 lookup, then per
// destination port the per-destination stages and the send. It returns
// scratch for reuse. Only src's reader calls it with src as the source.
func (s *Switch) process(src *Port, b []byte, f *packet.Frame, scratch []byte) []byte {
	l := s.stages.Load()
	c := &src.fc
	*c = FrameContext{Raw: b, Frame: f, In: src, Now: s.now(), scratch: scratch, Seq: c.Seq + 1}
	if cs := src.net.chains.Load(); cs != nil && cs.service[src.ID] {
		// A service chain's appliance: it forwards others' frames.
		if !s.applianceFrame(l, c) {
			return c.scratch
		}
	} else if !s.run(l.perFrame, c) {
		return c.scratch
	}
	now := c.Now
	n := src.net
	ports := *s.ports.Load()
	if src.Kind != VMPort {
		if s.fromUplink(c, ports) {
			return c.scratch // a local VM's source MAC: a hairpin reflection or a spoof (vepa.go)
		}
		n.macs.learn(f.Src, src.ID, now)
	}
	if !f.Dst.IsMulticast() {
		if id := n.macs.lookup(f.Dst, now); id >= 0 {
			if dst := ports[id]; dst != nil && dst != src {
				s.forward(l, c, dst)
				return c.scratch
			}
			if id == src.ID {
				return c.scratch // hairpin to itself: nothing to do
			}
		}
		s.unknownUnicast(l, c)
		return c.scratch
	}
	// Broadcast or multicast: flood within the network (on a VEPA network,
	// by way of the external switch).
	if src.Kind == VMPort && n.vepa.Load() {
		s.floodVEPA(l, c)
		return c.scratch
	}
	for _, dst := range *n.flood.Load() {
		if dst != src {
			s.forward(l, c, dst)
		}
	}
	return c.scratch
}

// unknownUnicast handles a unicast frame to a MAC address the network's
// table does not have. Every VM port's MAC is a static entry, so such a
// frame is for no VM: flooding it to the VM ports would only load
// bystanders (a guest sending 16,000 frames/s to a made-up MAC once
// raised a neighbour's round trip thirtyfold). So:
//   - from a VM, it goes to the network's uplink only, where the
//     destination may live, and counts against the sender's storm control
//     like broadcast (StormControl); without an uplink it is dropped
//     (UnknownUnicast);
//   - from the uplink it is dropped (UnknownUnicast): nothing behind the
//     other ports can have that address.
func (s *Switch) unknownUnicast(l *stageList, c *FrameContext) {
	src := c.In
	var up *Port
	if src.Kind == VMPort {
		for _, p := range *src.net.flood.Load() {
			if p.Kind == UplinkPort {
				up = p
				break
			}
		}
	}
	if up == nil {
		s.drop(src, packet.UnknownUnicast, c.Frame, src, nil, c.Now)
		return
	}
	if !src.storm.Allow(c.Now) {
		s.drop(src, packet.StormControl, c.Frame, src, up, c.Now)
		return
	}
	if s.admit(l, c, up) {
		s.markHairpin(c)
		up.send(c.Raw)
	}
}

// forward runs the per-destination stages for dst and delivers the frame
// if they all pass.
func (s *Switch) forward(l *stageList, c *FrameContext, dst *Port) {
	if s.admit(l, c, dst) {
		s.deliver(c, dst)
	}
}

// admit runs the per-destination stages for dst and reports whether they
// all passed.
func (s *Switch) admit(l *stageList, c *FrameContext, dst *Port) bool {
	f := c.Frame
	if f.IPValid && dst.Kind == VMPort && !dst.binding.Owns(f.Tuple.Dst) && !ipGroupAddr(f.Tuple.Dst, c.In.net.bcast) {
		// A unicast IP packet for another address, whatever its Ethernet
		// destination (a flooded copy, or a broadcast frame wrapping one
		// VM's address): this VM has no business seeing it. The design's
		// rule is on the IP destination, so an L2 broadcast cannot widen it.
		return false
	}
	c.Out, c.Flow, c.Dir = dst, nil, conntrack.Original
	return s.run(l.perDest, c)
}

// deliver sends a frame the stages for dst passed: to dst itself, or
// between two VMs to a service chain's appliance (servicechain.go) or, on
// a VEPA network, out the uplink for the external switch to reflect
// (vepa.go). Each of these costs one atomic load when not configured.
func (s *Switch) deliver(c *FrameContext, dst *Port) {
	if c.In.Kind == VMPort && dst.Kind == VMPort {
		n := c.In.net
		if cs := n.chains.Load(); cs != nil && c.Flow != nil && s.redirect(c, dst, cs) {
			return
		}
		if n.vepa.Load() {
			s.hairpinOut(c, dst)
			return
		}
	}
	dst.send(c.Raw)
}

func portID(p *Port) int32 {
	if p.Kind == VMPort {
		return p.ID
	}
	return -1
}

// filter decides whether an IP packet may go from c.In to c.Out; it
// counts and logs its drops and returns their reason (OK: it passes). It
// sets c.Flow to the packet's tracked flow, if any.
func (s *Switch) filter(c *FrameContext) packet.Reason {
	src, dst, f, now := c.In, c.Out, c.Frame, c.Now
	pol := s.policy.Load()
	ct := src.net.ct
	if f.ICMPError {
		if r := s.related(src, dst, f, now); r != packet.OK {
			s.dropAt(src, dst, r, f, now)
			return r
		}
		return packet.OK
	}
	fl, dir, r := ct.Lookup(now, f)
	if r != packet.OK {
		s.dropAt(src, dst, r, f, now)
		return r
	}
	if fl != nil && !flowBetween(fl, dir, src, dst) {
		// The flow was admitted between other ports (this is a flooded copy,
		// or a frame aimed at another port's MAC): it carries no permission
		// here, so this port pair's rules decide, without creating state.
		v := pol.Evaluate(f.Tuple, f.ICMPType, portID(src), portID(dst))
		if !v.Allowed() {
			s.countAt(src, dst, v.Reason)
			s.event(src, dst, f, v.Action.String(), v.Reason, v.Group, v.RuleID)
			return v.Reason
		}
		return packet.OK
	}
	if fl != nil {
		if g := pol.Gen(); ct.FlowGen(fl) != g {
			// Rules changed since this flow was admitted: re-check it in its
			// original direction; a revoked allow cuts the connection.
			if !pol.Allows(fl.Orig, fl.ICMPType, fl.OrigPort, fl.ReplyPort) {
				ct.Delete(fl.Orig)
				s.countAt(src, dst, packet.FWRevoked)
				s.event(src, dst, f, "revoked", packet.FWRevoked, "", "")
				return packet.FWRevoked
			}
			ct.SetFlowGen(fl, g)
		}
		// Established: the fast path (no rule is evaluated).
		c.Flow, c.Dir = fl, dir
		return packet.OK
	}
	// A packet to a broadcast or multicast address is never tracked: it is
	// judged by the rules alone, per destination port.
	stateless := f.Dst.IsMulticast() || conntrack.Untracked(f)
	v := pol.Evaluate(f.Tuple, f.ICMPType, portID(src), portID(dst))
	if v.Action != firewall.Allow {
		if v.Direction == firewall.Ingress && dst.Kind == VMPort {
			dst.drop(v.Reason) // the receiver's ingress policy decided
		} else {
			s.countAt(src, dst, v.Reason)
		}
		s.event(src, dst, f, v.Action.String(), v.Reason, v.Group, v.RuleID)
		if v.Action == firewall.Reject && !stateless {
			c.scratch = s.reject(src, f, c.scratch)
		}
		return v.Reason
	}
	if stateless {
		return packet.OK
	}
	fl, r = ct.Create(now, f, pol.Gen(), portID(src), portID(dst))
	if r == packet.CTInvalid && now < PickUpWindow.Nanoseconds() && f.Tuple.Proto == packet.ProtoTCP {
		// Soon after a start the table is empty but connections admitted
		// by the previous daemon are alive: take a mid-stream segment that
		// this direction's rules allow as an established flow.
		fl, r = ct.PickUp(now, f, pol.Gen(), portID(src), portID(dst))
	}
	if r != packet.OK {
		s.dropAt(src, dst, r, f, now)
		return r
	}
	c.Flow, c.Dir = fl, conntrack.Original
	s.event(src, dst, f, "allow", packet.OK, v.Group, v.RuleID)
	return packet.OK
}

// ICMPErrorPPS bounds the ICMP errors (destination unreachable, time
// exceeded, packet too big, parameter problem) one VM port may send, in
// errors per second with a burst of as many. Errors are answers to packets
// the VM received, so a legitimate guest sends few; the bound keeps a VM
// from replaying errors about a flow it is a peer of as a flood.
const ICMPErrorPPS = 100

// related decides an ICMP error from src to dst (RELATED in iptables terms).
// It passes only when
//   - it quotes a live flow, sent by the error's recipient (conntrack's
//     LookupRelated; else ICMPUnrelated);
//   - it goes to the port on the quoting side of that flow and comes from
//     the port on the other side: the flow's peer itself or, when that side
//     is the uplink, any router beyond it that the flow crossed (the
//     network's gateway among them); a VM that is not the peer may not
//     speak for the path (ICMPForeign);
//   - a VM sender is within ICMPErrorPPS (ICMPErrorRate).
//
// A VM's outer source address is its own (anti-spoofing ran before), so the
// port check is the address check.
func (s *Switch) related(src, dst *Port, f *packet.Frame, now int64) packet.Reason {
	if !f.InnerValid {
		return packet.ICMPUnrelated
	}
	fl := src.net.ct.LookupRelated(f)
	if fl == nil || fl.Removed() {
		return packet.ICMPUnrelated
	}
	// f.Inner is the quoted packet as the recipient sent it.
	recipient, peer := fl.OrigPort, fl.ReplyPort
	if f.Inner != fl.Orig {
		recipient, peer = fl.ReplyPort, fl.OrigPort
	}
	if portID(dst) != recipient || portID(src) != peer {
		return packet.ICMPForeign
	}
	if src.icmpErr != nil && !src.icmpErr.Allow(now) {
		return packet.ICMPErrorRate
	}
	return packet.OK
}

// countAt counts a rule verdict's drop (logged by event, not drop) on the
// sender's port when it is a VM port, else on the receiver's. Ingress
// verdicts are counted on the receiver by filter.
func (s *Switch) countAt(src, dst *Port, r packet.Reason) {
	if src.Kind == VMPort {
		src.drop(r)
	} else {
		dst.drop(r)
	}
}

// reject answers the sender with a TCP RST or an ICMP port/admin-prohibited
// unreachable, as the rule asked.
func (s *Switch) reject(src *Port, f *packet.Frame, scratch []byte) []byte {
	var out []byte
	switch f.Tuple.Proto {
	case packet.ProtoTCP:
		out = packet.BuildTCPReset(scratch[:0], f)
	default:
		out = packet.BuildUnreachable(scratch[:0], f, packet.ICMPv4AdminProhibited, packet.ICMPv6AdminProhibited)
	}
	if out != nil {
		src.send(out)
		return out[:0]
	}
	return scratch
}

// flowBetween reports whether a tracked flow was admitted between exactly
// these two ports, in the direction the packet travels.
func flowBetween(fl *conntrack.Flow, dir conntrack.Dir, src, dst *Port) bool {
	if dir == conntrack.Original {
		return fl.OrigPort == portID(src) && fl.ReplyPort == portID(dst)
	}
	return fl.OrigPort == portID(dst) && fl.ReplyPort == portID(src)
}

// ipGroupAddr reports destinations meant for several hosts: multicast, the
// limited broadcast, and bcast, the network's subnet-directed broadcast.
func ipGroupAddr(a, bcast netip.Addr) bool {
	return a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || a == bcast
}
