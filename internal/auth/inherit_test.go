package auth

import (
	"strings"
	"testing"
)

// Pool inheritance: a VM in a pool holds what its users are granted on the
// pool, unless NoAccess masks the VM; the gate counts inherited power.
func TestInherit(t *testing.T) {
	base := []Entry{
		u("pooladm", RoleVMOperator, "/pools/gold", prop),
		u("pooladm", RoleNoAccess, "/vms/secret", !prop),
		u("flat", RoleVMOperator, "/pools/flat", !prop),
		u("mover", RoleVMOperator, "/vms", prop),
		u("mover", RoleReadOnly, "/pools", !prop),
		u("masked", RoleAdministrator, "/pools", prop),
		u("masked", RoleNoAccess, "/vms/x", !prop),
		u("masked", RoleAdministrator, "/users", prop),
	}
	p0 := mustCompile(t, nil, base, nil, nil)
	p, err := p0.WithInherit(map[string][]string{
		"/vms/x":      {"/pools/gold"},
		"/vms/secret": {"/pools/gold"},
		"/vms/f":      {"/pools/flat"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		user, priv, path string
		want             bool
	}{
		{"pooladm", "VM.PowerOn", "/vms/x", true},
		{"pooladm", "VM.PowerOn", "/vms/y", false},      // not in the pool
		{"pooladm", "VM.PowerOn", "/vms/secret", false}, // NoAccess on the VM wins
		{"flat", "VM.PowerOn", "/vms/f", false},         // a non-propagating grant stays on the pool
		{"flat", "VM.PowerOn", "/pools/flat", true},
	}
	for _, c := range cases {
		if got := p.Allowed(c.user, Privilege(c.priv), c.path); got != c.want {
			t.Errorf("%s %s on %s: %t, want %t (%+v)", c.user, c.priv, c.path, got, c.want, p.Explain(c.user, Privilege(c.priv), c.path))
		}
	}
	if p0.Allowed("pooladm", VMPowerOn, "/vms/x") {
		t.Error("the policy without inheritance changed")
	}
	if _, err := p0.WithInherit(map[string][]string{"/vms/x": {"/vms"}}); err == nil {
		t.Error("inheriting from an ancestor accepted")
	}

	// Moving y into gold gives pooladm VM.PowerOn etc. on y: fine for an
	// actor holding VMOperator there, refused for one who does not.
	moved, err := p.WithInherit(map[string][]string{"/vms/x": {"/pools/gold"}, "/vms/secret": {"/pools/gold"}, "/vms/f": {"/pools/flat"}, "/vms/y": {"/pools/gold"}})
	if err != nil {
		t.Fatal(err)
	}
	ch := Change{Users: []string{"pooladm", "flat", "mover"}, Roots: []string{"/vms/y"}}
	if err := CheckChange(p, moved, "mover", ch); err != nil {
		t.Errorf("mover holds VMOperator on /vms: %v", err)
	}
	if err := CheckChange(p, moved, "flat", ch); err == nil || !strings.Contains(err.Error(), "pooladm") {
		t.Errorf("flat moved a VM into gold, giving pooladm power it lacks: %v", err)
	}

	// A grant on the pool reaches the VMs in it: an actor masked on one
	// of them may not grant there.
	granted := mustCompile(t, nil, append(append([]Entry{}, base...), u("bob", RoleVMOperator, "/pools/gold", prop)), nil, nil)
	granted, _ = granted.WithInherit(map[string][]string{"/vms/x": {"/pools/gold"}, "/vms/secret": {"/pools/gold"}, "/vms/f": {"/pools/flat"}})
	err = CheckChange(p, granted, "masked", Change{Users: []string{"bob"}, Roots: []string{"/pools/gold"}})
	if err == nil || !strings.Contains(err.Error(), "/vms/x") {
		t.Errorf("a grant on the pool by a user masked on a VM in it: %v", err)
	}
}
