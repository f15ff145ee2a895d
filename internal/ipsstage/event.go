package ipsstage

import (
	"encoding/json"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/bulwark-project/bulwark/internal/ips/engine"
	"github.com/bulwark-project/bulwark/internal/netsw"
)

// Event is one alert: an alert rule's match, or a drop or reject rule's in
// alert or block mode. It is built on the data path when an alert is
// raised and handed to Options.Sink by the stage's delivery goroutine.
type Event struct {
	// Alert is the engine's alert (its Frame is nil: the frame is not
	// kept).
	Alert engine.Alert
	// Blocked: the packet was dropped for this alert's rule (block mode);
	// EVE alert.action "blocked", else "allowed".
	Blocked bool
	// InIface is the receiving port ("VM/nicN" or "uplink/NET").
	InIface string
	Bulwark Attribution
}

// Attribution is what Bulwark adds to an EVE alert: where the packet went
// through the switch. The ports are those of the packet's frame; an alert
// raised for another flow (an idle flow's HTTP transaction inspected when
// it was evicted) names only the network.
type Attribution struct {
	Network    string   `json:"network"`
	SrcVM      string   `json:"src_vm,omitempty"`
	SrcPort    string   `json:"src_port,omitempty"`
	DestVM     string   `json:"dest_vm,omitempty"`
	DestPort   string   `json:"dest_port,omitempty"`
	SrcGroups  []string `json:"src_groups,omitempty"`
	DestGroups []string `json:"dest_groups,omitempty"`
	Mode       Mode     `json:"mode"`
}

// Record writers: Record reads only their options, so they are shared.
var (
	eveAllowed = engine.NewEVEWriter(io.Discard, engine.EVEOptions{Ether: true})
	eveBlocked = engine.NewEVEWriter(io.Discard, engine.EVEOptions{Ether: true, Inline: true})
)

// EVE returns the event as one line of Suricata's EVE JSON (no trailing
// newline): the alert record as engine.EVEWriter writes it (timestamp,
// flow_id, event_type, addresses, proto, app_proto, alert{action, gid,
// signature_id, rev, signature, category, severity, metadata}, ether),
// plus "in_iface" and the "bulwark" object.
func (e *Event) EVE() []byte {
	w := eveAllowed
	if e.Blocked {
		w = eveBlocked
	}
	b, err := json.Marshal(w.Record(&e.Alert, 0))
	if err != nil || len(b) < 2 || b[len(b)-1] != '}' {
		return nil // never: the record is plain strings and numbers
	}
	extra, err := json.Marshal(struct {
		InIface string      `json:"in_iface"`
		Bulwark Attribution `json:"bulwark"`
	}{e.InIface, e.Bulwark})
	if err != nil {
		return nil
	}
	// Both are JSON objects: splice the second's members into the first.
	b = append(b[:len(b)-1], ',')
	return append(b, extra[1:]...)
}

// newEvent builds the event of alert a of a frame going from c.In to
// c.Out; own says a belongs to the frame's flow.
func newEvent(a *engine.Alert, c *netsw.FrameContext, network string, mode Mode, blocked, own bool) *Event {
	ev := &Event{Alert: *a, Blocked: blocked, InIface: c.Out.Name,
		Bulwark: Attribution{Network: network, Mode: mode}}
	ev.Alert.Frame = nil
	if own {
		b := &ev.Bulwark
		b.SrcVM, b.SrcPort, b.SrcGroups = c.In.VM, c.In.Name, c.In.Groups()
		b.DestVM, b.DestPort, b.DestGroups = c.Out.VM, c.Out.Name, c.Out.Groups()
	}
	return ev
}

// queueLen bounds the events waiting for the sink.
const queueLen = 4096

// enqueue hands ev to the delivery goroutine without blocking; a full
// queue drops it (counted, logged at most once a second).
func (s *Stage) enqueue(ev *Event) {
	select {
	case s.queue <- ev:
	default:
		s.queueDropped.Add(1)
		s.logLimited(&s.queueLog, "ips: event queue full, events dropped", "queue", queueLen,
			"dropped_total", s.queueDropped.Load())
	}
}

// deliver runs the sink until Close.
func (s *Stage) deliver() {
	defer close(s.done)
	for {
		select {
		case ev := <-s.queue:
			s.opts.Sink(ev)
		case <-s.stop:
			return
		}
	}
}

// limiter lets one log line through per interval and counts the others.
type limiter struct {
	last       atomic.Int64 // unix nanoseconds of the last line
	suppressed atomic.Uint64
}

// logInterval is the least time between two lines of one kind.
const logInterval = time.Second

// logLimited writes msg at warning level unless a line of its kind was
// written less than logInterval ago; the line carries how many were
// suppressed since the previous one.
func (s *Stage) logLimited(l *limiter, msg string, args ...any) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(logInterval) || !l.last.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return
	}
	s.log.Warn(msg, append(args, slog.Uint64("suppressed", l.suppressed.Swap(0)))...)
}
