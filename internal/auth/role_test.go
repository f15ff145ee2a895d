package auth

import (
	"errors"
	"testing"
)

func TestBuiltInRoles(t *testing.T) {
	want := map[string][]Privilege{
		RoleNoAccess:     nil,
		RoleReadOnly:     {AttestationRead, AuditRead, DatastoreAudit, FirewallRead, IPSRead, MonitorRead, NetworkAudit, PoolAudit, VMAudit},
		RoleVMOperator:   {MonitorRead, VMAudit, VMConsole, VMPowerOff, VMPowerOn},
		RoleNetworkAdmin: {FirewallConfig, FirewallRead, IPSConfig, IPSRead, NetworkAttach, NetworkAudit, NetworkConfig, VMAudit},
		RoleSecurityAuditor: {AttestationRead, AuditRead, FirewallRead, IPSRead, MonitorRead,
			NetworkAudit, VMAudit},
	}
	roles := BuiltInRoles()
	if len(roles) != 6 {
		t.Fatalf("%d built-in roles, want 6", len(roles))
	}
	for _, r := range roles {
		if !r.BuiltIn {
			t.Errorf("%s: BuiltIn = false", r.Name)
		}
		if r.Name == RoleAdministrator {
			if r.Privs != AllPrivileges() {
				t.Errorf("Administrator = %v, want every privilege", r.Privs)
			}
			continue
		}
		w, ok := want[r.Name]
		if !ok {
			t.Errorf("unexpected built-in role %q", r.Name)
			continue
		}
		if r.Privs != mustPrivSet(w...) {
			t.Errorf("%s = %v, want %v", r.Name, r.Privs, mustPrivSet(w...))
		}
	}
}

func TestBuiltInRolesImmutable(t *testing.T) {
	for _, r := range BuiltInRoles() {
		if err := r.Add(VMDelete); !errors.Is(err, ErrBuiltInRole) {
			t.Errorf("%s.Add: error = %v, want ErrBuiltInRole", r.Name, err)
		}
		if err := r.Remove(VMAudit); !errors.Is(err, ErrBuiltInRole) {
			t.Errorf("%s.Remove: error = %v, want ErrBuiltInRole", r.Name, err)
		}
		// Clearing the flag on a copy does not make the name editable.
		r.BuiltIn = false
		if err := r.Add(VMDelete); !errors.Is(err, ErrBuiltInRole) {
			t.Errorf("%s with BuiltIn cleared: Add error = %v, want ErrBuiltInRole", r.Name, err)
		}
		r.Privs = AllPrivileges() // tampering with a copy ...
	}
	// ... changes nothing for the next caller.
	for _, r := range BuiltInRoles() {
		if r.Name == RoleNoAccess && !r.Privs.IsEmpty() {
			t.Fatal("tampering with a copy changed the built-in NoAccess")
		}
	}
}

func TestCustomRole(t *testing.T) {
	r := NewRole("Deployer")
	if r.BuiltIn || !r.Privs.IsEmpty() {
		t.Fatalf("new role = %+v, want empty custom role", r)
	}
	steps := []struct {
		add     bool
		p       Privilege
		want    string
		wantErr error
	}{
		{true, VMCreate, "VM.Create", nil},
		{true, VMPowerOn, "VM.Create,VM.PowerOn", nil},
		{true, VMPowerOn, "VM.Create,VM.PowerOn", nil},
		{true, "VM.Fly", "VM.Create,VM.PowerOn", ErrUnknownPrivilege},
		{true, "vm.create", "VM.Create,VM.PowerOn", ErrUnknownPrivilege},
		{false, VMCreate, "VM.PowerOn", nil},
		{false, VMCreate, "VM.PowerOn", nil},
		{false, "", "VM.PowerOn", ErrUnknownPrivilege},
		{false, VMPowerOn, "(none)", nil},
	}
	for i, s := range steps {
		var err error
		if s.add {
			err = r.Add(s.p)
		} else {
			err = r.Remove(s.p)
		}
		if !errors.Is(err, s.wantErr) || (s.wantErr == nil) != (err == nil) {
			t.Errorf("step %d (%v %q): error = %v, want %v", i, s.add, s.p, err, s.wantErr)
		}
		if got := r.Privs.String(); got != s.want {
			t.Errorf("step %d: privileges = %s, want %s", i, got, s.want)
		}
	}
}

func TestValidRoleName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"Deployer", true},
		{"vm-ops_2.tier1", true},
		{"9lives", true},
		{"", false},
		{"-x", false},
		{".hidden", false},
		{"has space", false},
		{"slash/role", false},
		{"Rôle", false},
		{string(make([]byte, 65)), false},
		{"NoAccess", false},
		{"noaccess", false},
		{"ADMINISTRATOR", false},
		{"ReadOnly", false},
	}
	for _, tt := range tests {
		err := ValidRoleName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidRoleName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidRole) {
			t.Errorf("ValidRoleName(%q): error does not wrap ErrInvalidRole", tt.name)
		}
	}
}
