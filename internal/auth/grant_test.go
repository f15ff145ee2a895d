package auth

import (
	"errors"
	"strings"
	"testing"
)

// grantPolicy is the shared world of the CanGrant and CanRevoke tables.
//
//	root    Administrator on /
//	alice   VMDelegate (VMOperator + Permission.Manage) on /vms, NoAccess on /vms/secret; in group ops
//	carol   Steward (Permission.Manage, VM.Audit) on /
//	dave    VMDelegate on /pools/prod, this path only
//	mallory ReadOnly on /
//	olga    Administrator on /, but disabled
//	bob     staff's VMOperator on /, overridden on a few VMs; in group staff
func grantPolicy(t *testing.T) *Policy {
	t.Helper()
	delegate := customRole("VMDelegate", VMAudit, VMPowerOn, VMPowerOff, VMConsole, MonitorRead, PermissionManage)
	steward := customRole("Steward", PermissionManage, VMAudit)
	entries := []Entry{
		u("root", RoleAdministrator, "/", prop),
		u("alice", "VMDelegate", "/vms", prop),
		u("alice", RoleNoAccess, "/vms/secret", prop),
		u("carol", "Steward", "/", prop),
		u("dave", "VMDelegate", "/pools/prod", noProp),
		u("mallory", RoleReadOnly, "/", prop),
		u("olga", RoleAdministrator, "/", prop),
		g("staff", RoleVMOperator, "/", prop),
		u("bob", RoleNoAccess, "/vms/web9", prop),
		g("staff", RoleReadOnly, "/vms/web8", prop),
		u("bob", RoleAdministrator, "/vms/web7", prop),
		u("bob", RoleReadOnly, "/pools/prod", prop),
	}
	groups := map[string][]string{"alice": {"ops"}, "bob": {"staff"}, "erin": {"staff"}}
	return mustCompile(t, []*Role{delegate, steward}, entries, groups, map[string]bool{"olga": true})
}

func TestCanGrant(t *testing.T) {
	p := grantPolicy(t)
	tests := []struct {
		name    string
		actor   string
		entry   Entry
		wantErr error  // nil: allowed
		msg     string // substring of the error
	}{
		{"administrator grants anything", "root", u("bob", RoleAdministrator, "/", prop), nil, ""},
		{"delegate grants what it holds", "alice", u("bob", RoleVMOperator, "/vms/web1", prop), nil, ""},
		{"delegate passes delegation on", "alice", u("bob", "VMDelegate", "/vms/web1", prop), nil, ""},
		{"delegate grants to a group it is not in", "alice", g("staff", RoleVMOperator, "/vms", noProp), nil, ""},
		{"ReadOnly holds more than the delegate", "alice", g("staff", RoleReadOnly, "/vms", noProp),
			ErrForbidden, "alice lacks Attestation.Read,Audit.Read,Datastore.Audit,Firewall.Read,IPS.Read,Network.Audit,Pool.Audit on /vms"},
		{"NoAccess takes power away, always grantable", "alice", u("bob", RoleNoAccess, "/vms/web1", prop), nil, ""},

		{"Administrator without holding it", "alice", u("bob", RoleAdministrator, "/vms/web1", prop),
			ErrForbidden, "alice lacks "},
		{"a role with one privilege too many", "alice", u("bob", RoleNetworkAdmin, "/vms/web1", prop),
			ErrForbidden, "Firewall.Config"},
		{"path without Permission.Manage", "alice", u("bob", RoleReadOnly, "/networks/n1", prop),
			ErrForbidden, "alice lacks Permission.Manage on /networks/n1"},
		{"path above the delegation", "alice", u("bob", RoleVMOperator, "/", prop),
			ErrForbidden, "Permission.Manage on /"},
		{"path masked for the actor", "alice", u("bob", RoleVMOperator, "/vms/secret", prop),
			ErrForbidden, "Permission.Manage on /vms/secret"},
		{"propagation would reach where the actor is masked", "alice", u("bob", RoleVMOperator, "/vms", prop),
			ErrForbidden, "on /vms/secret, which role VMOperator would grant; grant it without propagation"},
		{"the same grant on the collection only", "alice", u("bob", RoleVMOperator, "/vms", noProp), nil, ""},
		{"propagation beyond a non-propagating delegation", "dave", u("erin", RoleVMOperator, "/pools/prod", prop),
			ErrForbidden, "on objects below /pools/prod"},
		{"non-propagating grant within it", "dave", u("erin", RoleVMOperator, "/pools/prod", noProp), nil, ""},
		{"no Permission.Manage at all", "mallory", u("bob", RoleReadOnly, "/vms/web1", prop),
			ErrForbidden, "mallory lacks Permission.Manage"},
		{"self-grant", "alice", u("alice", RoleReadOnly, "/vms/web1", prop),
			ErrForbidden, "alice cannot change their own permissions"},
		{"self-grant even when held", "root", u("root", RoleAdministrator, "/vms", prop),
			ErrForbidden, "their own permissions"},
		{"grant to own group", "alice", g("ops", RoleReadOnly, "/vms/web1", prop),
			ErrForbidden, "group ops, which they belong to"},
		{"disabled actor", "olga", u("bob", RoleReadOnly, "/", prop), ErrForbidden, "olga is disabled"},
		{"unknown actor", "nobody", u("bob", RoleReadOnly, "/", prop), ErrForbidden, "lacks Permission.Manage"},

		{"unknown role", "root", u("bob", "Wizard", "/", prop), ErrUnknownRole, `"Wizard"`},
		{"invalid path", "root", u("bob", RoleReadOnly, "/vms/", prop), ErrInvalidPath, "trailing"},
		{"traversal path", "alice", u("bob", RoleReadOnly, "/vms/../users", prop), ErrPathTraversal, ".."},
		{"bad subject", "root", Entry{Role: RoleReadOnly, Path: "/"}, ErrInvalidEntry, "neither"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.CanGrant(tt.actor, tt.entry)
			checkErr(t, err, tt.wantErr, tt.msg)
		})
	}
}

func TestCanRevoke(t *testing.T) {
	p := grantPolicy(t)
	tests := []struct {
		name    string
		actor   string
		entry   Entry
		wantErr error
		msg     string
	}{
		{"administrator removes a mask", "root", u("bob", RoleNoAccess, "/vms/web9", prop), nil, ""},
		{"delegate removes a mask re-exposing what it holds", "alice", u("bob", RoleNoAccess, "/vms/web9", prop), nil, ""},
		{"removing a mask re-exposes what the actor lacks", "carol", u("bob", RoleNoAccess, "/vms/web9", prop),
			ErrForbidden, "removing it would give user bob Monitor.Read,VM.Console,VM.PowerOff,VM.PowerOn on /vms/web9, which carol lacks"},
		{"removing a group's narrower entry re-exposes for every member", "carol", g("staff", RoleReadOnly, "/vms/web8", prop),
			ErrForbidden, "removing it would give user bob"},
		{"the same with the privileges held", "alice", g("staff", RoleReadOnly, "/vms/web8", prop), nil, ""},
		{"removing a stronger entry gives nothing", "carol", u("bob", RoleAdministrator, "/vms/web7", prop), nil, ""},
		{"gain below a non-propagating delegation", "dave", u("bob", RoleReadOnly, "/pools/prod", prop),
			ErrForbidden, "on objects below /pools/prod"},
		{"self-removal", "alice", u("alice", RoleNoAccess, "/vms/secret", prop),
			ErrForbidden, "their own permissions"},
		{"removal from own group", "bob", g("staff", RoleReadOnly, "/vms/web8", prop),
			ErrForbidden, "group staff, which they belong to"},
		{"no Permission.Manage", "mallory", u("bob", RoleNoAccess, "/vms/web9", prop),
			ErrForbidden, "mallory lacks Permission.Manage on /vms/web9"},
		{"disabled actor", "olga", u("bob", RoleNoAccess, "/vms/web9", prop), ErrForbidden, "disabled"},
		{"entry that does not exist", "root", u("bob", RoleNoAccess, "/vms/web9", noProp), ErrNoSuchEntry, "this path only"},
		{"path without entries", "root", u("bob", RoleNoAccess, "/vms/web6", prop), ErrNoSuchEntry, ""},
		{"invalid path", "root", u("bob", RoleNoAccess, "/vms/web9/", prop), ErrInvalidPath, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, p.CanRevoke(tt.actor, tt.entry), tt.wantErr, tt.msg)
		})
	}
}

func checkErr(t *testing.T, err, wantErr error, msg string) {
	t.Helper()
	if wantErr == nil {
		if err != nil {
			t.Fatalf("error = %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, wantErr) {
		t.Fatalf("error = %v, want %v", err, wantErr)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error = %q, want it to contain %q", err, msg)
	}
	if wantErr != ErrForbidden && errors.Is(err, ErrForbidden) {
		t.Errorf("validation error %q also reads as ErrForbidden", err)
	}
}

// A grant that CanGrant allows never gives its subject a privilege the actor
// lacks, anywhere: checked by compiling the policy with the entry added.
func TestCanGrantNoEscalation(t *testing.T) {
	base := grantPolicy(t)
	paths := []string{"/", "/vms", "/vms/web1", "/vms/secret", "/vms/web9", "/pools/prod", "/pools/prod/vms/x", "/networks/n1"}
	actors := []string{"alice", "carol", "dave", "mallory", "root"}
	roles := []string{RoleNoAccess, RoleReadOnly, RoleVMOperator, RoleNetworkAdmin, RoleAdministrator, "VMDelegate", "Steward"}
	var roleList []*Role
	var entries []Entry
	for _, n := range base.byPath {
		entries = append(entries, n.entries...)
	}
	roleList = append(roleList, customRole("VMDelegate", VMAudit, VMPowerOn, VMPowerOff, VMConsole, MonitorRead, PermissionManage),
		customRole("Steward", PermissionManage, VMAudit))
	for _, actor := range actors {
		for _, role := range roles {
			for _, at := range paths {
				for _, pr := range []bool{prop, noProp} {
					e := u("erin", role, at, pr)
					if base.CanGrant(actor, e) != nil {
						continue
					}
					after := mustCompile(t, roleList, append(entries[:len(entries):len(entries)], e), base.groupsCopy(), nil)
					for _, q := range paths {
						gained := after.Privileges("erin", q).Minus(base.Privileges("erin", q))
						if missing := gained.Minus(base.Privileges(actor, q)); !missing.IsEmpty() {
							t.Errorf("%s granted %s: erin gained %s on %s, which %s lacks", actor, e, missing, q, actor)
						}
					}
				}
			}
		}
	}
}

func (p *Policy) groupsCopy() map[string][]string {
	out := make(map[string][]string, len(p.memberOf))
	for u, gs := range p.memberOf {
		out[u] = gs
	}
	return out
}

// A removal that CanRevoke allows never gives any member of its subject a
// privilege the actor lacks: checked by compiling the policy without it.
func TestCanRevokeNoEscalation(t *testing.T) {
	base := grantPolicy(t)
	paths := []string{"/", "/vms", "/vms/web1", "/vms/secret", "/vms/web7", "/vms/web8", "/vms/web9",
		"/pools/prod", "/pools/prod/vms/x", "/networks/n1"}
	roles := []*Role{customRole("VMDelegate", VMAudit, VMPowerOn, VMPowerOff, VMConsole, MonitorRead, PermissionManage),
		customRole("Steward", PermissionManage, VMAudit)}
	var entries []Entry
	for _, path := range base.paths {
		entries = append(entries, base.byPath[path].entries...)
	}
	allowed := 0
	for _, actor := range []string{"alice", "carol", "dave", "mallory", "root"} {
		for i, e := range entries {
			if base.CanRevoke(actor, e) != nil {
				continue
			}
			allowed++
			rest := append(append([]Entry{}, entries[:i]...), entries[i+1:]...)
			after := mustCompile(t, roles, rest, base.groupsCopy(), base.disabled)
			for _, who := range []string{"bob", "erin", "alice", "carol", "dave", "mallory", "root", "olga"} {
				for _, q := range paths {
					gained := after.Privileges(who, q).Minus(base.Privileges(who, q))
					if missing := gained.Minus(base.Privileges(actor, q)); !missing.IsEmpty() {
						t.Errorf("%s removed %s: %s gained %s on %s, which %s lacks", actor, e, who, missing, q, actor)
					}
				}
			}
		}
	}
	if allowed == 0 {
		t.Fatal("no removal was allowed; the test checks nothing")
	}
}
