package netsw

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// FirewallEvent is one line of the firewall log (JSON lines): a verdict of
// the rules on a new flow (a drop, reject or revoked line names its
// reason), or frames dropped for any other reason at one port (Reason,
// VM and Frames set: see droplog.go, and portrate.go for rate limits).
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
	// Drop lines: the reason (a packet.Reason name: fw_drop, spoofed_ip,
	// rate_egress, ...). Per-port drop lines (all but rule verdicts) also
	// name the VM whose port counted them and the frames dropped since the
	// previous line of that port and reason (at most one line a second
	// each); rate-limit lines add the direction as the VM sees it.
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

func (s *Switch) event(src, dst *Port, f *packet.Frame, action string, r packet.Reason, group, rule string) {
	if s.fwlog == nil {
		return
	}
	now := time.Now().UTC()
	sup, ok := s.fwlog.admit(now)
	if !ok {
		return // rate-limited: do not even format the event
	}
	t := f.Tuple
	ev := FirewallEvent{Time: now, Action: action, Group: group, Rule: rule,
		Network: src.net.cfg.Name, InPort: src.Name, OutPort: dst.Name, Proto: t.Proto,
		Src: t.Src.String(), Dst: t.Dst.String(), SrcPort: t.SrcPort, DstPort: t.DstPort}
	if r != packet.OK {
		ev.Reason = r.String()
	}
	s.fwlog.emit(ev, sup)
}

// LogFilter selects firewall log lines. Zero fields select everything.
type LogFilter struct {
	Network string
	// VM matches lines whose VM is it, or whose in or out port is one of
	// its NICs ("VM/nicN").
	VM           string
	Since, Until time.Time // inclusive bounds on the line's time
}

// IsZero reports whether f selects every line.
func (f LogFilter) IsZero() bool {
	return f.Network == "" && f.VM == "" && f.Since.IsZero() && f.Until.IsZero()
}

// logLineMax bounds a line FilterLog decodes; the switch writes lines of a
// few hundred bytes, so a longer one is not the switch's and is skipped.
const logLineMax = 4096

// FilterLog returns the lines of data (JSON lines, a tail of the firewall
// log) that f selects, in order. Lines that do not decode, are longer than
// logLineMax, or (with a time bound) have no time, are left out when f is
// not zero; a zero f returns data unchanged. It reads only within data.
func FilterLog(data []byte, f LogFilter) []byte {
	if f.IsZero() {
		return data
	}
	var out bytes.Buffer
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		if len(line) > logLineMax || !f.match(line) {
			continue
		}
		out.Write(line)
	}
	return out.Bytes()
}

func (f LogFilter) match(line []byte) bool {
	var ev struct {
		Time    time.Time `json:"time"`
		Network string    `json:"network"`
		VM      string    `json:"vm"`
		InPort  string    `json:"in_port"`
		OutPort string    `json:"out_port"`
	}
	if json.Unmarshal(line, &ev) != nil {
		return false
	}
	if f.Network != "" && ev.Network != f.Network {
		return false
	}
	if f.VM != "" && ev.VM != f.VM && !portOfVM(ev.InPort, f.VM) && !portOfVM(ev.OutPort, f.VM) {
		return false
	}
	if (!f.Since.IsZero() || !f.Until.IsZero()) && ev.Time.IsZero() {
		return false
	}
	if !f.Since.IsZero() && ev.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && ev.Time.After(f.Until) {
		return false
	}
	return true
}

// portOfVM reports whether port name p ("VM/nicN") is a NIC of vm.
func portOfVM(p, vm string) bool {
	return strings.HasPrefix(p, vm+"/nic")
}
