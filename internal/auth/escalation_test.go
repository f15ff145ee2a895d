package auth

import (
	"errors"
	"strings"
	"testing"
)

// CheckChange: whatever a change gives any user must already be the actor's
// on that object.
func TestCheckChange(t *testing.T) {
	base := []Entry{
		u("mgr", RoleVMOperator, "/vms", prop),
		u("mgr", RoleNetworkAdmin, "/networks/n1", !prop),
		g("ops", RoleReadOnly, "/vms", prop),
		u("bob", RoleNoAccess, "/vms/secret", !prop),
		g("admins", RoleAdministrator, "/", prop),
	}
	groups := map[string][]string{"alice": {"ops"}, "root": {"admins"}}
	before := mustCompile(t, nil, base, groups, map[string]bool{"carol": true})
	with := func(extra []Entry, groups map[string][]string, disabled map[string]bool) *Policy {
		return mustCompile(t, nil, append(append([]Entry{}, base...), extra...), groups, disabled)
	}
	cases := []struct {
		name   string
		after  *Policy
		change Change
		bad    string // part of the error, "" for allowed
	}{
		{"grant of what the actor holds", with([]Entry{u("bob", RoleVMOperator, "/vms/a", !prop)}, groups, map[string]bool{"carol": true}),
			Change{Users: []string{"bob"}, Roots: []string{"/vms/a"}}, ""},
		{"grant beyond the actor", with([]Entry{u("bob", RoleAdministrator, "/vms/a", !prop)}, groups, map[string]bool{"carol": true}),
			Change{Users: []string{"bob"}, Roots: []string{"/vms/a"}}, "would give user bob"},
		{"grant on a path the actor holds nothing on", with([]Entry{u("bob", RoleReadOnly, "/networks/n2", !prop)}, groups, map[string]bool{"carol": true}),
			Change{Users: []string{"bob"}, Roots: []string{"/networks/n2"}}, "/networks/n2"},
		{"into the administrators' group", with(nil, map[string][]string{"alice": {"ops"}, "root": {"admins"}, "bob": {"admins"}}, map[string]bool{"carol": true}),
			Change{Users: []string{"bob"}, Roots: []string{"/"}}, "would give user bob"},
		{"lifting a NoAccess re-exposes what the actor holds", mustCompile(t, nil, base[:3], groups, map[string]bool{"carol": true}),
			Change{Users: []string{"bob"}, Roots: []string{"/vms/secret"}}, ""},
		{"enabling a user counts as giving them their entries", with([]Entry{u("carol", RoleAdministrator, "/", prop)}, groups, nil),
			Change{Users: []string{"carol"}, Roots: []string{"/"}}, "would give user carol"},
		{"a grant to a disabled user counts too", with([]Entry{u("carol", RoleAdministrator, "/vms", prop)}, groups, map[string]bool{"carol": true}),
			Change{Users: []string{"carol"}, Roots: []string{"/vms"}}, "would give user carol"},
		{"the actor cannot give themselves more", with([]Entry{u("mgr", RoleAdministrator, "/vms", prop)}, groups, map[string]bool{"carol": true}),
			Change{Users: []string{"mgr"}, Roots: []string{"/vms"}}, "would give user mgr"},
		{"taking power away is always allowed", with(nil, map[string][]string{"root": {"admins"}}, map[string]bool{"carol": true}),
			Change{Users: []string{"alice"}, Roots: []string{"/"}}, ""},
	}
	for _, c := range cases {
		err := CheckChange(before, c.after, "mgr", c.change)
		switch {
		case c.bad == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.bad != "" && (err == nil || !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), c.bad)):
			t.Errorf("%s: %v, want ErrForbidden naming %q", c.name, err, c.bad)
		}
	}
}

// CheckActFor: only someone holding at least everything the target holds,
// everywhere, may act for them.
func TestCheckActFor(t *testing.T) {
	p := mustCompile(t, nil, []Entry{
		u("mgr", RoleVMOperator, "/vms", prop), u("mgr", RoleReadOnly, "/networks", prop),
		u("small", RoleVMOperator, "/vms/a", !prop),
		u("wide", RoleReadOnly, "/", prop),
		u("dis", RoleAdministrator, "/", prop),
		g("admins", RoleAdministrator, "/", prop),
	}, map[string][]string{"boss": {"admins"}}, map[string]bool{"dis": true})
	for target, ok := range map[string]bool{"small": true, "mgr": true, "nobody": true, "wide": false, "boss": false, "dis": false} {
		err := CheckActFor(p, "mgr", target)
		if ok != (err == nil) {
			t.Errorf("mgr acting for %s: %v, want allowed=%t", target, err, ok)
		}
	}
}
