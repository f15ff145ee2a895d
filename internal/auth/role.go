package auth

import (
	"errors"
	"fmt"
	"strings"
)

// Role is a named set of privileges. A custom role starts empty and is changed
// one privilege at a time; built-in roles cannot be changed.
//
// A Role is a plain, mutable value owned by its caller (an editor, a store).
// Compile copies what it needs, so changing a Role after Compile does not
// change the Policy built from it.
type Role struct {
	Name    string
	BuiltIn bool
	Privs   PrivSet
}

// Names of the built-in roles.
const (
	RoleNoAccess        = "NoAccess"
	RoleReadOnly        = "ReadOnly"
	RoleVMOperator      = "VMOperator"
	RoleNetworkAdmin    = "NetworkAdmin"
	RoleSecurityAuditor = "SecurityAuditor"
	RoleAdministrator   = "Administrator"
)

// Errors a caller may need to tell apart.
var (
	ErrBuiltInRole = errors.New("built-in roles cannot be changed")
	ErrUnknownRole = errors.New("unknown role")
	ErrInvalidRole = errors.New("invalid role")
)

// builtIn defines the built-in roles, in the order BuiltInRoles returns them.
//
//	NoAccess         no privileges; an entry with it masks every other role of
//	                 the subject on its path (and below when it propagates)
//	ReadOnly         every *.Audit and *.Read privilege: Attestation.Read,
//	                 Audit.Read, Datastore.Audit, Firewall.Read, Monitor.Read,
//	                 Network.Audit, Pool.Audit, VM.Audit
//	VMOperator       run VMs without changing them: VM.Audit, VM.PowerOn,
//	                 VM.PowerOff, VM.Console, Monitor.Read
//	NetworkAdmin     Network.*, Firewall.*, and VM.Audit to see what is attached
//	SecurityAuditor  Audit.Read, Firewall.Read, Monitor.Read, Attestation.Read,
//	                 VM.Audit, Network.Audit
//	Administrator    every privilege in the catalogue
var builtIn = []struct {
	name  string
	privs func() PrivSet
}{
	{RoleNoAccess, func() PrivSet { return PrivSet{} }},
	{RoleReadOnly, readOnlyPrivs},
	{RoleVMOperator, func() PrivSet {
		return mustPrivSet(VMAudit, VMPowerOn, VMPowerOff, VMConsole, MonitorRead)
	}},
	{RoleNetworkAdmin, func() PrivSet {
		return mustPrivSet(NetworkAttach, NetworkAudit, NetworkConfig, FirewallRead, FirewallConfig, IPSConfig, IPSRead, VMAudit)
	}},
	{RoleSecurityAuditor, func() PrivSet {
		return mustPrivSet(AuditRead, FirewallRead, IPSRead, MonitorRead, AttestationRead, VMAudit, NetworkAudit)
	}},
	{RoleAdministrator, AllPrivileges},
}

// readOnlyPrivs derives ReadOnly from the catalogue so that a new *.Audit or
// *.Read privilege joins it without a second edit.
func readOnlyPrivs() PrivSet {
	var s PrivSet
	for i, pi := range catalogue {
		if strings.HasSuffix(string(pi.Name), ".Audit") || strings.HasSuffix(string(pi.Name), ".Read") {
			s.bits |= 1 << i
		}
	}
	return s
}

func mustPrivSet(privs ...Privilege) PrivSet {
	s, err := NewPrivSet(privs...)
	if err != nil {
		panic(err)
	}
	return s
}

// BuiltInRoles returns fresh copies of the built-in roles; changing a copy
// does not change the definitions.
func BuiltInRoles() []*Role {
	out := make([]*Role, len(builtIn))
	for i, b := range builtIn {
		out[i] = &Role{Name: b.name, BuiltIn: true, Privs: b.privs()}
	}
	return out
}

// builtInPrivs returns the privileges of the built-in role whose name matches
// name exactly.
func builtInPrivs(name string) (PrivSet, bool) {
	for _, b := range builtIn {
		if b.name == name {
			return b.privs(), true
		}
	}
	return PrivSet{}, false
}

// reservedName reports the built-in role that name collides with, ignoring
// case, so that no custom "noaccess" can be mistaken for the real one.
func reservedName(name string) (string, bool) {
	for _, b := range builtIn {
		if strings.EqualFold(b.name, name) {
			return b.name, true
		}
	}
	return "", false
}

// NewRole returns an empty custom role. The name is checked by Compile (see
// ValidRoleName), so that an editor can build a role before naming it well.
func NewRole(name string) *Role { return &Role{Name: name} }

// Add grants p to the role. Adding a privilege the role already has is a no-op.
// Built-in roles, recognised by flag or by name, cannot be changed.
func (r *Role) Add(p Privilege) error { return r.edit(p, true) }

// Remove takes p from the role. Removing a privilege the role lacks is a no-op.
func (r *Role) Remove(p Privilege) error { return r.edit(p, false) }

func (r *Role) edit(p Privilege, add bool) error {
	if r.BuiltIn {
		return fmt.Errorf("role %q: %w", r.Name, ErrBuiltInRole)
	}
	if _, reserved := reservedName(r.Name); reserved {
		return fmt.Errorf("role %q: %w", r.Name, ErrBuiltInRole)
	}
	b, ok := privBit[p]
	if !ok {
		return fmt.Errorf("role %q: %w %q", r.Name, ErrUnknownPrivilege, string(p))
	}
	if add {
		r.Privs.bits |= 1 << b
	} else {
		r.Privs.bits &^= 1 << b
	}
	return nil
}

// maxRoleName bounds role names; they appear in logs and UI lists.
const maxRoleName = 64

// ValidRoleName checks a custom role name: 1 to 64 ASCII letters, digits, '.',
// '_' or '-', starting with a letter or digit, and not a built-in name in any
// letter case.
func ValidRoleName(name string) error {
	if name == "" || len(name) > maxRoleName {
		return fmt.Errorf("%w name %q: must be 1 to %d characters", ErrInvalidRole, name, maxRoleName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return fmt.Errorf("%w name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", ErrInvalidRole, name)
		}
	}
	if b, ok := reservedName(name); ok {
		return fmt.Errorf("%w name %q: reserved for the built-in role %q", ErrInvalidRole, name, b)
	}
	return nil
}
