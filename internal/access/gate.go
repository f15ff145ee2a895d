package access

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/bulwark-project/bulwark/internal/auth"
)

// config is the part of the service's state that decides privileges:
// users (their groups and enabled state), custom roles and permission
// entries. Changes build a new config and pass it through applyLocked.
type config struct {
	users map[string]User
	roles map[string]*auth.Role
	perms map[string]Permission
}

// currentLocked returns shallow copies of the maps, for a change to edit.
func (s *Service) currentLocked() config {
	return config{users: maps.Clone(s.users), roles: maps.Clone(s.roles), perms: maps.Clone(s.perms)}
}

// applyLocked is the one gate every change to users, groups, roles and
// permission entries passes: it compiles next, and unless the actor is the
// local root it applies auth.CheckChange over what the change can touch,
// so that nobody can give any user (themselves included) a privilege on an
// object that they do not hold there. Then it persists (persist may be nil)
// and installs next. Nothing changes when any step fails.
func (s *Service) applyLocked(ctx context.Context, actor string, next config, persist func(context.Context) error) error {
	after, err := s.compileLocked(next.users, next.roles, next.perms)
	if err != nil {
		return err
	}
	if actor != RootUser {
		before := s.policy.Load()
		if err := auth.CheckChange(before, after, actor, changeScope(s.currentLocked(), next, before, after)); err != nil {
			return err
		}
	}
	if persist != nil {
		if err := persist(ctx); err != nil {
			return err
		}
	}
	s.users, s.roles, s.perms = next.users, next.roles, next.perms
	s.installLocked(after)
	return nil
}

// actForLocked is the gate for acting for another user: issuing them a
// token, setting their password, disabling, regrouping or deleting them.
// The actor needs User.Manage on the user's own path and at least every
// privilege the user holds, everywhere (auth.CheckActFor).
func (s *Service) actForLocked(actor, target string) error {
	if actor == RootUser || actor == target {
		return nil
	}
	if !s.Allowed(actor, string(auth.UserManage), "/users/"+target) {
		return fmt.Errorf("%w: %s lacks %s on /users/%s", ErrForbidden, actor, auth.UserManage, target)
	}
	return auth.CheckActFor(s.policy.Load(), actor, target)
}

// changeScope works out, from the difference between two configurations,
// which users' privileges can differ and under which paths: a user whose
// groups or enabled state changed, anywhere; the subject of an added,
// removed or changed entry (every member, for a group), under its path;
// the subjects of every entry naming a role whose privileges changed,
// under those entries' paths.
func changeScope(cur, next config, before, after *auth.Policy) auth.Change {
	var c auth.Change
	subject := func(p Permission) {
		if p.User != "" {
			c.Users = append(c.Users, p.User)
			return
		}
		c.Users = append(c.Users, before.Members(p.Group)...)
		c.Users = append(c.Users, after.Members(p.Group)...)
	}
	for name := range union(cur.users, next.users) {
		a, aok := cur.users[name]
		b, bok := next.users[name]
		if aok != bok || a.Disabled != b.Disabled || !sameSet(a.Groups, b.Groups) {
			c.Users = append(c.Users, name)
			c.Roots = append(c.Roots, "/")
		}
	}
	for id := range union(cur.perms, next.perms) {
		a, aok := cur.perms[id]
		b, bok := next.perms[id]
		if aok && bok && a == b {
			continue
		}
		for _, p := range []Permission{a, b} {
			if p.Path != "" {
				subject(p)
				c.Roots = append(c.Roots, p.Path)
			}
		}
	}
	for name := range union(cur.roles, next.roles) {
		a, aok := cur.roles[name]
		b, bok := next.roles[name]
		if aok && bok && a.Privs == b.Privs {
			continue
		}
		for _, perms := range []map[string]Permission{cur.perms, next.perms} {
			for _, p := range perms {
				if p.Role == name {
					subject(p)
					c.Roots = append(c.Roots, p.Path)
				}
			}
		}
	}
	return c
}

func union[V any](a, b map[string]V) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// NarrowScope returns the scope a token issued by a caller whose own token
// has callerScope may carry: a scoped caller can issue only tokens within
// its scope (asking for none would mean the user's full rights), so a token
// can never mint a stronger one. A nil callerScope (full rights) passes
// requested through.
func NarrowScope(callerScope, requested []string) ([]string, error) {
	if callerScope == nil {
		return requested, nil
	}
	if requested == nil {
		return nil, fmt.Errorf("%w: your token is limited to %v; a token it issues must name a scope within that", ErrForbidden, callerScope)
	}
	for _, p := range requested {
		if !slices.Contains(callerScope, p) {
			return nil, fmt.Errorf("%w: %s is outside your token's scope %v", ErrForbidden, p, callerScope)
		}
	}
	return requested, nil
}
