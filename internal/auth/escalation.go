package auth

import (
	"fmt"
	"sort"
	"strings"
)

// This file holds Bulwark's one no-escalation rule. Every change to users,
// groups, roles and permission entries is described as a pair of policies,
// before and after, and the users and subtrees the change can touch
// (a Change). CheckChange then requires, for every such user and every
// object, that whatever the user holds after the change and did not hold
// before is already held by the actor on that object. Grants, revocations,
// role edits, group membership, enabling a user: all are the same question,
// answered in one place, so a new kind of change cannot forget it.
//
// Acting for another user (issuing them a token, setting their password,
// disabling or deleting them) is the other route to power: whoever does it
// can act as that user. CheckActFor requires the target's privileges to be
// a subset of the actor's on every object, so nobody below Administrator can
// act for an administrator.

// Change names who and what a change to the access configuration can touch:
// Users whose privileges may differ afterwards, and Roots, the paths whose
// subtrees hold every object where they may differ ("/" for a change to a
// user's groups or enabled state).
type Change struct {
	Users []string
	Roots []string
}

// regionsUnder returns every region of the subtrees at roots, in both
// policies: each root itself and below it, and each indexed descendant with
// what lies under it. Together they cover every object of the subtrees (an
// object without entries resolves like the "below" region of its nearest
// indexed ancestor).
func regionsUnder(roots []string, pols ...*Policy) []region {
	seen := map[region]bool{}
	var out []region
	add := func(r region) {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	for _, root := range roots {
		add(region{path: root})
		add(region{path: root, below: true})
		prefix := root + "/"
		if root == "/" {
			prefix = "/"
		}
		for _, p := range pols {
			for i := sort.SearchStrings(p.paths, prefix); i < len(p.paths); i++ {
				d := p.paths[i]
				if !strings.HasPrefix(d, prefix) {
					break
				}
				add(region{path: d})
				add(region{path: d, below: true})
			}
			for _, obj := range p.inheritedUnder(root) {
				add(region{path: obj})
			}
		}
	}
	return out
}

// held returns what user holds on region r: nothing when disabled, unless
// ignoreDisabled (a disabled user may be enabled again, so what a change
// gives them counts as given).
func (p *Policy) held(user string, r region, ignoreDisabled bool) PrivSet {
	if !ignoreDisabled && p.disabled[user] {
		return PrivSet{}
	}
	privs, _, _ := p.resolveAll(user, r.path, r.below, nil)
	return privs
}

// CheckChange returns nil if actor may move the access configuration from
// before to after, or an error wrapping ErrForbidden that names the user,
// the privileges and the object the change would give beyond the actor's
// own. The actor's own privileges are taken from before, so a change can
// never be justified by what it grants. A disabled actor may change nothing
// that gives anything.
func CheckChange(before, after *Policy, actor string, c Change) error {
	roots := normalRoots(c.Roots)
	users := dedupe(c.Users)
	for _, reg := range regionsUnder(roots, before, after) {
		var have PrivSet
		haveKnown := false
		for _, u := range users {
			gained := after.held(u, reg, true).Minus(before.held(u, reg, false))
			if gained.IsEmpty() {
				continue
			}
			if !haveKnown {
				have, haveKnown = before.held(actor, reg, false), true
			}
			if missing := gained.Minus(have); !missing.IsEmpty() {
				return fmt.Errorf("%w: this change would give user %s %s on %s, which %s does not hold there",
					ErrForbidden, safe(u), missing, reg, safe(actor))
			}
		}
	}
	return nil
}

// CheckActFor returns nil if actor may act for target (issue a token for
// them, set their password, change or remove their account): target's
// privileges, counted even while disabled, must be a subset of the actor's
// on every object.
func CheckActFor(p *Policy, actor, target string) error {
	if actor == target {
		return nil
	}
	for _, reg := range regionsUnder([]string{"/"}, p) {
		theirs := p.held(target, reg, true)
		if theirs.IsEmpty() {
			continue
		}
		if missing := theirs.Minus(p.held(actor, reg, false)); !missing.IsEmpty() {
			return fmt.Errorf("%w: user %s holds %s on %s, which %s does not; only someone holding at least a user's privileges may act for them",
				ErrForbidden, safe(target), missing, reg, safe(actor))
		}
	}
	return nil
}

// Members returns the users of group g, sorted.
func (p *Policy) Members(g string) []string { return append([]string(nil), p.members[g]...) }

// normalRoots drops roots inside other roots.
func normalRoots(roots []string) []string {
	rs := dedupe(roots)
	sort.Strings(rs)
	var out []string
	for _, r := range rs {
		if r == "/" {
			return []string{"/"}
		}
		covered := false
		for _, o := range out {
			if strings.HasPrefix(r, o+"/") {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, r)
		}
	}
	return out
}

func dedupe(xs []string) []string {
	seen := make(map[string]bool, len(xs))
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		if x != "" && !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
