package ipsstage

import (
	"slices"
	"sync/atomic"
	"time"
)

// netCounters are one network's counters; they outlive policy changes.
type netCounters struct {
	packets, bytes                atomic.Uint64 // inspected
	alerts                        atomic.Uint64
	blockedPackets, blockedFlows  atomic.Uint64
	flowBlockedDrops, streamDrops atomic.Uint64
	overloadPass, overloadDrop    atomic.Uint64
	uninspected                   atomic.Uint64 // no rules loaded
}

// NetStats is one network's counters.
type NetStats struct {
	// InspectedPackets and InspectedBytes count the IP packets the engine
	// looked at (each frame once, however many ports it was flooded to).
	InspectedPackets uint64 `json:"inspected_packets"`
	InspectedBytes   uint64 `json:"inspected_bytes"`
	// Alerts counts alerts raised (every mode), before the event queue.
	Alerts uint64 `json:"alerts"`
	// BlockedPackets counts packets dropped in block mode, whatever the
	// reason (rule, blocked flow, stream); BlockedFlows the flows a drop
	// or reject rule blocked; FlowBlockedDrops and StreamDrops the
	// packets dropped as ips_flow_blocked and ips_stream.
	BlockedPackets   uint64 `json:"blocked_packets"`
	BlockedFlows     uint64 `json:"blocked_flows"`
	FlowBlockedDrops uint64 `json:"flow_blocked_drops"`
	StreamDrops      uint64 `json:"stream_drops"`
	// OverloadPass and OverloadDrop count packets not inspected because
	// their shard was overloaded, passed (fail-open) or dropped
	// (fail-closed, ips_overload).
	OverloadPass uint64 `json:"overload_pass"`
	OverloadDrop uint64 `json:"overload_drop"`
	// Uninspected counts packets passed because no rules were loaded.
	Uninspected uint64 `json:"uninspected"`
}

func (c *netCounters) snapshot() NetStats {
	return NetStats{
		InspectedPackets: c.packets.Load(), InspectedBytes: c.bytes.Load(), Alerts: c.alerts.Load(),
		BlockedPackets: c.blockedPackets.Load(), BlockedFlows: c.blockedFlows.Load(),
		FlowBlockedDrops: c.flowBlockedDrops.Load(), StreamDrops: c.streamDrops.Load(),
		OverloadPass: c.overloadPass.Load(), OverloadDrop: c.overloadDrop.Load(), Uninspected: c.uninspected.Load(),
	}
}

func (n *NetStats) add(o NetStats) {
	n.InspectedPackets += o.InspectedPackets
	n.InspectedBytes += o.InspectedBytes
	n.Alerts += o.Alerts
	n.BlockedPackets += o.BlockedPackets
	n.BlockedFlows += o.BlockedFlows
	n.FlowBlockedDrops += o.FlowBlockedDrops
	n.StreamDrops += o.StreamDrops
	n.OverloadPass += o.OverloadPass
	n.OverloadDrop += o.OverloadDrop
	n.Uninspected += o.Uninspected
}

// Stats is the stage's counters: totals over every network, and each
// network's (networks ever inspected since the stage started).
type Stats struct {
	// Rules is the number of rules of the loaded engine (0: none loaded,
	// everything passes uninspected).
	Rules  int `json:"rules"`
	Shards int `json:"shards"`
	NetStats
	// QueueDropped counts events lost because the delivery queue was
	// full (the alerts themselves are counted in Alerts).
	QueueDropped uint64              `json:"queue_dropped"`
	Networks     map[string]NetStats `json:"networks,omitempty"`
}

// RuleHit is how often one rule alerted since its rule set was loaded.
type RuleHit struct {
	SID     uint32    `json:"sid"`
	Rev     uint32    `json:"rev"`
	Msg     string    `json:"msg"`
	Hits    uint64    `json:"hits"`
	LastHit time.Time `json:"last_hit"`
}

// Stats returns the counters.
func (s *Stage) Stats() Stats {
	st := Stats{Shards: len(s.shards), QueueDropped: s.queueDropped.Load(), Networks: map[string]NetStats{}}
	if es := s.eng.Load(); es != nil {
		st.Rules = len(es.e.Rules())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, c := range s.counters {
		ns := c.snapshot()
		st.Networks[name] = ns
		st.NetStats.add(ns)
	}
	return st
}

// RuleHits returns the rules of the loaded rule set that alerted, most
// hits first (then by sid).
func (s *Stage) RuleHits() []RuleHit {
	es := s.eng.Load()
	if es == nil {
		return nil
	}
	var out []RuleHit
	rs := es.e.Rules()
	for i := range es.hits {
		n := es.hits[i].Load()
		if n == 0 {
			continue
		}
		r := rs[i]
		out = append(out, RuleHit{SID: r.SID, Rev: r.Rev, Msg: r.Msg, Hits: n, LastHit: time.Unix(0, es.last[i].Load()).UTC()})
	}
	slices.SortFunc(out, func(a, b RuleHit) int {
		if a.Hits != b.Hits {
			if a.Hits > b.Hits {
				return -1
			}
			return 1
		}
		return int(int64(a.SID) - int64(b.SID))
	})
	return out
}
