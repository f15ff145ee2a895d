package netsw

import (
	"sort"
	"sync/atomic"

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
// The check is a stage at the head of the inspection stages, so it runs
// for every destination of every frame, after the firewall stage and
// before the IPS, mirroring and delivery; it is installed only while some
// VM is quarantined, so without one the pipeline is what it was. Frames
// the switch sends outside the pipeline are not covered: a firewall
// reject's RST or ICMP answer to the quarantined sender, mirror copies to
// a quarantined monitoring VM, and the second leg of a flow redirected
// through a quarantined service appliance.
//
// SetInspectStages replaces the inspection stages and with them this one:
// callers that install inspection stages do so before any quarantine
// (the daemon does, at start) and otherwise re-apply Quarantined().

// quarantineStage drops frames to or from the VMs in vms.
type quarantineStage struct {
	s   *Switch
	vms atomic.Pointer[map[string]bool] // replaced whole under Switch.mu
}

// StageQuarantine is the quarantine stage's name.
const StageQuarantine = "quarantine"

func (*quarantineStage) Name() string { return StageQuarantine }

func (q *quarantineStage) Process(c *FrameContext) Verdict {
	vms := *q.vms.Load()
	p := c.In
	if !vms[p.VM] || p.Kind != VMPort {
		if p = c.Out; !vms[p.VM] || p.Kind != VMPort {
			return Verdict{}
		}
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
	q := s.quarantineLocked()
	old := map[string]bool{}
	if q != nil {
		old = *q.vms.Load()
	}
	if old[vm] == on {
		return false
	}
	vms := make(map[string]bool, len(old)+1)
	for k := range old {
		vms[k] = true
	}
	if on {
		vms[vm] = true
	} else {
		delete(vms, vm)
	}
	switch {
	case q == nil: // the first quarantine: install the stage
		q = &quarantineStage{s: s}
		q.vms.Store(&vms)
		s.inspect = append([]Stage{q}, s.inspect...)
		s.stages.Store(s.buildStages(s.inspect, s.mirror))
	case len(vms) == 0: // the last one lifted: the pipeline as it was
		s.inspect = append([]Stage(nil), s.inspect[1:]...)
		s.stages.Store(s.buildStages(s.inspect, s.mirror))
	default:
		q.vms.Store(&vms)
	}
	ports := 0
	for _, p := range s.byID {
		if p.Kind == VMPort && p.VM == vm {
			ports++
		}
	}
	if on {
		s.log.Warn("switch: VM quarantined: every frame to or from its ports is dropped (reason quarantined)", "vm", vm, "ports", ports)
	} else {
		s.log.Info("switch: VM quarantine lifted", "vm", vm, "ports", ports)
	}
	return true
}

// quarantineLocked returns the installed quarantine stage (always first
// among the inspection stages), or nil.
func (s *Switch) quarantineLocked() *quarantineStage {
	if len(s.inspect) > 0 {
		if q, ok := s.inspect[0].(*quarantineStage); ok && q.s == s {
			return q
		}
	}
	return nil
}

// Quarantined lists the quarantined VMs, sorted.
func (s *Switch) Quarantined() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.quarantineLocked()
	if q == nil {
		return nil
	}
	var out []string
	for vm := range *q.vms.Load() {
		out = append(out, vm)
	}
	sort.Strings(out)
	return out
}
