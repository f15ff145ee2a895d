package access

import (
	"fmt"
	"maps"
	"slices"

	"github.com/bulwark-project/bulwark/internal/auth"
)

// SetInherit replaces the extra parents of objects (auth.Policy.WithInherit):
// which resource-pool paths each VM inherits grants from. Moving a VM into a
// pool gives the pool's users power over it, so the change passes the
// no-escalation gate: whatever any user gains on an object whose parents
// change must already be the actor's there. The local root passes.
func (s *Service) SetInherit(actor string, m map[string][]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	after, err := s.checkInheritLocked(actor, m)
	if err != nil {
		return err
	}
	s.inherit = maps.Clone(m)
	s.installLocked(after)
	return nil
}

// CheckInherit is SetInherit's gate without the change: nil if actor may
// make m the extra parents.
func (s *Service) CheckInherit(actor string, m map[string][]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.checkInheritLocked(actor, m)
	return err
}

// checkInheritLocked returns the policy m would make current, or why actor
// may not make it.
func (s *Service) checkInheritLocked(actor string, m map[string][]string) (*auth.Policy, error) {
	before := s.policy.Load()
	after, err := before.WithInherit(m)
	if err != nil || actor == RootUser {
		return after, err
	}
	var changed []string
	for obj := range unionKeys(s.inherit, m) {
		if !slices.Equal(s.inherit[obj], m[obj]) {
			changed = append(changed, obj)
		}
	}
	if len(changed) == 0 {
		return after, nil
	}
	users := slices.Collect(maps.Keys(s.users))
	if err := auth.CheckChange(before, after, actor, auth.Change{Users: users, Roots: changed}); err != nil {
		return nil, fmt.Errorf("%w (resource-pool membership passes on the pool's grants)", err)
	}
	return after, nil
}

// Inherit returns a copy of the current extra parents.
func (s *Service) Inherit() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.inherit)
}

func unionKeys(a, b map[string][]string) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
