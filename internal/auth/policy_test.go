package auth

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

// u and g build entries for a user or a group; prop says whether they
// propagate.
func u(user, role, path string, prop bool) Entry {
	return Entry{Subject: Subject{User: user}, Role: role, Path: path, Propagate: prop}
}

func g(group, role, path string, prop bool) Entry {
	return Entry{Subject: Subject{Group: group}, Role: role, Path: path, Propagate: prop}
}

const (
	prop   = true
	noProp = false
)

func customRole(name string, privs ...Privilege) *Role {
	r := NewRole(name)
	for _, p := range privs {
		if err := r.Add(p); err != nil {
			panic(err)
		}
	}
	return r
}

func mustCompile(t testing.TB, roles []*Role, entries []Entry, groups map[string][]string, disabled map[string]bool) *Policy {
	t.Helper()
	p, err := Compile(roles, entries, groups, disabled)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolution(t *testing.T) {
	empty := customRole("Empty")
	deployer := customRole("Deployer", VMCreate, VMAudit)
	ops := map[string][]string{"alice": {"ops"}, "bob": {"ops", "net"}}
	tests := []struct {
		name     string
		roles    []*Role
		entries  []Entry
		groups   map[string][]string
		disabled map[string]bool
		user     string
		priv     Privilege
		path     string
		want     bool
		reason   Reason
		at       string // DecidedAt, checked when not empty
	}{
		{name: "no entries denies", user: "alice", priv: VMAudit, path: "/vms/web1", reason: ReasonNoEntry},
		{name: "admin on / propagates", entries: []Entry{u("alice", RoleAdministrator, "/", prop)},
			user: "alice", priv: VMDelete, path: "/vms/web1", want: true, at: "/"},
		{name: "propagate=false applies on its path", entries: []Entry{u("alice", RoleAdministrator, "/", noProp)},
			user: "alice", priv: VMDelete, path: "/", want: true},
		{name: "propagate=false not below", entries: []Entry{u("alice", RoleAdministrator, "/", noProp)},
			user: "alice", priv: VMDelete, path: "/vms", reason: ReasonNoEntry},
		{name: "deeper path overrides higher",
			entries: []Entry{u("alice", RoleAdministrator, "/", prop), u("alice", RoleReadOnly, "/vms", prop)},
			user:    "alice", priv: VMPowerOn, path: "/vms/web1", reason: ReasonNotInRole, at: "/vms"},
		{name: "deeper path grants what it holds",
			entries: []Entry{u("alice", RoleAdministrator, "/", prop), u("alice", RoleReadOnly, "/vms", prop)},
			user:    "alice", priv: VMAudit, path: "/vms/web1", want: true, at: "/vms"},
		{name: "deeper group entry overrides higher user entry",
			entries: []Entry{u("alice", RoleAdministrator, "/", prop), g("ops", RoleReadOnly, "/vms", prop)},
			groups:  ops, user: "alice", priv: VMDelete, path: "/vms/web1", reason: ReasonNotInRole, at: "/vms"},
		{name: "deeper non-propagating entry skipped below it",
			entries: []Entry{u("alice", RoleAdministrator, "/", prop), u("alice", RoleReadOnly, "/vms", noProp)},
			user:    "alice", priv: VMDelete, path: "/vms/web1", want: true, at: "/"},
		{name: "deeper non-propagating entry wins on its path",
			entries: []Entry{u("alice", RoleAdministrator, "/", prop), u("alice", RoleReadOnly, "/vms", noProp)},
			user:    "alice", priv: VMDelete, path: "/vms", reason: ReasonNotInRole, at: "/vms"},
		{name: "sibling object gets nothing", entries: []Entry{u("alice", RoleAdministrator, "/vms/web1", prop)},
			user: "alice", priv: VMAudit, path: "/vms/web2", reason: ReasonNoEntry},
		{name: "prefix that is not a whole segment", entries: []Entry{u("alice", RoleAdministrator, "/vms/web", prop)},
			user: "alice", priv: VMAudit, path: "/vms/web1", reason: ReasonNoEntry},
		{name: "parent object does not inherit from child", entries: []Entry{u("alice", RoleAdministrator, "/vms/web1", prop)},
			user: "alice", priv: VMAudit, path: "/vms", reason: ReasonNoEntry},
		{name: "collection entry reaches its objects", entries: []Entry{u("alice", RoleVMOperator, "/vms", prop)},
			user: "alice", priv: VMPowerOn, path: "/vms/web1", want: true},
		{name: "nested paths", entries: []Entry{u("alice", RoleVMOperator, "/pools/prod", prop)},
			user: "alice", priv: VMPowerOn, path: "/pools/prod/vms/web1", want: true, at: "/pools/prod"},

		{name: "user entry beats group entry at the same path",
			entries: []Entry{g("ops", RoleAdministrator, "/vms", prop), u("alice", RoleReadOnly, "/vms", prop)},
			groups:  ops, user: "alice", priv: VMDelete, path: "/vms/web1", reason: ReasonNotInRole},
		{name: "user entry beats group entry even on the exact path",
			entries: []Entry{g("ops", RoleAdministrator, "/vms", prop), u("alice", RoleReadOnly, "/vms", noProp)},
			groups:  ops, user: "alice", priv: VMDelete, path: "/vms", reason: ReasonNotInRole},
		{name: "non-propagating user entry does not hide group entry below",
			entries: []Entry{g("ops", RoleAdministrator, "/vms", prop), u("alice", RoleReadOnly, "/vms", noProp)},
			groups:  ops, user: "alice", priv: VMDelete, path: "/vms/web1", want: true},
		{name: "group entries at the same path unite (first group)",
			entries: []Entry{g("ops", RoleVMOperator, "/vms", prop), g("net", RoleNetworkAdmin, "/vms", prop)},
			groups:  ops, user: "bob", priv: VMPowerOn, path: "/vms/web1", want: true},
		{name: "group entries at the same path unite (second group)",
			entries: []Entry{g("ops", RoleVMOperator, "/vms", prop), g("net", RoleNetworkAdmin, "/vms", prop)},
			groups:  ops, user: "bob", priv: NetworkConfig, path: "/vms/web1", want: true},
		{name: "only the user's own groups count",
			entries: []Entry{g("ops", RoleVMOperator, "/vms", prop), g("net", RoleNetworkAdmin, "/vms", prop)},
			groups:  ops, user: "alice", priv: NetworkConfig, path: "/vms/web1", reason: ReasonNotInRole},
		{name: "user and group namespaces are separate (group named like the user)",
			entries: []Entry{g("alice", RoleAdministrator, "/", prop)},
			groups:  ops, user: "alice", priv: VMAudit, path: "/", reason: ReasonNoEntry},
		{name: "user and group namespaces are separate (user named like the group)",
			entries: []Entry{u("ops", RoleAdministrator, "/", prop)},
			groups:  ops, user: "alice", priv: VMAudit, path: "/", reason: ReasonNoEntry},
		{name: "user without memberships", entries: []Entry{g("ops", RoleAdministrator, "/", prop)},
			groups: ops, user: "carol", priv: VMAudit, path: "/", reason: ReasonNoEntry},

		{name: "NoAccess masks at its path",
			entries: []Entry{g("ops", RoleAdministrator, "/", prop), u("alice", RoleNoAccess, "/vms/secret", noProp)},
			groups:  ops, user: "alice", priv: VMAudit, path: "/vms/secret", reason: ReasonNoAccess, at: "/vms/secret"},
		{name: "propagating NoAccess masks below",
			entries: []Entry{u("alice", RoleAdministrator, "/", prop), u("alice", RoleNoAccess, "/pools/prod", prop)},
			user:    "alice", priv: VMAudit, path: "/pools/prod/vms/web1", reason: ReasonNoAccess},
		{name: "non-propagating NoAccess does not mask below",
			entries: []Entry{u("alice", RoleAdministrator, "/", prop), u("alice", RoleNoAccess, "/pools/prod", noProp)},
			user:    "alice", priv: VMAudit, path: "/pools/prod/vms/web1", want: true, at: "/"},
		{name: "NoAccess masks other roles of the same user at the same path",
			entries: []Entry{u("alice", RoleAdministrator, "/vms", prop), u("alice", RoleNoAccess, "/vms", prop)},
			user:    "alice", priv: VMAudit, path: "/vms/web1", reason: ReasonNoAccess},
		{name: "NoAccess of one group masks another group's role at the same path",
			entries: []Entry{g("ops", RoleAdministrator, "/vms", prop), g("net", RoleNoAccess, "/vms", prop)},
			groups:  ops, user: "bob", priv: VMAudit, path: "/vms/web1", reason: ReasonNoAccess},
		{name: "group NoAccess loses to a user grant at the same path",
			entries: []Entry{g("ops", RoleNoAccess, "/vms/secret", prop), u("alice", RoleVMOperator, "/vms/secret", prop)},
			groups:  ops, user: "alice", priv: VMPowerOn, path: "/vms/secret", want: true},
		{name: "group NoAccess still masks other members",
			entries: []Entry{g("ops", RoleAdministrator, "/", prop), g("ops", RoleNoAccess, "/vms/secret", prop),
				u("alice", RoleVMOperator, "/vms/secret", prop)},
			groups: ops, user: "bob", priv: VMPowerOn, path: "/vms/secret", reason: ReasonNoAccess},
		{name: "NoAccess on / yields to a deeper grant",
			entries: []Entry{g("ops", RoleNoAccess, "/", prop), u("alice", RoleVMOperator, "/vms/web1", prop)},
			groups:  ops, user: "alice", priv: VMPowerOn, path: "/vms/web1", want: true},
		{name: "NoAccess on / masks elsewhere",
			entries: []Entry{g("ops", RoleNoAccess, "/", prop), u("alice", RoleVMOperator, "/vms/web1", prop)},
			groups:  ops, user: "alice", priv: VMAudit, path: "/vms/web2", reason: ReasonNoAccess, at: "/"},

		{name: "empty custom role gives nothing", roles: []*Role{empty},
			entries: []Entry{u("alice", "Empty", "/", prop)},
			user:    "alice", priv: VMAudit, path: "/vms/web1", reason: ReasonNotInRole},
		{name: "empty custom role deeper replaces inherited roles", roles: []*Role{empty},
			entries: []Entry{u("alice", RoleAdministrator, "/", prop), u("alice", "Empty", "/vms/web1", prop)},
			user:    "alice", priv: VMAudit, path: "/vms/web1", reason: ReasonNotInRole, at: "/vms/web1"},
		{name: "custom role grants its privileges", roles: []*Role{deployer},
			entries: []Entry{u("alice", "Deployer", "/vms", prop)},
			user:    "alice", priv: VMCreate, path: "/vms", want: true},
		{name: "custom role grants nothing else", roles: []*Role{deployer},
			entries: []Entry{u("alice", "Deployer", "/vms", prop)},
			user:    "alice", priv: VMDelete, path: "/vms", reason: ReasonNotInRole},

		{name: "disabled user gets nothing", entries: []Entry{u("alice", RoleAdministrator, "/", prop)},
			disabled: map[string]bool{"alice": true},
			user:     "alice", priv: VMAudit, path: "/", reason: ReasonDisabled},
		{name: "disabled user gets nothing through groups", entries: []Entry{g("ops", RoleAdministrator, "/", prop)},
			groups: ops, disabled: map[string]bool{"alice": true},
			user: "alice", priv: VMAudit, path: "/", reason: ReasonDisabled},
		{name: "disabled=false is enabled", entries: []Entry{u("alice", RoleAdministrator, "/", prop)},
			disabled: map[string]bool{"alice": false},
			user:     "alice", priv: VMAudit, path: "/", want: true},
		{name: "disabling one member spares the others", entries: []Entry{g("ops", RoleAdministrator, "/", prop)},
			groups: ops, disabled: map[string]bool{"alice": true},
			user: "bob", priv: VMAudit, path: "/", want: true},

		{name: "unknown privilege fails closed", entries: []Entry{u("alice", RoleAdministrator, "/", prop)},
			user: "alice", priv: "VM.Fly", path: "/", reason: ReasonUnknownPrivilege},
		{name: "traversal path fails closed", entries: []Entry{u("alice", RoleAdministrator, "/vms", prop)},
			user: "alice", priv: VMAudit, path: "/vms/../users", reason: ReasonInvalidPath},
		{name: "trailing slash fails closed", entries: []Entry{u("alice", RoleAdministrator, "/", prop)},
			user: "alice", priv: VMAudit, path: "/vms/web1/", reason: ReasonInvalidPath},
		{name: "upper case fails closed", entries: []Entry{u("alice", RoleAdministrator, "/", prop)},
			user: "alice", priv: VMAudit, path: "/vms/Web1", reason: ReasonInvalidPath},
		{name: "empty path fails closed", entries: []Entry{u("alice", RoleAdministrator, "/", prop)},
			user: "alice", priv: VMAudit, path: "", reason: ReasonInvalidPath},
		{name: "duplicate entries are harmless",
			entries: []Entry{u("alice", RoleVMOperator, "/vms", prop), u("alice", RoleVMOperator, "/vms", prop)},
			user:    "alice", priv: VMPowerOn, path: "/vms/web1", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, tt.roles, tt.entries, tt.groups, tt.disabled)
			d := p.Explain(tt.user, tt.priv, tt.path)
			if d.Allowed != tt.want {
				t.Errorf("Explain(%s, %s, %s) = %+v, want allowed=%v", tt.user, tt.priv, tt.path, d, tt.want)
			}
			if got := p.Allowed(tt.user, tt.priv, tt.path); got != tt.want {
				t.Errorf("Allowed = %v, Explain = %+v", got, d)
			}
			if got := p.Privileges(tt.user, tt.path).Has(tt.priv); got != tt.want {
				t.Errorf("Privileges(...).Has = %v, want %v", got, tt.want)
			}
			wantReason := tt.reason
			if tt.want {
				wantReason = ReasonGranted
			}
			if d.Reason != wantReason {
				t.Errorf("reason = %q, want %q", d.Reason, wantReason)
			}
			if tt.at != "" && d.DecidedAt != tt.at {
				t.Errorf("decided at %q, want %q", d.DecidedAt, tt.at)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	admin := BuiltInRoles()[len(BuiltInRoles())-1]
	tampered := BuiltInRoles()[0] // NoAccess
	tampered.Privs = AllPrivileges()
	shadow := &Role{Name: RoleAdministrator, Privs: AllPrivileges()}
	tests := []struct {
		name    string
		roles   []*Role
		entries []Entry
		groups  map[string][]string
		wantErr error
		msg     string
	}{
		{name: "unknown role", entries: []Entry{u("alice", "Wizard", "/", prop)},
			wantErr: ErrUnknownRole, msg: `entry 0 (user alice: Wizard on /): unknown role "Wizard"`},
		{name: "role names are case-sensitive", entries: []Entry{u("alice", "administrator", "/", prop)},
			wantErr: ErrUnknownRole},
		{name: "subject with user and group", entries: []Entry{{Subject: Subject{User: "a", Group: "b"}, Role: RoleReadOnly, Path: "/"}},
			wantErr: ErrInvalidEntry},
		{name: "subject with neither", entries: []Entry{{Role: RoleReadOnly, Path: "/"}},
			wantErr: ErrInvalidEntry},
		{name: "subject with a control character", entries: []Entry{u("al\nice", RoleReadOnly, "/", prop)},
			wantErr: ErrInvalidEntry},
		{name: "invalid path", entries: []Entry{u("alice", RoleReadOnly, "/vms/", prop)},
			wantErr: ErrInvalidPath},
		{name: "traversal path", entries: []Entry{u("alice", RoleReadOnly, "/vms/../users", prop)},
			wantErr: ErrPathTraversal},
		{name: "second entry is named", entries: []Entry{u("alice", RoleReadOnly, "/", prop), u("bob", "X", "/", prop)},
			wantErr: ErrUnknownRole, msg: "entry 1 "},
		{name: "custom role shadows a built-in", roles: []*Role{shadow}, wantErr: ErrInvalidRole},
		{name: "custom role shadows a built-in in another case", roles: []*Role{NewRole("noaccess")}, wantErr: ErrInvalidRole},
		{name: "built-in role with changed privileges", roles: []*Role{tampered}, wantErr: ErrInvalidRole},
		{name: "custom role marked built-in", roles: []*Role{{Name: "Mine", BuiltIn: true}}, wantErr: ErrInvalidRole},
		{name: "duplicate custom role", roles: []*Role{NewRole("Ops"), NewRole("ops")}, wantErr: ErrInvalidRole},
		{name: "invalid custom role name", roles: []*Role{NewRole("a b")}, wantErr: ErrInvalidRole},
		{name: "nil role", roles: []*Role{nil}, wantErr: ErrInvalidRole},
		{name: "invalid group name", groups: map[string][]string{"alice": {""}}, wantErr: ErrInvalidEntry},
		{name: "invalid member name", groups: map[string][]string{"al ice": {"ops"}}, wantErr: ErrInvalidEntry},
		{name: "unchanged built-in copies are fine", roles: append(BuiltInRoles(), admin)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.roles, tt.entries, tt.groups, nil)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Compile error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Compile error = %q, want it to contain %q", err, tt.msg)
			}
		})
	}
}

// A Policy is a snapshot: changing the inputs after Compile changes nothing.
func TestCompileCopies(t *testing.T) {
	r := customRole("Deployer", VMCreate)
	entries := []Entry{u("alice", "Deployer", "/vms", prop)}
	groups := map[string][]string{"bob": {"ops"}}
	disabled := map[string]bool{}
	p := mustCompile(t, []*Role{r}, entries, groups, disabled)

	_ = r.Add(VMDelete)
	entries[0].Path = "/"
	groups["alice"] = []string{"ops"}
	disabled["alice"] = true

	if !p.Allowed("alice", VMCreate, "/vms") || p.Allowed("alice", VMDelete, "/vms") || p.Allowed("alice", VMCreate, "/") {
		t.Error("the policy changed with its inputs")
	}
}

func TestConcurrentReaders(t *testing.T) {
	p := mustCompile(t, nil, []Entry{g("ops", RoleVMOperator, "/vms", prop)}, map[string][]string{"alice": {"ops"}}, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if !p.Allowed("alice", VMPowerOn, "/vms/web1") {
					t.Error("denied")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestNilAndZeroPolicyDeny(t *testing.T) {
	var nilPolicy *Policy
	for _, p := range []*Policy{nilPolicy, {}} {
		if p.Allowed("root", VMAudit, "/") || !p.Privileges("root", "/").IsEmpty() {
			t.Errorf("%#v allows", p)
		}
	}
}

func TestErrorsEscapeNames(t *testing.T) {
	_, err := Compile(nil, []Entry{u("eve\nFAKE LOG LINE", "Nope\x1b[2J", "/", prop)}, nil, nil)
	if err == nil || strings.ContainsAny(err.Error(), "\n\x1b") {
		t.Errorf("error = %q, want names escaped", err)
	}
}
