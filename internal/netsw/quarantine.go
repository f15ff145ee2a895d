package netsw

import (
	"sort"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// Quarantine: the network side of a response to an introspection finding
// (internal/respond, "isolate"). A quarantined VM's ports stay attached,
// but every frame to or from them is dropped with reason quarantined,
// counted at the quarantined port (whichever side it is on) and logged
// like the other drops (droplog.go: a line per port and reason a second).
// Quarantine is by VM name, so it holds for ports attached later (a
// restart of the VM) until it is lifted.
//
// It is a flag on each of the VM's ports, checked at three places:
//   - first thing after a frame from the port is parsed, before port
//     security, the firewall and conntrack: nothing the VM sends creates
//     state, learns a MAC, draws a reject or reaches a stage;
//   - first thing for each destination, before the firewall: nothing
//     reaches it through the pipeline, flooded or not;
//   - in the port's send, for frames the switch makes outside the
//     pipeline (a reject's answer, a mirror copy to a quarantined
//     monitoring VM, a service chain's second leg): counted there (the
//     frame is not parsed, so not logged).
// The two stages are in the pipeline only while some VM is quarantined,
// so without one the pipeline is what it was.

// quarantineStage drops frames from (src) or to (!src) quarantined ports.
type quarantineStage struct {
	s   *Switch
	src bool
}

// StageQuarantine is the quarantine stages' name.
const StageQuarantine = "quarantine"

func (*quarantineStage) Name() string { return StageQuarantine }

func (q *quarantineStage) Process(c *FrameContext) Verdict {
	p := c.Out
	if q.src {
		p = c.In
	}
	if p == nil || !p.quarantined.Load() {
		return Verdict{}
	}
	q.s.drop(p, packet.Quarantined, c.Frame, c.In, c.Out, c.Now)
	return Verdict{Action: Drop, Reason: packet.Quarantined, Accounted: true}
}

// SetPortQuarantine puts VM vm's ports (now and later) into the
// quarantined state, or takes them out of it, and logs the change with
// the number of ports it affects now. It reports whether the state
// changed.
func (s *Switch) SetPortQuarantine(vm string, on bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.quarantine[vm] == on {
		return false
	}
	if on {
		if s.quarantine == nil {
			s.quarantine = map[string]bool{}
		}
		s.quarantine[vm] = true
	} else {
		delete(s.quarantine, vm)
	}
	ports := 0
	for _, p := range s.byID {
		if p.Kind == VMPort && p.VM == vm {
			p.quarantined.Store(on)
			ports++
		}
	}
	// The stages come with the first quarantine and go with the last.
	if len(s.quarantine) == 1 && on || len(s.quarantine) == 0 {
		s.stages.Store(s.buildStages(s.inspect, s.mirror))
	}
	if on {
		s.log.Warn("switch: VM quarantined: every frame to or from its ports is dropped (reason quarantined)", "vm", vm, "ports", ports)
	} else {
		s.log.Info("switch: VM quarantine lifted", "vm", vm, "ports", ports)
	}
	return true
}

// Quarantined lists the quarantined VMs, sorted.
func (s *Switch) Quarantined() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for vm := range s.quarantine {
		out = append(out, vm)
	}
	sort.Strings(out)
	return out
}
