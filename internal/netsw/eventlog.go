package netsw

import (
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// FirewallEvent is one line of the firewall log (JSON lines): a verdict of
// the rules on a new flow, or (Reason set) frames a NIC's rate limit
// refused.
type FirewallEvent struct {
	Time    time.Time `json:"time"`
	Action  string    `json:"action"` // allow (new flow), drop, reject, revoked
	Group   string    `json:"group,omitempty"`
	Rule    string    `json:"rule,omitempty"` // empty: the network's default policy decided
	Network string    `json:"network"`
	InPort  string    `json:"in_port"`
	OutPort string    `json:"out_port"`        // empty for rate_egress (the frame was not looked at)
	Proto   uint8     `json:"proto,omitempty"` // 0 and addresses empty: the frame was not parsed, or not IP
	Src     string    `json:"src,omitempty"`
	Dst     string    `json:"dst,omitempty"`
	SrcPort uint16    `json:"src_port,omitempty"`
	DstPort uint16    `json:"dst_port,omitempty"`
	// Rate-limit lines: the drop reason (rate_egress, rate_ingress), the
	// direction as the VM sees it, the limited VM, and the frames refused
	// since the previous line of this port and direction (at most one line
	// a second each).
	Reason    string `json:"reason,omitempty"`
	Direction string `json:"direction,omitempty"`
	VM        string `json:"vm,omitempty"`
	Frames    uint64 `json:"frames,omitempty"`
	// Suppressed counts events dropped by the rate limit since the last line.
	Suppressed uint64 `json:"suppressed,omitempty"`
}

// eventLog writes firewall events as JSON lines, at most rate per second
// (burst the same), so a flood of denied packets cannot flood the disk.
type eventLog struct {
	mu         sync.Mutex
	w          io.Writer
	rate       float64
	tokens     float64
	last       time.Time
	suppressed uint64
}

// NewEventLog returns a rate-limited firewall log writing to w.
func NewEventLog(w io.Writer, perSecond int) *eventLog {
	return &eventLog{w: w, rate: float64(perSecond), tokens: float64(perSecond)}
}

func (l *eventLog) write(ev FirewallEvent) {
	if sup, ok := l.admit(ev.Time); ok {
		l.emit(ev, sup)
	}
}

// admit takes a token for an event at now; it returns how many events were
// suppressed since the last admitted one. Cheap, so callers can ask before
// building an event.
func (l *eventLog) admit(now time.Time) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens += now.Sub(l.last).Seconds() * l.rate
		if l.tokens > l.rate {
			l.tokens = l.rate
		}
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return 0, false
	}
	l.tokens--
	sup := l.suppressed
	l.suppressed = 0
	return sup, true
}

func (l *eventLog) emit(ev FirewallEvent, suppressed uint64) {
	ev.Suppressed = suppressed
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Write(append(b, '\n'))
}

func (s *Switch) event(src, dst *Port, f *packet.Frame, action, group, rule string) {
	if s.fwlog == nil {
		return
	}
	now := time.Now().UTC()
	sup, ok := s.fwlog.admit(now)
	if !ok {
		return // rate-limited: do not even format the event
	}
	t := f.Tuple
	s.fwlog.emit(FirewallEvent{Time: now, Action: action, Group: group, Rule: rule,
		Network: src.net.cfg.Name, InPort: src.Name, OutPort: dst.Name, Proto: t.Proto,
		Src: t.Src.String(), Dst: t.Dst.String(), SrcPort: t.SrcPort, DstPort: t.DstPort}, sup)
}
