package engine

import (
	"net/netip"
	"time"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

// flowbits is one flow's bits, one per flowbit name of the rule set;
// allocated on the first set.
type flowbits []uint64

func (b flowbits) has(id int) bool {
	w := id >> 6
	return w < len(b) && b[w]&(1<<(id&63)) != 0
}

// check evaluates a rule's isset/isnotset conditions.
func (b flowbits) check(ops []bitOp) bool {
	for _, op := range ops {
		switch op.cmd {
		case rules.FlowbitIsSet, rules.FlowbitIsNotSet:
			want := op.cmd == rules.FlowbitIsSet
			// "a|b": any name satisfies; "a&b": all must.
			ok := op.and
			for _, id := range op.ids {
				if op.and {
					ok = ok && b.has(id) == want
				} else if b.has(id) == want {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
	}
	return true
}

// apply runs a matched rule's set/unset/toggle operations; n is the number
// of flowbit names of the rule set.
func (b *flowbits) apply(ops []bitOp, n int) {
	for _, op := range ops {
		for _, id := range op.ids {
			switch op.cmd {
			case rules.FlowbitSet, rules.FlowbitToggle:
				if *b == nil {
					*b = make(flowbits, (n+63)/64)
				}
				if op.cmd == rules.FlowbitSet {
					(*b)[id>>6] |= 1 << (id & 63)
				} else {
					(*b)[id>>6] ^= 1 << (id & 63)
				}
			case rules.FlowbitUnset:
				if *b != nil {
					(*b)[id>>6] &^= 1 << (id & 63)
				}
			}
		}
	}
}

// thresholdKey identifies one threshold or detection_filter counter.
type thresholdKey struct {
	rule     int32
	src, dst netip.Addr
	flow     uint64
}

// thresholdEntry counts one key's matches in its current window.
type thresholdEntry struct {
	start  time.Time
	window time.Duration
	count  uint32
	// alerted: threshold type "both" already alerted in this window.
	alerted bool
	// ports holds the distinct ports seen for unique_on, at most
	// Count+1 (enough to decide "more than Count").
	ports []uint16
}

// maxUniquePorts bounds the ports one unique_on entry remembers.
const maxUniquePorts = 4096

// thresholds is the bounded table of threshold and detection_filter
// counters of a Detector.
type thresholds struct {
	m   map[thresholdKey]*thresholdEntry
	max int
	// full counts matches that found the table full with nothing
	// expired to reclaim; such a match is not counted and not alerted.
	full uint64
}

// allow counts a match of rule idx (threshold t) for packet p in flow f
// at time now and reports whether it alerts.
func (th *thresholds) allow(idx int32, t *rules.Threshold, p *Packet, flowID uint64, now time.Time) bool {
	k := thresholdKey{rule: idx}
	switch t.Track {
	case rules.TrackBySrc:
		k.src = p.Src
	case rules.TrackByDst:
		k.dst = p.Dst
	case rules.TrackByBoth:
		k.src, k.dst = p.Src, p.Dst
	case rules.TrackByFlow:
		k.flow = flowID
	}
	window := time.Duration(t.Seconds) * time.Second
	e := th.m[k]
	if e != nil && now.Sub(e.start) >= window {
		e.start, e.count, e.alerted, e.ports = now, 0, false, e.ports[:0]
	}
	if e == nil {
		if len(th.m) >= th.max && !th.reclaim(now) {
			th.full++
			return false
		}
		e = &thresholdEntry{start: now, window: window}
		th.m[k] = e
	}
	if t.UniqueOn != "" {
		port := p.SrcPort
		if t.UniqueOn == "dst_port" {
			port = p.DstPort
		}
		seen := false
		for _, q := range e.ports {
			if q == port {
				seen = true
				break
			}
		}
		if !seen && len(e.ports) <= int(min(t.Count, maxUniquePorts)) {
			e.ports = append(e.ports, port)
		}
		// Suricata: alert once the distinct values exceed the count,
		// and only on a packet bringing a new value.
		return !seen && uint32(len(e.ports)) > t.Count
	}
	e.count++
	switch t.Type {
	case rules.ThresholdLimit:
		return e.count <= t.Count
	case rules.ThresholdThreshold:
		if e.count >= t.Count {
			e.count = 0
			return true
		}
		return false
	case rules.ThresholdBoth:
		if e.count >= t.Count && !e.alerted {
			e.alerted = true
			return true
		}
		return false
	case rules.ThresholdDetectionFilter:
		return e.count > t.Count
	}
	return true
}

// reclaim drops the entries whose window has passed; it reports whether
// room was made. It runs only when the table is full and walks it once.
func (th *thresholds) reclaim(now time.Time) bool {
	n := len(th.m)
	for k, e := range th.m {
		if now.Sub(e.start) >= e.window {
			delete(th.m, k)
		}
	}
	return len(th.m) < n
}
