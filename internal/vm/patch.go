package vm

import (
	"fmt"
	"slices"
	"strings"
)

// Patch is a partial change to a VM's spec (PATCH /api/v1/vms/NAME). Every
// field is optional: absent (or JSON null) leaves the spec's value as it
// is. Strings set to "" clear optional fields (initrd, cmdline,
// monitor_interval; accel "" is "auto"). Lists replace the whole list: "disks": [] removes
// every disk, and a NIC given without a MAC gets a new one. NICGroups
// changes only the security groups of existing NICs, the one change a
// running VM accepts; it may not be combined with NICs.
//
// The name cannot change (it is the VM's identity in paths, privileges and
// the audit trail) and neither can the console policy here (its own
// route, PUT .../console/policy).
type Patch struct {
	VCPUs     *int `json:"vcpus,omitempty"`
	MemoryMiB *int `json:"memory_mib,omitempty"`
	// Image re-points a stopped VM at another registry image (its kernel,
	// initrd and command line; the disks stay): resolved by the manager's
	// image retargeting hook. "" detaches the VM from its image.
	Image           *string     `json:"image,omitempty"`
	Kernel          *string     `json:"kernel,omitempty"`
	Initrd          *string     `json:"initrd,omitempty"`
	Cmdline         *string     `json:"cmdline,omitempty"`
	Accel           *string     `json:"accel,omitempty"`
	MonitorInterval *string     `json:"monitor_interval,omitempty"`
	Disks           *[]Disk     `json:"disks,omitempty"`
	NICs            *[]NIC      `json:"nics,omitempty"`
	NICGroups       []NICGroups `json:"nic_groups,omitempty"`
	// Pool moves the VM to another resource pool ("" or "host": the
	// root); Resources replaces its reservations, limits and shares as a
	// whole (an empty object clears them). Both apply to a running VM
	// (admission checks the new claim; its cgroup follows).
	Pool      *string    `json:"pool,omitempty"`
	Resources *Resources `json:"resources,omitempty"`
	// NICRates sets the rate limits of existing NICs, by index; also live.
	NICRates []NICRateSet `json:"nic_rates,omitempty"`
}

// NICRateSet sets one NIC's rate limits (nil Rate: unlimited).
type NICRateSet struct {
	NIC  int      `json:"nic"`
	Rate *NICRate `json:"rate"`
}

// NICGroups sets the security groups of one NIC, by index.
type NICGroups struct {
	NIC    int      `json:"nic"`
	Groups []string `json:"groups"`
}

// OpEdit is the operation named in the conflict error of a change that a
// VM's state does not allow.
const OpEdit Op = "change the definition of"

// Apply returns old with p applied, normalized (defaults, new MACs). It
// checks only what the patch itself can get wrong (a NIC index out of
// range, a NIC named twice); the result must still pass Validate.
func (p Patch) Apply(old Spec) (Spec, error) {
	s := old
	// Copy the lists so the caller's spec is never changed in place.
	s.Disks = slices.Clone(old.Disks)
	s.NICs = slices.Clone(old.NICs)
	for i := range s.NICs {
		s.NICs[i].Groups = slices.Clone(s.NICs[i].Groups)
	}
	if p.VCPUs != nil && *p.VCPUs == 0 {
		// Normalize would read 0 as "the default"; in a change it is a value.
		return old, fieldErr("vcpus", "0 out of range 1..%d", MaxVCPUs)
	}
	setInt(&s.VCPUs, p.VCPUs)
	setInt(&s.MemoryMiB, p.MemoryMiB)
	setStr(&s.Image, p.Image)
	setStr(&s.Kernel, p.Kernel)
	setStr(&s.Initrd, p.Initrd)
	setStr(&s.Cmdline, p.Cmdline)
	setStr(&s.Accel, p.Accel)
	setStr(&s.MonitorInterval, p.MonitorInterval)
	if p.Disks != nil {
		s.Disks = slices.Clone(*p.Disks)
	}
	if p.NICs != nil {
		if p.NICGroups != nil {
			return old, fieldErr("nic_groups", "give either nics (the whole list) or nic_groups, not both")
		}
		s.NICs = slices.Clone(*p.NICs)
	}
	seen := map[int]bool{}
	for i, g := range p.NICGroups {
		f := fmt.Sprintf("nic_groups[%d].nic", i)
		if g.NIC < 0 || g.NIC >= len(s.NICs) {
			return old, fieldErr(f, "the VM has no NIC %d (it has %d)", g.NIC, len(s.NICs))
		}
		if seen[g.NIC] {
			return old, fieldErr(f, "NIC %d named twice", g.NIC)
		}
		seen[g.NIC] = true
		s.NICs[g.NIC].Groups = slices.Clone(g.Groups)
	}
	if p.Pool != nil {
		s.Pool = *p.Pool
		if s.Pool == "host" {
			s.Pool = ""
		}
	}
	if p.Resources != nil {
		if *p.Resources == (Resources{}) {
			s.Resources = nil
		} else {
			r := *p.Resources
			s.Resources = &r
		}
	}
	seenRate := map[int]bool{}
	for i, nr := range p.NICRates {
		f := fmt.Sprintf("nic_rates[%d].nic", i)
		if nr.NIC < 0 || nr.NIC >= len(s.NICs) {
			return old, fieldErr(f, "the VM has no NIC %d (it has %d)", nr.NIC, len(s.NICs))
		}
		if seenRate[nr.NIC] {
			return old, fieldErr(f, "NIC %d named twice", nr.NIC)
		}
		seenRate[nr.NIC] = true
		if nr.Rate != nil && *nr.Rate == (NICRate{}) {
			s.NICs[nr.NIC].Rate = nil
		} else if nr.Rate != nil {
			r := *nr.Rate
			s.NICs[nr.NIC].Rate = &r
		} else {
			s.NICs[nr.NIC].Rate = nil
		}
	}
	s.Normalize()
	return s, nil
}

func setInt(dst *int, v *int) {
	if v != nil {
		*dst = *v
	}
}

func setStr(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

// LiveChange reports whether a running VM can take the change: NIC
// security groups and rate limits (the switch re-binds them at once), and
// the VM's pool and resources (admission, then its cgroup follows);
// everything else is read when the hypervisor starts.
func LiveChange(c Change) bool {
	switch {
	case strings.HasPrefix(c.Field, "nics[") && (strings.HasSuffix(c.Field, "].groups") || strings.Contains(c.Field, "].rate")):
		return true
	case c.Field == "pool" || c.Field == "resources" || strings.HasPrefix(c.Field, "resources."):
		return true
	}
	return false
}

// ResourceChange reports whether the change is to the VM's pool or
// resources (applied to its cgroup), as opposed to its NICs.
func ResourceChange(c Change) bool {
	return c.Field == "pool" || c.Field == "resources" || strings.HasPrefix(c.Field, "resources.")
}

// ValidateNICs checks a normalized spec's NICs alone, with the rules of
// Validate: what a live change of security groups must pass without
// requiring the VM's files (a kernel deleted since the start must not
// stop an operator from moving a running VM into a quarantine group).
func (s *Spec) ValidateNICs() error { return s.validateNICs() }
