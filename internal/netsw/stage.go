package netsw

import (
	"github.com/bulwark-project/bulwark/internal/netsw/conntrack"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// The pipeline as an ordered list of stages.
//
// Every frame a port reads goes through two lists of stages, in order:
//
//   - per frame, at the sending port (FrameContext.Out is nil):
//     egress_rate → parse → port_security;
//   - per destination port the forwarding core chose (Out set):
//     firewall → inspection stages → mirror stages → ingress_rate,
//     then the frame is sent.
//
// Between the two lists the forwarding core (not a stage) learns uplink
// MACs, looks up the destination, floods broadcast and multicast, refuses
// unknown unicast, and skips copies of IP packets for another VM's
// address. Every frame the core hands to a destination runs the whole
// second list: ARP and other non-IP frames, and packets of established
// flows, pass the firewall stage and go on to the inspection stages (where
// the IPS plugs in, SetInspectStages), the mirror stages
// (SetMirrorStages) and the receiver's ingress rate limit.
//
// A stage returns a Verdict: Pass goes on to the next stage; Drop stops the
// frame and is counted and logged by the pipeline at the port the reason
// belongs to (the sender when it is a VM, else the receiver), unless the
// stage already did (Accounted: the firewall's rule verdicts and the rate
// limits keep their own counting and log lines); Consumed stops the frame
// without a drop (the stage took it). A mirror stage sees every frame that
// reaches it and cannot change its fate: its verdict is ignored.
//
// Stages run on the sending port's reader goroutine, one frame at a time
// per port, but the same stage runs concurrently for different ports: a
// stage with state guards it. The hot path allocates nothing: the
// FrameContext belongs to the sending port and is reused for each frame
// and destination, and Verdict is a value.

// Action is what a stage decided about a frame.
type Action uint8

const (
	// Pass hands the frame to the next stage.
	Pass Action = iota
	// Drop discards the frame for Verdict.Reason.
	Drop
	// Consumed stops the frame without a drop: the stage took it.
	Consumed
)

// Verdict is a stage's decision. The zero Verdict passes.
type Verdict struct {
	Action Action
	// Reason is why a frame was dropped (a Drop's reason is never OK).
	Reason packet.Reason
	// Accounted says the stage counted and logged its drop itself.
	Accounted bool
}

// Stage is one step of the pipeline.
type Stage interface {
	// Name identifies the stage in logs and status ("firewall").
	Name() string
	// Process decides about c.Frame going from c.In to c.Out (nil in the
	// per-frame list). It must not keep c or anything it points to past
	// its return: the context and the frame's bytes are reused for the
	// next frame. It must not block.
	Process(c *FrameContext) Verdict
}

// FrameContext is what the stages know about one frame. It is owned by the
// sending port's reader and valid only during a Process call.
type FrameContext struct {
	// Raw is the frame's bytes as read (not to be modified).
	Raw []byte
	// Frame is the parsed frame: empty before the parse stage, then the
	// parse result (IPValid false for ARP and other non-IP frames).
	Frame *packet.Frame
	// In is the port the frame came from, Out the port it is going to
	// (nil in the per-frame list).
	In, Out *Port
	// Now is the switch clock (monotonic nanoseconds) for this frame.
	Now int64
	// Flow is the tracked flow the packet belongs to, as the firewall
	// stage found or created it, and Dir its direction; nil for untracked
	// packets (non-IP, broadcast, ICMP errors, stateless verdicts).
	Flow *conntrack.Flow
	Dir  conntrack.Dir
	// Seq numbers the frames the sending port read (from 1, per port):
	// every destination of one frame sees the same In and Seq, so a stage
	// can tell a flooded frame's copies from a new frame (the mirror
	// copies a broadcast once, not once per destination).
	Seq uint64

	scratch []byte // for frames the switch answers with (reject)
}

// Name of the stages in their order (Stage.Name).
const (
	StageEgressRate   = "egress_rate"
	StageParse        = "parse"
	StagePortSecurity = "port_security"
	StageFirewall     = "firewall"
	StageIngressRate  = "ingress_rate"
)

// stageEntry is a stage in a list; observe marks a mirror stage.
type stageEntry struct {
	Stage
	observe bool
}

// stageList is a switch's pipeline; it is replaced whole and never changed
// once published.
type stageList struct {
	perFrame []stageEntry
	perDest  []stageEntry
}

// buildStages builds the switch's list with the given plug-in stages.
func (s *Switch) buildStages(inspect, mirror []Stage) *stageList {
	l := &stageList{perFrame: []stageEntry{
		{Stage: egressRateStage{s}},
		{Stage: parseStage{}},
	}}
	if len(s.quarantine) > 0 { // quarantine.go
		l.perFrame = append(l.perFrame, stageEntry{Stage: &quarantineStage{s: s, src: true}})
		l.perDest = append(l.perDest, stageEntry{Stage: &quarantineStage{s: s}})
	}
	l.perFrame = append(l.perFrame, stageEntry{Stage: portSecurityStage{}})
	l.perDest = append(l.perDest, stageEntry{Stage: firewallStage{s}})
	for _, st := range inspect {
		l.perDest = append(l.perDest, stageEntry{Stage: st})
	}
	for _, st := range mirror {
		l.perDest = append(l.perDest, stageEntry{Stage: st, observe: true})
	}
	l.perDest = append(l.perDest, stageEntry{Stage: ingressRateStage{s}})
	return l
}

// SetInspectStages installs the stages that inspect every frame the
// firewall admitted, before mirroring and delivery (the IPS), in order,
// replacing the previous ones. Frames already in the pipeline finish with
// the old list.
func (s *Switch) SetInspectStages(st ...Stage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inspect = append([]Stage(nil), st...)
	s.stages.Store(s.buildStages(s.inspect, s.mirror))
}

// SetMirrorStages installs the stages that see every frame the firewall
// and the inspection stages admitted, just before the receiver's ingress
// rate limit, and cannot change its fate.
func (s *Switch) SetMirrorStages(st ...Stage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mirror = append([]Stage(nil), st...)
	s.stages.Store(s.buildStages(s.inspect, s.mirror))
}

// StageNames lists the pipeline's stages in order: the per-frame list,
// then the per-destination list.
func (s *Switch) StageNames() (perFrame, perDest []string) {
	l := s.stages.Load()
	for _, e := range l.perFrame {
		perFrame = append(perFrame, e.Name())
	}
	for _, e := range l.perDest {
		perDest = append(perDest, e.Name())
	}
	return perFrame, perDest
}

// run runs list on c and reports whether the frame goes on. Unaccounted
// drops are counted and logged here: in the per-frame list at the sender,
// in the per-destination list as dropAt does.
func (s *Switch) run(list []stageEntry, c *FrameContext) bool {
	for i := range list {
		e := &list[i]
		v := e.Process(c)
		if v.Action == Pass || e.observe {
			continue
		}
		if v.Action == Drop && !v.Accounted {
			if c.Out == nil {
				s.drop(c.In, v.Reason, c.Frame, c.In, nil, c.Now)
			} else {
				s.dropAt(c.In, c.Out, v.Reason, c.Frame, c.Now)
			}
		}
		return false
	}
	return true
}

// egressRateStage is the VM's egress limit, before any work on the frame
// (see portrate.go). It counts and logs its own drops.
type egressRateStage struct{ s *Switch }

func (egressRateStage) Name() string { return StageEgressRate }

func (st egressRateStage) Process(c *FrameContext) Verdict {
	if g := c.In.rates.egress.Load(); g != nil && st.s.egressLimited(c.In, g, c.Now, len(c.Raw)) {
		return Verdict{Action: Drop, Reason: packet.RateEgress, Accounted: true}
	}
	return Verdict{}
}

// parseStage parses the frame into c.Frame.
type parseStage struct{}

func (parseStage) Name() string { return StageParse }

func (parseStage) Process(c *FrameContext) Verdict {
	if r := packet.Parse(c.Raw, c.Frame); r != packet.OK {
		return Verdict{Action: Drop, Reason: r}
	}
	return Verdict{}
}

// portSecurityStage is a VM port's anti-spoofing (its MAC and addresses,
// rogue DHCP and router advertisements) and storm control of broadcast and
// multicast. Uplinks pass.
type portSecurityStage struct{}

func (portSecurityStage) Name() string { return StagePortSecurity }

func (portSecurityStage) Process(c *FrameContext) Verdict {
	src := c.In
	if src.Kind != VMPort {
		return Verdict{}
	}
	if src.monitor.Load() {
		return Verdict{Action: Drop, Reason: packet.MirrorPortTx} // a tap only receives (mirrorport.go)
	}
	if r := src.binding.CheckEgress(c.Frame); r != packet.OK {
		return Verdict{Action: Drop, Reason: r}
	}
	if c.Frame.Dst.IsMulticast() && !src.storm.Allow(c.Now) {
		return Verdict{Action: Drop, Reason: packet.StormControl}
	}
	return Verdict{}
}

// firewallStage is connection tracking and the security-group rules
// between c.In and c.Out (filter). Non-IP frames, and frames between two
// non-VM ports, pass. It counts and logs its own drops.
type firewallStage struct{ s *Switch }

func (firewallStage) Name() string { return StageFirewall }

func (st firewallStage) Process(c *FrameContext) Verdict {
	if !c.Frame.IPValid || (c.In.Kind != VMPort && c.Out.Kind != VMPort) {
		return Verdict{} // ARP, or uplink-to-uplink (never happens: one uplink per network)
	}
	if r := st.s.filter(c); r != packet.OK {
		return Verdict{Action: Drop, Reason: r, Accounted: true}
	}
	return Verdict{}
}

// ingressRateStage is the receiver's ingress limit, last before the frame
// is sent (see portrate.go). It counts and logs its own drops.
type ingressRateStage struct{ s *Switch }

func (ingressRateStage) Name() string { return StageIngressRate }

func (st ingressRateStage) Process(c *FrameContext) Verdict {
	if g := c.Out.rates.ingress.Load(); g != nil && st.s.ingressLimited(c.In, c.Out, g, c.Frame, c.Now, len(c.Raw)) {
		return Verdict{Action: Drop, Reason: packet.RateIngress, Accounted: true}
	}
	return Verdict{}
}
