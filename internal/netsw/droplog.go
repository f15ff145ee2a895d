package netsw

import (
	"sync/atomic"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// Drop evidence. Every dropped frame is counted at a port by reason
// (PortStatus.Drops, metrics). Drops that no firewall event already
// describes (parse errors, spoofing, rogue DHCP and RA, storm control,
// unknown unicast, conntrack refusals, foreign ICMP errors) are also
// logged in the firewall log: at most one line per port and reason each
// dropLogInterval, carrying the reason and the frames dropped since the
// previous line of that port and reason (the one that made the line due
// included), so a flood costs one line a second per reason and port, and
// the global log limit still applies on top. Rule verdicts (fw_drop,
// fw_reject, fw_default_deny, fw_revoked) are logged per new flow by
// event, and NIC rate limits by rateEvent, as before.

// dropLogInterval is the least time between two lines of one port and
// reason.
const dropLogInterval = int64(time.Second)

// dropLog is one port's log state for one reason. It is updated lock-free
// by every goroutine that drops at the port.
type dropLog struct {
	last    atomic.Int64  // clock reading of the last line; 0: none yet
	pending atomic.Uint64 // drops since the last line
}

// drop counts a frame dropped for reason r at port p and logs it when a
// line is due. f is the frame (parsed as far as it went; nil: not parsed),
// in and out the ports it came from and was going to (out nil: not known).
func (s *Switch) drop(p *Port, r packet.Reason, f *packet.Frame, in, out *Port, now int64) {
	p.drop(r)
	if s.fwlog == nil {
		return
	}
	l := &p.stats.dropLogs[r]
	l.pending.Add(1)
	last := l.last.Load()
	if last != 0 && now-last < dropLogInterval {
		return
	}
	if !l.last.CompareAndSwap(last, now) {
		return // another goroutine writes this line
	}
	s.dropEvent(p, r, f, in, out, l.pending.Swap(0))
}

// dropAt counts and logs a drop on the sender's port when it is a VM port
// (its egress policy decided, or conntrack refused its packet), else on
// the receiver's.
func (s *Switch) dropAt(src, dst *Port, r packet.Reason, f *packet.Frame, now int64) {
	p := src
	if src.Kind != VMPort {
		p = dst
	}
	s.drop(p, r, f, src, dst, now)
}

func (s *Switch) dropEvent(p *Port, r packet.Reason, f *packet.Frame, in, out *Port, frames uint64) {
	now := time.Now().UTC()
	sup, ok := s.fwlog.admit(now)
	if !ok {
		return
	}
	ev := FirewallEvent{Time: now, Action: "drop", Reason: r.String(), VM: p.VM, Frames: frames,
		Network: p.net.cfg.Name, InPort: in.Name}
	if out != nil {
		ev.OutPort = out.Name
	}
	if f != nil && f.IPValid {
		t := f.Tuple
		ev.Proto, ev.Src, ev.Dst, ev.SrcPort, ev.DstPort = t.Proto, t.Src.String(), t.Dst.String(), t.SrcPort, t.DstPort
	}
	s.fwlog.emit(ev, sup)
}
