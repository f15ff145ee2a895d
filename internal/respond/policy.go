// Package respond decides what Bulwark does when introspection finds
// something in a guest: a response policy maps finding kinds to actions
// (record, isolate, dump, pause, stop), per VM, per resource pool or for
// every VM. It is pure: it parses and validates policies and answers
// "which actions, and which rule said so"; the daemon (internal/daemon,
// respond.go) runs the actions.
//
// Precedence: the VM's own rules, then its resource pool's, then the pool's
// ancestors' (nearest first), then the global rules. The first scope that
// has a rule for the finding's kind, or a "*" rule, decides; within a
// scope an exact kind beats "*". A VM rule {"*": ["record"]} therefore
// exempts that VM from every pool and global rule. No rule at all means
// record only (an event, as without a policy).
package respond

import (
	"regexp"
	"slices"
)

// Action is one thing the daemon does about a finding.
type Action string

// The actions, in the order the daemon runs them (Merge). The network is
// cut first (it costs nothing and stops exfiltration at once), the memory
// image is taken while the guest still exists, and the guest is frozen or
// powered off last.
const (
	// Record only raises the event (what happens without a policy).
	Record Action = "record"
	// Isolate moves every switch port of the VM into the quarantined
	// state: each frame to or from it is dropped, until released.
	Isolate Action = "isolate"
	// Dump writes a LiME image of guest memory under the state directory
	// (root only) and puts its SHA-256 in the response event.
	Dump Action = "dump"
	// Pause freezes the guest's vCPUs.
	Pause Action = "pause"
	// Stop powers the guest off at once (the hypervisor is killed; a
	// compromised guest is not asked to shut down).
	Stop Action = "stop"
)

// execOrder lists the actions in execution order.
var execOrder = []Action{Isolate, Dump, Pause, Stop}

// Valid reports whether a is a known action.
func (a Action) Valid() bool { return a == Record || slices.Contains(execOrder, a) }

// Any is the kind of a rule that matches every finding kind.
const Any = "*"

// kindRE is what a finding kind looks like (introspection's kinds are
// lower-case identifiers such as syscall_hook); new kinds need no change
// here.
var kindRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// ValidKind reports whether k can name a finding kind in a rule ("*"
// included).
func ValidKind(k string) bool { return k == Any || kindRE.MatchString(k) }

// Rules maps finding kinds (or "*") to the actions taken for them.
type Rules map[string][]Action

// Policy is a whole response policy. The zero Policy records only.
type Policy struct {
	Global Rules            `json:"global,omitempty"`
	Pools  map[string]Rules `json:"pools,omitempty"`
	VMs    map[string]Rules `json:"vms,omitempty"`
}

// Decision is what the policy says about one finding.
type Decision struct {
	// Actions to take, in execution order; [record] when nothing more.
	Actions []Action `json:"actions"`
	// Rule names the rule that decided, as a field path of the policy
	// ("vms.web.syscall_hook", "pools.prod.*", "global.hidden_module"),
	// or "default" when none matched.
	Rule string `json:"rule"`
}

// RuleDefault is Decision.Rule when no rule matched.
const RuleDefault = "default"

// Decide returns the actions for a finding of kind on VM vm, whose
// resource pools are pools, nearest first (its own pool, then that pool's
// parent, ...; the root pool is the global scope, not listed). p may be
// nil.
func Decide(p *Policy, vm string, pools []string, kind string) Decision {
	if p != nil {
		if d, ok := p.VMs[vm].decide("vms."+vm, kind); ok {
			return d
		}
		for _, g := range pools {
			if d, ok := p.Pools[g].decide("pools."+g, kind); ok {
				return d
			}
		}
		if d, ok := p.Global.decide("global", kind); ok {
			return d
		}
	}
	return Decision{Actions: []Action{Record}, Rule: RuleDefault}
}

func (r Rules) decide(scope, kind string) (Decision, bool) {
	for _, k := range []string{kind, Any} {
		if as, ok := r[k]; ok {
			return Decision{Actions: Merge(as), Rule: scope + "." + k}, true
		}
	}
	return Decision{}, false
}

// Merge returns the union of action lists in execution order, each action
// once; Record only when it is all there is (every response is recorded
// anyway). The daemon merges the decisions of every finding one scan
// raised, so a scan that finds three things takes one memory image.
func Merge(lists ...[]Action) []Action {
	var out []Action
	for _, a := range execOrder {
		for _, l := range lists {
			if slices.Contains(l, a) {
				out = append(out, a)
				break
			}
		}
	}
	if len(out) == 0 {
		out = []Action{Record}
	}
	return out
}
