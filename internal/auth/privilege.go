package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// Privilege names one thing a user may do to an object, such as "VM.PowerOn".
// The set is fixed: Catalogue lists every privilege and ParsePrivilege rejects
// anything else.
type Privilege string

// The catalogue. Names are stored and shown as written here; matching is
// case-sensitive so that one privilege has exactly one spelling.
const (
	AttestationConfig Privilege = "Attestation.Config"
	AttestationRead   Privilege = "Attestation.Read"
	AuditRead         Privilege = "Audit.Read"
	DatastoreAllocate Privilege = "Datastore.Allocate"
	DatastoreAudit    Privilege = "Datastore.Audit"
	FirewallConfig    Privilege = "Firewall.Config"
	FirewallRead      Privilege = "Firewall.Read"
	IPSConfig         Privilege = "IPS.Config"
	IPSRead           Privilege = "IPS.Read"
	MonitorRead       Privilege = "Monitor.Read"
	MonitorRespond    Privilege = "Monitor.Respond"
	NetworkAttach     Privilege = "Network.Attach"
	NetworkAudit      Privilege = "Network.Audit"
	NetworkConfig     Privilege = "Network.Config"
	NetworkMirror     Privilege = "Network.Mirror"
	PermissionManage  Privilege = "Permission.Manage"
	PoolAllocate      Privilege = "Pool.Allocate"
	PoolAudit         Privilege = "Pool.Audit"
	PoolConfig        Privilege = "Pool.Config"
	RoleManage        Privilege = "Role.Manage"
	UserManage        Privilege = "User.Manage"
	VMAudit           Privilege = "VM.Audit"
	VMConfig          Privilege = "VM.Config"
	VMConfigDisk      Privilege = "VM.Config.Disk"
	VMConsole         Privilege = "VM.Console"
	VMConsoleTakeover Privilege = "VM.Console.Takeover"
	VMCreate          Privilege = "VM.Create"
	VMDelete          Privilege = "VM.Delete"
	VMHostPaths       Privilege = "VM.HostPaths"
	VMPowerOff        Privilege = "VM.PowerOff"
	VMPowerOn         Privilege = "VM.PowerOn"
	VMSnapshot        Privilege = "VM.Snapshot"
)

// PrivilegeInfo describes one catalogue entry.
type PrivilegeInfo struct {
	Name        Privilege `json:"name"`
	Description string    `json:"description"`
}

// catalogue is sorted by name; a privilege's index here is its bit in PrivSet.
// Bit positions are an in-memory detail: persist privilege names, never bits.
var catalogue = [...]PrivilegeInfo{
	{AttestationConfig, "Change attestation policy: golden values, verifier settings and enrolled TPM keys."},
	{AttestationRead, "Read attestation results, quotes and measurement event logs."},
	{AuditRead, "Read the tamper-evident audit log of administrative actions."},
	{DatastoreAllocate, "Create, resize, clone, import, export and delete storage volumes (checked on /storage/POOL for new volumes, /storage/POOL/volumes/NAME for existing ones), and attach a volume to a VM."},
	{DatastoreAudit, "List storage pools and volumes and read their metadata (size, format, base, digest, users)."},
	{FirewallConfig, "Create, change and delete security groups, rules and IP sets."},
	{FirewallRead, "Read security groups, rules, IP sets, rule hit counters and the firewall log."},
	{IPSConfig, "Load and remove intrusion-prevention rule files and set where the IPS inspects and whether it blocks or only alerts (per network and security group)."},
	{IPSRead, "Read IPS rules, rule hit counters, inspection statistics and alerts (EVE JSON)."},
	{MonitorRead, "Read host and guest monitoring data: metrics, introspection findings and alerts."},
	{MonitorRespond, "Act on monitoring findings: acknowledge alerts, quarantine or pause the affected VM."},
	{NetworkAttach, "Attach a VM's NIC to a virtual network (checked on /networks/NET) and put it in a security group (checked on /security-groups/G): a NIC's network and groups decide what it may reach."},
	{NetworkAudit, "Read virtual networks, ports and their settings."},
	{NetworkConfig, "Create, change and delete virtual networks and attach VMs to them."},
	{NetworkMirror, "Create and delete traffic mirror sessions (pcap files, a monitoring VM's port, ERSPAN to a remote collector) and read their captures' status: a copy of the traffic of any VM on the network leaves its isolation, so only Administrator holds it."},
	{PermissionManage, "Create and remove permission entries, within the privileges the actor holds."},
	{PoolAllocate, "Place VMs in a resource pool and use its capacity (checked on /pools/NAME); VMs in a pool inherit the grants made on it."},
	{PoolAudit, "Read resource pools: reservations, limits, shares, what holds the capacity, and usage."},
	{PoolConfig, "Create, change and delete resource pools: reservations, limits and shares."},
	{RoleManage, "Create, change and delete custom roles (built-in roles are read-only)."},
	{UserManage, "Create, disable and delete users and groups, and change group membership."},
	{VMAudit, "Read a VM's definition, state and console log metadata."},
	{VMConfig, "Change a VM's definition: vCPUs, memory, kernel, disks and NICs."},
	{VMConfigDisk, "Give a VM disks on storage volumes (checked on /vms/NAME; the volume needs Datastore.Allocate too)."},
	{VMConsole, "Attach to a VM's console when no one else holds it, and read its console log."},
	{VMConsoleTakeover, "Take over a VM console that another user holds, disconnecting them."},
	{VMCreate, "Create VMs."},
	{VMDelete, "Delete VMs and their disks."},
	{VMHostPaths, "Define VMs whose kernel, initrd or disks are host paths outside the image directories, or disks on block devices; checked on /. The daemon opens them as root, so only Administrator holds it."},
	{VMPowerOff, "Stop and pause VMs."},
	{VMPowerOn, "Start and resume VMs."},
	{VMSnapshot, "Take, list, verify, revert and delete a VM's disk snapshots (checked on /vms/NAME); restoring one as a new VM also needs VM.Create on /vms and Datastore.Allocate on the pool."},
}

// privBit maps a privilege name to its bit; built once, read-only afterwards.
var privBit = func() map[Privilege]uint8 {
	m := make(map[Privilege]uint8, len(catalogue))
	for i, pi := range catalogue {
		m[pi.Name] = uint8(i)
	}
	return m
}()

// allBits has one bit set for every catalogue entry.
const allBits = uint64(1)<<len(catalogue) - 1

// Catalogue returns every privilege with its description, sorted by name.
// The slice is a fresh copy.
func Catalogue() []PrivilegeInfo {
	out := make([]PrivilegeInfo, len(catalogue))
	copy(out, catalogue[:])
	return out
}

// ErrUnknownPrivilege is wrapped by every error about a name that is not in
// the catalogue.
var ErrUnknownPrivilege = errors.New("unknown privilege")

// ParsePrivilege returns the privilege named s. Matching is exact; a name that
// differs only in case is still rejected, with a hint.
func ParsePrivilege(s string) (Privilege, error) {
	if _, ok := privBit[Privilege(s)]; ok {
		return Privilege(s), nil
	}
	for _, pi := range catalogue {
		if strings.EqualFold(string(pi.Name), s) {
			return "", fmt.Errorf("%w %q (did you mean %q?)", ErrUnknownPrivilege, s, pi.Name)
		}
	}
	return "", fmt.Errorf("%w %q", ErrUnknownPrivilege, s)
}

// PrivSet is a set of catalogue privileges. The zero value is the empty set.
// It is a small value type: copy it freely. Its representation is private so
// that a set can only ever hold catalogue privileges.
type PrivSet struct{ bits uint64 }

// NewPrivSet returns the set of the given privileges, or an error naming the
// first one that is not in the catalogue.
func NewPrivSet(privs ...Privilege) (PrivSet, error) {
	var s PrivSet
	for _, p := range privs {
		b, ok := privBit[p]
		if !ok {
			return PrivSet{}, fmt.Errorf("%w %q", ErrUnknownPrivilege, string(p))
		}
		s.bits |= 1 << b
	}
	return s, nil
}

// AllPrivileges returns the set of every catalogue privilege.
func AllPrivileges() PrivSet { return PrivSet{allBits} }

// Has reports whether p is in s. A name outside the catalogue is never in
// any set.
func (s PrivSet) Has(p Privilege) bool {
	b, ok := privBit[p]
	return ok && s.bits&(1<<b) != 0
}

// ContainsAll reports whether every privilege of o is also in s.
func (s PrivSet) ContainsAll(o PrivSet) bool { return o.bits&^s.bits == 0 }

// Union returns the privileges in s or o.
func (s PrivSet) Union(o PrivSet) PrivSet { return PrivSet{s.bits | o.bits} }

// Minus returns the privileges in s but not in o.
func (s PrivSet) Minus(o PrivSet) PrivSet { return PrivSet{s.bits &^ o.bits} }

// IsEmpty reports whether s holds no privilege.
func (s PrivSet) IsEmpty() bool { return s.bits == 0 }

// Len returns the number of privileges in s.
func (s PrivSet) Len() int { return bits.OnesCount64(s.bits) }

// Privileges returns the members of s sorted by name.
func (s PrivSet) Privileges() []Privilege {
	out := make([]Privilege, 0, s.Len())
	for i, pi := range catalogue {
		if s.bits&(1<<i) != 0 {
			out = append(out, pi.Name)
		}
	}
	return out
}

// String returns the members of s sorted and comma-separated, or "(none)".
func (s PrivSet) String() string {
	if s.bits == 0 {
		return "(none)"
	}
	var b strings.Builder
	for i, p := range s.Privileges() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(string(p))
	}
	return b.String()
}

// MarshalJSON writes s as a sorted array of privilege names. Names, not bits,
// are what gets stored, so reordering the catalogue never changes a role.
func (s PrivSet) MarshalJSON() ([]byte, error) { return json.Marshal(s.Privileges()) }

// UnmarshalJSON reads an array of privilege names, rejecting unknown ones.
func (s *PrivSet) UnmarshalJSON(b []byte) error {
	var names []Privilege
	if err := json.Unmarshal(b, &names); err != nil {
		return err
	}
	set, err := NewPrivSet(names...)
	if err != nil {
		return err
	}
	*s = set
	return nil
}
