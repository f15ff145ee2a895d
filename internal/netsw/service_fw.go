package netsw

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/bulwark-project/bulwark/internal/netsw/firewall"
	"github.com/bulwark-project/bulwark/internal/store"
)

// MaxRulesPerGroup bounds one group; the whole policy is bounded by it
// times the number of groups a port may join.
const MaxRulesPerGroup = 4096

// applyGroup checks a candidate group against the whole configuration,
// persists it with persist, then installs the new policy atomically.
func (s *Service) applyGroup(ctx context.Context, g firewall.Group, persist func([]byte) error) error {
	if len(g.Rules) > MaxRulesPerGroup {
		return &FieldError{Field: "rules", Msg: fmt.Sprintf("%d rules, at most %d", len(g.Rules), MaxRulesPerGroup)}
	}
	groups := s.groupList(&g)
	ipsets := s.ipsetList(nil)
	if err := s.sw.CheckFirewall(groups, ipsets); err != nil {
		return &FieldError{Field: "rules", Msg: err.Error()}
	}
	blob, err := json.Marshal(g)
	if err != nil {
		return err
	}
	if err := persist(blob); err != nil {
		return err
	}
	s.groups[g.Name] = g
	return s.sw.SetFirewall(groups, ipsets)
}

// CreateGroup adds a security group (its rules may be empty).
func (s *Service) CreateGroup(ctx context.Context, g firewall.Group) (firewall.Group, error) {
	if err := ValidName("name", g.Name); err != nil {
		return g, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[g.Name]; ok {
		return g, fmt.Errorf("security group %q: %w", g.Name, store.ErrExists)
	}
	assignRuleIDs(&g)
	return g, s.applyGroup(ctx, g, func(b []byte) error { return s.st.CreateObject(ctx, kindGroup, g.Name, b) })
}

// Groups lists security groups.
func (s *Service) Groups() []firewall.Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groupList(nil)
}

// Group returns one security group.
func (s *Service) Group(name string) (firewall.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[name]
	if !ok {
		return g, fmt.Errorf("security group %q: %w", name, store.ErrNotFound)
	}
	return g, nil
}

// AddRule inserts a rule at position (0-based; -1 appends).
func (s *Service) AddRule(ctx context.Context, group string, r firewall.Rule, position int) (firewall.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[group]
	if !ok {
		return g, fmt.Errorf("security group %q: %w", group, store.ErrNotFound)
	}
	rules := append([]firewall.Rule(nil), g.Rules...)
	if position < 0 || position > len(rules) {
		position = len(rules)
	}
	rules = append(rules[:position], append([]firewall.Rule{r}, rules[position:]...)...)
	g.Rules = rules
	assignRuleIDs(&g)
	return g, s.applyGroup(ctx, g, func(b []byte) error { return s.st.UpdateObject(ctx, kindGroup, group, b) })
}

// RemoveRule deletes a rule by id.
func (s *Service) RemoveRule(ctx context.Context, group, id string) (firewall.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[group]
	if !ok {
		return g, fmt.Errorf("security group %q: %w", group, store.ErrNotFound)
	}
	var rules []firewall.Rule
	for _, r := range g.Rules {
		if r.ID != id {
			rules = append(rules, r)
		}
	}
	if len(rules) == len(g.Rules) {
		return g, fmt.Errorf("rule %q of security group %q: %w", id, group, store.ErrNotFound)
	}
	g.Rules = rules
	return g, s.applyGroup(ctx, g, func(b []byte) error { return s.st.UpdateObject(ctx, kindGroup, group, b) })
}

// DeleteGroup removes a group no NIC and no rule refers to.
func (s *Service) DeleteGroup(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[name]; !ok {
		return fmt.Errorf("security group %q: %w", name, store.ErrNotFound)
	}
	vms, err := s.st.ListVMs(ctx)
	if err != nil {
		return err
	}
	for _, v := range vms {
		for _, nic := range v.Spec.NICs {
			for _, g := range nic.Groups {
				if g == name {
					return fmt.Errorf("security group %q is used by vm %q: %w", name, v.Spec.Name, ErrInUse)
				}
			}
		}
	}
	for _, g := range s.groups {
		for _, r := range g.Rules {
			if r.RemoteGroup == name && g.Name != name {
				return fmt.Errorf("security group %q is named by rule %s of group %q: %w", name, r.ID, g.Name, ErrInUse)
			}
		}
	}
	old := s.groups[name]
	delete(s.groups, name)
	if err := s.sw.SetFirewall(s.groupList(nil), s.ipsetList(nil)); err != nil {
		s.groups[name] = old
		return err
	}
	return s.st.DeleteObject(ctx, kindGroup, name)
}

// CreateIPSet adds a named set of CIDRs usable as a rule's remote.
func (s *Service) CreateIPSet(ctx context.Context, x firewall.IPSet) (firewall.IPSet, error) {
	if err := ValidName("name", x.Name); err != nil {
		return x, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ipsets[x.Name]; ok {
		return x, fmt.Errorf("ip set %q: %w", x.Name, store.ErrExists)
	}
	groups, ipsets := s.groupList(nil), s.ipsetList(&x)
	if err := s.sw.CheckFirewall(groups, ipsets); err != nil {
		return x, &FieldError{Field: "cidrs", Msg: err.Error()}
	}
	blob, _ := json.Marshal(x)
	if err := s.st.CreateObject(ctx, kindIPSet, x.Name, blob); err != nil {
		return x, err
	}
	s.ipsets[x.Name] = x
	return x, s.sw.SetFirewall(groups, ipsets)
}

// IPSets lists IP sets.
func (s *Service) IPSets() []firewall.IPSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ipsetList(nil)
}

// DeleteIPSet removes an IP set no rule refers to.
func (s *Service) DeleteIPSet(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ipsets[name]; !ok {
		return fmt.Errorf("ip set %q: %w", name, store.ErrNotFound)
	}
	for _, g := range s.groups {
		for _, r := range g.Rules {
			if r.RemoteIPSet == name {
				return fmt.Errorf("ip set %q is named by rule %s of group %q: %w", name, r.ID, g.Name, ErrInUse)
			}
		}
	}
	if err := s.st.DeleteObject(ctx, kindIPSet, name); err != nil {
		return err
	}
	delete(s.ipsets, name)
	return s.sw.SetFirewall(s.groupList(nil), s.ipsetList(nil))
}

// assignRuleIDs gives rules without an id the next free "rN".
func assignRuleIDs(g *firewall.Group) {
	used := map[string]bool{}
	for _, r := range g.Rules {
		used[r.ID] = true
	}
	n := 1
	for i := range g.Rules {
		if g.Rules[i].ID != "" {
			continue
		}
		for used["r"+strconv.Itoa(n)] {
			n++
		}
		g.Rules[i].ID = "r" + strconv.Itoa(n)
		used[g.Rules[i].ID] = true
	}
}
