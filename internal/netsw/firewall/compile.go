package firewall

import (
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Policy is a compiled, immutable configuration. It is safe for concurrent
// use; only its hit counters change, atomically.
type Policy struct {
	gen      uint64
	ports    map[int32]*portPolicy
	rules    []*hitRef // every rule, in configuration order, for RuleHits
	counters *Counters
}

// portPolicy is what one port's traffic is checked against.
type portPolicy struct {
	egress, ingress *ruleSet // shared by ports with the same network and groups
	def             Defaults
	members         []*addrSet // per group of the port: its members on the port's network
}

// Protocol classes a rule list is split by, so that Evaluate only scans
// rules that can match the packet's protocol.
const (
	classOther = iota
	classTCP
	classUDP
	classICMP
	numClasses
)

// ruleSet holds one direction's rules of a list of groups, in evaluation
// order, once per protocol class; Any rules appear in every class.
type ruleSet struct {
	byClass [numClasses][]*crule
}

// crule is a compiled rule.
type crule struct {
	group, id        string
	action           Action
	portMin, portMax uint16 // portMax 0: any port
	icmpType         int16  // -1: any type (always -1 for non-ICMP rules)
	remote           remote
	hits             *atomic.Uint64
}

// remote is a compiled rule remote: nothing (any address), one prefix, or a
// set of addresses and prefixes.
type remote struct {
	prefix netip.Prefix // valid: match this prefix
	set    *addrSet     // non-nil: match membership
}

func (r *remote) contains(a netip.Addr) bool {
	switch {
	case r.prefix.IsValid():
		return r.prefix.Contains(a)
	case r.set != nil:
		return r.set.contains(a)
	}
	return true
}

// addrSet is a set of addresses with O(1) lookup plus a list of wider
// prefixes scanned linearly.
type addrSet struct {
	hosts    map[netip.Addr]struct{}
	prefixes []netip.Prefix
}

func (s *addrSet) contains(a netip.Addr) bool {
	if _, ok := s.hosts[a]; ok {
		return true
	}
	for _, p := range s.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *addrSet) add(p netip.Prefix) {
	if p.IsSingleIP() {
		s.hosts[p.Addr()] = struct{}{}
	} else {
		s.prefixes = append(s.prefixes, p)
	}
}

var emptySet = &addrSet{}

type hitRef struct {
	group, id string
	hits      *atomic.Uint64
}

// Counters holds per-rule hit counters keyed by (group, rule id), so that
// they survive recompiles, and the final counts of rules that left the
// configuration. It is safe for concurrent use.
type Counters struct {
	mu sync.Mutex
	m  map[ruleKey]*atomic.Uint64
	// removed are the counts of rules removed from the configuration, in
	// the order they left, at most MaxRemovedHits (the oldest go first). A
	// rule added again later with the same id counts afresh.
	removed []RuleHit
}

// MaxRemovedHits bounds the removed rules whose counts are kept.
const MaxRemovedHits = 4096

type ruleKey struct{ group, id string }

// NewCounters returns an empty set of counters.
func NewCounters() *Counters { return &Counters{m: map[ruleKey]*atomic.Uint64{}} }

// adopt returns the counters for the given rules, reusing existing ones by
// key, and moves rules no longer present to the removed list with their
// count at this moment. Policies compiled earlier keep their counters;
// later increments to removed ones (packets judged by the old policy while
// the new one is installed) are lost.
func (c *Counters) adopt(keys []ruleKey) []*atomic.Uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*atomic.Uint64, len(keys))
	next := make(map[ruleKey]*atomic.Uint64, len(keys))
	for i, k := range keys {
		h := c.m[k]
		if h == nil {
			h = new(atomic.Uint64)
		}
		out[i], next[k] = h, h
	}
	var gone []RuleHit
	for k, h := range c.m {
		if next[k] == nil {
			gone = append(gone, RuleHit{Group: k.group, RuleID: k.id, Hits: h.Load(), Removed: true})
		}
	}
	sort.Slice(gone, func(i, j int) bool {
		if gone[i].Group != gone[j].Group {
			return gone[i].Group < gone[j].Group
		}
		return gone[i].RuleID < gone[j].RuleID
	})
	c.removed = append(c.removed, gone...)
	if over := len(c.removed) - MaxRemovedHits; over > 0 {
		c.removed = append(c.removed[:0:0], c.removed[over:]...)
	}
	c.m = next
	return out
}

// RuleHit is one rule's hit count.
type RuleHit struct {
	Group  string `json:"group"`
	RuleID string `json:"rule_id"`
	Hits   uint64 `json:"hits"`
	// Removed marks a rule no longer in the configuration; Hits is its
	// count when it was removed.
	Removed bool `json:"removed,omitempty"`
}

// Gen returns the generation the policy was compiled with.
func (p *Policy) Gen() uint64 { return p.gen }

// Counters returns the counters the policy increments.
func (p *Policy) Counters() *Counters { return p.counters }

// RuleHits returns every rule's hit count, groups and rules in
// configuration order, then the removed rules' final counts (Removed set)
// in the order they were removed.
func (p *Policy) RuleHits() []RuleHit {
	out := make([]RuleHit, len(p.rules))
	for i, r := range p.rules {
		out[i] = RuleHit{Group: r.group, RuleID: r.id, Hits: r.hits.Load()}
	}
	p.counters.mu.Lock()
	defer p.counters.mu.Unlock()
	return append(out, p.counters.removed...)
}

// Compile validates c and compiles it into a Policy of generation gen. Hit
// counters come from ctr (by group and rule id), so passing the previous
// policy's counters carries the counts over; a nil ctr starts fresh ones. On
// error nothing changes, ctr included.
func Compile(c Config, gen uint64, ctr *Counters) (*Policy, error) {
	if err := Validate(c); err != nil {
		return nil, err
	}
	if ctr == nil {
		ctr = NewCounters()
	}
	var keys []ruleKey
	for _, g := range c.Groups {
		for _, r := range g.Rules {
			keys = append(keys, ruleKey{g.Name, r.ID})
		}
	}
	hits := ctr.adopt(keys)
	p := &Policy{gen: gen, ports: make(map[int32]*portPolicy, len(c.Ports)), counters: ctr,
		rules: make([]*hitRef, len(keys))}
	for i, k := range keys {
		p.rules[i] = &hitRef{group: k.group, id: k.id, hits: hits[i]}
	}
	b := builder{c: &c, groups: map[string]*Group{}, hits: map[ruleKey]*atomic.Uint64{},
		ipsets: map[string]*addrSet{}, members: map[string]map[string]*addrSet{}, sets: map[string]*[2]*ruleSet{}}
	for i := range c.Groups {
		b.groups[c.Groups[i].Name] = &c.Groups[i]
	}
	for i, k := range keys {
		b.hits[k] = hits[i]
	}
	for _, s := range c.IPSets {
		set := &addrSet{hosts: map[netip.Addr]struct{}{}}
		for _, cidr := range s.CIDRs {
			set.add(netip.MustParsePrefix(cidr)) // validated
		}
		b.ipsets[s.Name] = set
	}
	for _, port := range c.Ports {
		for _, g := range port.Groups {
			set := b.memberSet(port.Network, g)
			for _, a := range port.IPs {
				set.hosts[a.Unmap()] = struct{}{}
			}
		}
	}
	for _, port := range c.Ports {
		pp := &portPolicy{def: c.NetworkDefaults[port.Network]}
		if pp.def.Egress == 0 {
			pp.def.Egress = Allow
		}
		sets := b.ruleSets(port)
		pp.egress, pp.ingress = sets[0], sets[1]
		for _, g := range port.Groups {
			pp.members = append(pp.members, b.memberSet(port.Network, g))
		}
		p.ports[port.ID] = pp
	}
	return p, nil
}

// builder holds Compile's intermediate indexes.
type builder struct {
	c       *Config
	groups  map[string]*Group
	hits    map[ruleKey]*atomic.Uint64
	ipsets  map[string]*addrSet
	members map[string]map[string]*addrSet // network → group → member addresses
	sets    map[string]*[2]*ruleSet        // network + groups → egress, ingress
}

func (b *builder) memberSet(network, group string) *addrSet {
	byGroup := b.members[network]
	if byGroup == nil {
		byGroup = map[string]*addrSet{}
		b.members[network] = byGroup
	}
	set := byGroup[group]
	if set == nil {
		set = &addrSet{hosts: map[netip.Addr]struct{}{}}
		byGroup[group] = set
	}
	return set
}

// ruleSets compiles (once per network and group list) a port's egress and
// ingress rules.
func (b *builder) ruleSets(port Port) *[2]*ruleSet {
	key := port.Network + "\x00" + strings.Join(port.Groups, "\x00")
	if s := b.sets[key]; s != nil {
		return s
	}
	s := &[2]*ruleSet{{}, {}}
	for _, gname := range port.Groups {
		g := b.groups[gname]
		for i := range g.Rules {
			r := &g.Rules[i]
			cr := b.rule(port.Network, g.Name, r)
			rs := s[0]
			if r.Direction == Ingress {
				rs = s[1]
			}
			for class := range numClasses {
				if r.Proto == Any || classOf(r.Proto) == class {
					rs.byClass[class] = append(rs.byClass[class], cr)
				}
			}
		}
	}
	b.sets[key] = s
	return s
}

func (b *builder) rule(network, group string, r *Rule) *crule {
	cr := &crule{group: group, id: r.ID, action: r.Action, portMin: r.PortMin, portMax: r.PortMax,
		icmpType: -1, hits: b.hits[ruleKey{group, r.ID}]}
	if r.Proto == ICMP {
		cr.icmpType = int16(r.ICMPType)
	}
	switch {
	case r.RemoteCIDR != "":
		cr.remote.prefix = netip.MustParsePrefix(r.RemoteCIDR) // validated
	case r.RemoteIPSet != "":
		cr.remote.set = b.ipsets[r.RemoteIPSet]
	case r.RemoteGroup != "":
		cr.remote.set = emptySet
		if set := b.members[network][r.RemoteGroup]; set != nil {
			cr.remote.set = set
		}
	}
	return cr
}

func classOf(p Proto) int {
	switch p {
	case TCP:
		return classTCP
	case UDP:
		return classUDP
	case ICMP:
		return classICMP
	}
	return classOther
}
