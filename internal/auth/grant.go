package auth

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Errors returned by CanGrant and CanRevoke besides the validation errors
// (ErrInvalidEntry, ErrUnknownRole, ErrInvalidPath).
var (
	// ErrForbidden: the actor may not make this change (HTTP 403).
	ErrForbidden = errors.New("forbidden")
	// ErrNoSuchEntry: CanRevoke was asked about an entry the policy lacks.
	ErrNoSuchEntry = errors.New("no such permission entry")
)

// region is a set of objects on which every user's privileges are the same:
// the object at path itself, or (below) every object under path that has no
// entries of its own. A subtree is covered by the regions of its indexed paths.
type region struct {
	path  string
	below bool
}

func (r region) String() string {
	if r.below {
		if r.path == "/" {
			return "objects below /"
		}
		return "objects below " + r.path
	}
	return r.path
}

// CanGrant returns nil if actor may add entry e, or an error saying why not.
// The rules, all of which must hold:
//
//   - e is valid: one subject, a known role, a canonical path;
//   - the actor is not disabled;
//   - e is not about the actor: its subject is neither the actor nor a group
//     the actor belongs to (nobody edits their own permissions);
//   - the actor holds Permission.Manage on e.Path;
//   - the actor holds every privilege of e.Role on e.Path and, when e
//     propagates, on every object below it. An ACL elsewhere may mask the
//     actor in part of the subtree (NoAccess on /vms/secret); a propagating
//     grant would reach there, so it is refused and the error names the path.
//
// Adding an entry can never give its subject more than e.Role's privileges at
// any object (a new user entry replaces group entries at its path; a new group
// entry is united with them), so these checks bound what the grant can give.
func (p *Policy) CanGrant(actor string, e Entry) error {
	r, err := p.validateEntry(e)
	if err != nil {
		return err
	}
	if err := p.checkManager(actor, e); err != nil {
		return err
	}
	if r.privs.IsEmpty() {
		return nil // NoAccess or an empty role: it can only take power away
	}
	for _, reg := range p.affected(e) {
		have, _, _ := p.resolveAll(actor, reg.path, reg.below, nil)
		if missing := r.privs.Minus(have); !missing.IsEmpty() {
			hint := ""
			if reg.path != e.Path || reg.below {
				hint = "; grant it without propagation or on narrower paths"
			}
			return fmt.Errorf("%w: %s lacks %s on %s, which role %s would grant%s",
				ErrForbidden, safe(actor), missing, reg, e.Role, hint)
		}
	}
	return nil
}

// CanRevoke returns nil if actor may remove entry e, or an error saying why
// not. The first four rules of CanGrant apply, and e must exist. Removing an
// entry can raise power too: taking away a NoAccess or a deeper, narrower
// entry re-exposes what is inherited from above. So CanRevoke works out, for
// the subject (every current member, for a group) and every object the entry
// reaches, what the removal would add, and requires the actor to hold it
// there. Users are considered whether or not they are disabled, as they may
// be enabled again. Future members of a group are not: adding a user to a
// group is a User.Manage decision that needs its own check.
//
// Cost is members × regions × depth lookups; it is meant for administrative
// changes, not request paths.
func (p *Policy) CanRevoke(actor string, e Entry) error {
	if _, err := p.validateEntry(e); err != nil {
		return err
	}
	n := p.byPath[e.Path]
	without, found := n.without(e, p.roles)
	if !found {
		return fmt.Errorf("%w: %s", ErrNoSuchEntry, e)
	}
	if err := p.checkManager(actor, e); err != nil {
		return err
	}
	users := []string{e.Subject.User}
	if e.Subject.Group != "" {
		users = p.members[e.Subject.Group]
	}
	ov := &override{path: e.Path, n: without}
	for _, reg := range p.affected(e) {
		have, _, _ := p.resolveAll(actor, reg.path, reg.below, nil)
		for _, u := range users {
			before, _, _ := p.resolveAll(u, reg.path, reg.below, nil)
			after, _, _ := p.resolveAll(u, reg.path, reg.below, ov)
			gained := after.Minus(before)
			if missing := gained.Minus(have); !missing.IsEmpty() {
				return fmt.Errorf("%w: removing it would give user %s %s on %s, which %s lacks there",
					ErrForbidden, u, missing, reg, safe(actor))
			}
		}
	}
	return nil
}

// checkManager applies the rules shared by CanGrant and CanRevoke about who
// the actor is.
func (p *Policy) checkManager(actor string, e Entry) error {
	actorName := safe(actor)
	if p.disabled[actor] {
		return fmt.Errorf("%w: user %s is disabled", ErrForbidden, actorName)
	}
	if e.Subject.User == actor {
		return fmt.Errorf("%w: %s cannot change their own permissions", ErrForbidden, actorName)
	}
	if g := e.Subject.Group; g != "" {
		groups := p.memberOf[actor]
		if i := sort.SearchStrings(groups, g); i < len(groups) && groups[i] == g {
			return fmt.Errorf("%w: %s cannot change the permissions of group %s, which they belong to", ErrForbidden, actorName, g)
		}
	}
	if have, _, _ := p.resolve(actor, e.Path, false, nil); !have.Has(PermissionManage) {
		return fmt.Errorf("%w: %s lacks %s on %s", ErrForbidden, actorName, PermissionManage, e.Path)
	}
	return nil
}

// affected lists the regions whose privileges entry e can change: its own
// path, and when it propagates, everything below: the objects without entries
// directly under e.Path and each indexed descendant with what lies under it.
func (p *Policy) affected(e Entry) []region {
	regs := []region{{path: e.Path}}
	if !e.Propagate {
		return regs
	}
	regs = append(regs, region{path: e.Path, below: true})
	prefix := e.Path + "/"
	if e.Path == "/" {
		prefix = "/"
	}
	// Descendants sort contiguously after the prefix.
	for i := sort.SearchStrings(p.paths, prefix); i < len(p.paths); i++ {
		d := p.paths[i]
		if d == e.Path {
			continue // "/" sorts first under the prefix "/"
		}
		if !strings.HasPrefix(d, prefix) {
			break
		}
		regs = append(regs, region{path: d}, region{path: d, below: true})
	}
	for _, obj := range p.inheritedUnder(e.Path) {
		regs = append(regs, region{path: obj})
	}
	return regs
}

// without returns a copy of n lacking one occurrence of e, and whether e was
// there. n may be nil.
func (n *node) without(e Entry, roles map[string]compiledRole) (*node, bool) {
	if n == nil {
		return nil, false
	}
	out, found := &node{}, false
	for _, x := range n.entries {
		if !found && x == e {
			found = true
			continue
		}
		out.add(x, roles[x.Role])
	}
	return out, found
}
