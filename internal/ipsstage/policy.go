package ipsstage

import (
	"fmt"
	"maps"
	"slices"

	"github.com/bulwark-project/bulwark/internal/netsw"
)

// Mode is what the IPS does with the traffic it inspects.
type Mode string

const (
	// ModeOff: not inspected.
	ModeOff Mode = "off"
	// ModeAlert: inspected and reported; nothing is dropped (drop and
	// reject matches are reported with alert.action "allowed", as
	// Suricata in IDS mode).
	ModeAlert Mode = "alert"
	// ModeBlock: drop and reject rules drop the packet before the
	// receiver gets it, and the rest of its flow.
	ModeBlock Mode = "block"
)

// rank orders modes by strictness (block > alert > off); 0 is not a mode.
func (m Mode) rank() int {
	switch m {
	case ModeOff:
		return 1
	case ModeAlert:
		return 2
	case ModeBlock:
		return 3
	}
	return 0
}

// Overload is what a network does with a packet the IPS has no time for.
type Overload string

const (
	// FailOpen passes it uninspected (counted overload_pass).
	FailOpen Overload = "fail-open"
	// FailClosed drops it (reason ips_overload, counted overload_drop).
	FailClosed Overload = "fail-closed"
)

// Policy says where inspection runs. Networks absent from the map are not
// inspected.
type Policy struct {
	Networks map[string]NetPolicy `json:"networks,omitempty"`
	// Groups overrides the mode for traffic to or from members of a
	// security group.
	Groups map[string]Mode `json:"groups,omitempty"`
}

// NetPolicy is one network's inspection.
type NetPolicy struct {
	Mode Mode `json:"mode"`
	// Overload defaults to fail-closed (the safe side: nothing passes
	// uninspected unless the operator chose so).
	Overload Overload `json:"overload,omitempty"`
}

// Validate checks every name and value; the error names the field.
func (p Policy) Validate() error {
	for _, name := range slices.Sorted(maps.Keys(p.Networks)) {
		np := p.Networks[name]
		field := fmt.Sprintf("networks[%q]", name)
		if err := netsw.ValidName(field, name); err != nil {
			return err
		}
		if np.Mode.rank() == 0 {
			return fmt.Errorf("%s.mode: %q is not one of off, alert, block", field, np.Mode)
		}
		switch np.Overload {
		case "", FailOpen, FailClosed:
		default:
			return fmt.Errorf("%s.overload: %q is not one of fail-open, fail-closed", field, np.Overload)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.Groups)) {
		field := fmt.Sprintf("groups[%q]", name)
		if err := netsw.ValidName(field, name); err != nil {
			return err
		}
		if m := p.Groups[name]; m.rank() == 0 {
			return fmt.Errorf("%s: %q is not one of off, alert, block", field, m)
		}
	}
	return nil
}

// netEntry is one inspected network as the data path sees it.
type netEntry struct {
	name     string
	mode     Mode
	failOpen bool
	c        *netCounters
}

// compiled is a validated Policy in the data path's form; replaced whole,
// never changed once published.
type compiled struct {
	nets   map[string]*netEntry
	groups map[string]Mode
}

// modeFor returns the mode of a packet from in to out on network ne: the
// strictest override of a group of either port, else the network's.
func (cp *compiled) modeFor(ne *netEntry, in, out *netsw.Port) Mode {
	if len(cp.groups) == 0 {
		return ne.mode
	}
	best := 0
	for _, p := range [2]*netsw.Port{in, out} {
		if p == nil {
			continue
		}
		for _, g := range p.Groups() {
			if m, ok := cp.groups[g]; ok && m.rank() > best {
				best = m.rank()
			}
		}
	}
	switch best {
	case 1:
		return ModeOff
	case 2:
		return ModeAlert
	case 3:
		return ModeBlock
	}
	return ne.mode
}
