// Package hostcheck reports which of the host protections Bulwark relies on
// are active and which are missing, for `bulwark host check`.
//
// The decisions are pure: Evaluate takes a Probe (the facts) and returns one
// Check per protection, each with a status, a reason and a remedy. Gather
// (probe_linux.go) collects the facts from /proc, /sys, /dev and a few
// harmless system calls; it needs no daemon and changes nothing.
package hostcheck

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/bulwark-project/bulwark/internal/hv"
)

// Status is a check's verdict.
type Status string

const (
	// StatusOK: the protection is in place.
	StatusOK Status = "ok"
	// StatusMissing: the protection is absent. On a required check this
	// fails `bulwark host check --strict`.
	StatusMissing Status = "missing"
	// StatusWarn: present but weaker than it should be, or a setting that
	// widens the attack surface.
	StatusWarn Status = "warn"
	// StatusInfo: worth knowing; nothing to fix for Bulwark's sake.
	StatusInfo Status = "info"
)

// Check is one protection's verdict.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Required: the daemon cannot confine VMs without it.
	Required bool   `json:"required"`
	Detail   string `json:"detail"`
	// Remedy is one line saying what to do; empty when Status is ok.
	Remedy string `json:"remedy,omitempty"`
}

// Probe is what Gather found out about the host. Every field is plain data
// so that Evaluate can be tested with made-up hosts.
type Probe struct {
	EUID       int
	KVM        hv.KVMProbe
	Cgroup     CgroupProbe
	Seccomp    SeccompProbe
	Namespaces map[string]bool // /proc/self/ns/NAME exists ("mnt", "pid", ...)
	// Sysctls holds the sysctls in SysctlNames that exist on this kernel,
	// by dotted name; a missing key means the kernel has no such sysctl.
	Sysctls       map[string]Sysctl
	Openat2Err    error // openat2(RESOLVE_BENEATH) on "/"
	PidfdOpenErr  error // pidfd_open on our own pid
	PidfdGetfdErr error // pidfd_getfd through that pidfd
	TPM           TPMProbe
	Systemd       SystemdProbe
}

// CgroupProbe describes the cgroup hierarchies mounted under /sys/fs/cgroup.
type CgroupProbe struct {
	V2          bool     // /sys/fs/cgroup is the unified (v2) hierarchy
	Controllers []string // v2: from cgroup.controllers
	V1          []string // v1 hierarchies mounted under /sys/fs/cgroup/NAME
	Hybrid      bool     // v1 plus a v2 tree at /sys/fs/cgroup/unified
}

// SeccompProbe describes the kernel's seccomp support.
type SeccompProbe struct {
	PrctlErr    error    // prctl(PR_GET_SECCOMP)
	Mode        int      // its answer: 0 none, 2 already under a filter
	StatusField bool     // /proc/self/status has a "Seccomp:" line
	Actions     []string // /proc/sys/kernel/seccomp/actions_avail
	ActionsErr  error
}

// Sysctl is one sysctl's value (trimmed) or the error reading it.
type Sysctl struct {
	Value string
	Err   error
}

// TPMProbe lists the TPM device nodes present.
type TPMProbe struct {
	Devices []string // "/dev/tpmrm0", "/dev/tpm0"
	Version string   // /sys/class/tpm/tpm0/tpm_version_major, "" if unknown
}

// SystemdProbe says whether systemd runs the host and the Bulwark unit.
type SystemdProbe struct {
	PID1          string // /proc/1/comm, "" if unreadable
	InvocationID  bool   // this process itself runs under a systemd unit
	UnitPath      string // where `bulwark install` puts the unit
	UnitInstalled bool
	UnitActive    bool // a `bulwark serve` process is in the unit's cgroup
}

// Sysctl thresholds shared with the daemon's start-up warning.
const (
	// MinDgramQlen is the Unix datagram queue length below which switch
	// ports drop bursts (the kernel default is 10).
	MinDgramQlen = 64
	// RecommendedDgramQlen is what systemd sets at boot and what
	// `bulwark install` persists.
	RecommendedDgramQlen = 512
)

// SysctlNames are the sysctls Gather reads.
var SysctlNames = []string{
	"net.unix.max_dgram_qlen",
	"user.max_user_namespaces",
	"kernel.unprivileged_userns_clone",
	"kernel.apparmor_restrict_unprivileged_userns",
	"kernel.kptr_restrict",
	"kernel.dmesg_restrict",
	"kernel.yama.ptrace_scope",
	"kernel.unprivileged_bpf_disabled",
	"fs.protected_symlinks",
	"fs.protected_hardlinks",
}

// Evaluate turns the facts into verdicts, in a fixed order.
func Evaluate(p Probe) []Check {
	out := []Check{
		checkAccel(p.KVM),
		checkCgroup(p.Cgroup),
		checkSeccomp(p.Seccomp),
		checkNamespaces(p.Namespaces),
		checkUserNS(p),
		checkOpenat2(p.Openat2Err),
		checkPidfd(p.PidfdOpenErr, p.PidfdGetfdErr),
		checkDgramQlen(p.Sysctls),
		checkTPM(p.TPM),
	}
	for _, h := range hardening {
		out = append(out, h.check(p.Sysctls))
	}
	return append(out, checkRoot(p.EUID), checkSystemd(p.Systemd))
}

// Report is Evaluate's result with totals, as `host check -o json` prints it.
type Report struct {
	Checks []Check        `json:"checks"`
	Counts map[Status]int `json:"counts"`
	// RequiredMissing names the required checks that are missing; a
	// non-empty list fails --strict.
	RequiredMissing []string `json:"required_missing"`
}

// NewReport totals checks.
func NewReport(checks []Check) Report {
	r := Report{Checks: checks, Counts: map[Status]int{}, RequiredMissing: []string{}}
	for _, c := range checks {
		r.Counts[c.Status]++
		if c.Required && c.Status == StatusMissing {
			r.RequiredMissing = append(r.RequiredMissing, c.Name)
		}
	}
	return r
}

func checkAccel(k hv.KVMProbe) Check {
	c := Check{Name: "accelerator"}
	a, err := hv.Decide("auto", k)
	switch {
	case err != nil: // "auto" is always a known request; kept for safety
		c.Status, c.Detail = StatusWarn, err.Error()
	case a.Name == "kvm":
		c.Status, c.Detail = StatusOK, "kvm: "+a.Reason
	default:
		c.Status, c.Detail = StatusWarn, "tcg: "+a.Reason
		c.Remedy = "enable VT-x/AMD-V in the firmware and load kvm_intel or kvm_amd; until then VMs run under TCG emulation (slow, and its JIT needs writable+executable memory)"
	}
	return c
}

func checkCgroup(p CgroupProbe) Check {
	c := Check{Name: "cgroup", Required: true}
	need := []string{"memory", "pids"}
	switch {
	case p.V2:
		if miss := missingFrom(p.Controllers, need); len(miss) > 0 {
			c.Status = StatusMissing
			c.Detail = fmt.Sprintf("v2 without the %s controller (available: %s)", strings.Join(miss, ", "), listOrNone(p.Controllers))
			c.Remedy = "use a kernel with CONFIG_MEMCG and CONFIG_CGROUP_PIDS (some boards also need cgroup_enable=memory); in a container, have the host delegate them"
			return c
		}
		c.Status, c.Detail = StatusOK, "v2 (unified); controllers: "+strings.Join(p.Controllers, " ")
	case len(p.V1) > 0:
		kind := "v1"
		if p.Hybrid {
			kind = "v1 (hybrid, used as v1)"
		}
		if miss := missingFrom(p.V1, need); len(miss) > 0 {
			c.Status = StatusMissing
			c.Detail = fmt.Sprintf("%s without the %s hierarchy (mounted: %s)", kind, strings.Join(miss, ", "), strings.Join(p.V1, " "))
			c.Remedy = "boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2 with memory and pids controllers)"
			return c
		}
		c.Status = StatusWarn
		c.Detail = kind + "; hierarchies: " + strings.Join(p.V1, " ") + "; supported, but cgroup v2 is the production target"
		c.Remedy = "boot with systemd.unified_cgroup_hierarchy=1 (the default since systemd 247, Debian 11)"
	default:
		c.Status = StatusMissing
		c.Detail = "no cgroup hierarchy under /sys/fs/cgroup"
		c.Remedy = "mount cgroup2 on /sys/fs/cgroup (systemd does at boot)"
	}
	return c
}

func checkSeccomp(p SeccompProbe) Check {
	c := Check{Name: "seccomp", Required: true, Status: StatusMissing}
	const kernel = "use a kernel with CONFIG_SECCOMP and CONFIG_SECCOMP_FILTER (Linux 4.14 or newer for kill_process)"
	switch {
	case p.PrctlErr != nil:
		c.Detail, c.Remedy = "prctl(PR_GET_SECCOMP): "+p.PrctlErr.Error(), kernel
	case !p.StatusField:
		c.Detail, c.Remedy = "/proc/self/status has no Seccomp: field", kernel
	case p.ActionsErr != nil:
		c.Detail, c.Remedy = "filter actions unknown: "+p.ActionsErr.Error(), kernel
	default:
		if miss := missingFrom(p.Actions, []string{"kill_process", "trap"}); len(miss) > 0 {
			c.Detail = fmt.Sprintf("kernel lacks the %s action (available: %s)", strings.Join(miss, ", "), listOrNone(p.Actions))
			c.Remedy = kernel
			return c
		}
		c.Status = StatusOK
		c.Detail = "filter mode available; actions: " + strings.Join(p.Actions, " ")
		if p.Mode != 0 {
			c.Detail += fmt.Sprintf("; this process already runs in mode %d (filters stack)", p.Mode)
		}
	}
	return c
}

// jailNamespaces are the namespaces internal/jail creates for every VMM.
var jailNamespaces = []string{"mnt", "pid", "net", "ipc", "uts", "cgroup"}

func checkNamespaces(ns map[string]bool) Check {
	c := Check{Name: "namespaces", Required: true}
	var have, miss []string
	for _, n := range jailNamespaces {
		if ns[n] {
			have = append(have, n)
		} else {
			miss = append(miss, n)
		}
	}
	if len(miss) > 0 {
		c.Status = StatusMissing
		c.Detail = fmt.Sprintf("no %s namespace (/proc/self/ns/ lacks it)", strings.Join(miss, ", "))
		c.Remedy = "use a kernel with CONFIG_NAMESPACES and the UTS, IPC, PID, NET and CGROUP namespace options"
		return c
	}
	c.Status, c.Detail = StatusOK, strings.Join(have, " ")
	return c
}

// checkUserNS warns when unprivileged users may create user namespaces:
// inside one they hold capabilities over namespaced kernel code (netfilter,
// mounts of some file systems, ...) that many kernel exploits start from,
// and a compromised VMM is such an unprivileged user. Bulwark itself never
// needs them.
func checkUserNS(p Probe) Check {
	c := Check{Name: "userns", Status: StatusInfo}
	maxNS, hasMax := p.Sysctls["user.max_user_namespaces"]
	clone, hasClone := p.Sysctls["kernel.unprivileged_userns_clone"]
	aa, hasAA := p.Sysctls["kernel.apparmor_restrict_unprivileged_userns"]
	switch {
	case !p.Namespaces["user"]:
		c.Detail = "this kernel has no user namespaces"
	case hasMax && maxNS.Value == "0":
		c.Detail = "user namespaces disabled (user.max_user_namespaces = 0)"
	case hasClone && clone.Value == "0":
		c.Detail = "unprivileged user namespaces disabled (kernel.unprivileged_userns_clone = 0)"
	case hasAA && aa.Value == "1":
		c.Detail = "unprivileged user namespaces restricted by AppArmor (kernel.apparmor_restrict_unprivileged_userns = 1)"
	default:
		c.Status = StatusWarn
		c.Detail = "unprivileged users may create user namespaces, which widens the kernel attack surface a compromised VMM can reach"
		if hasMax {
			c.Detail += " (user.max_user_namespaces = " + maxNS.Value + ")"
		}
		if hasClone {
			c.Remedy = "if nothing here needs them (rootless containers and browser sandboxes do): sysctl -w kernel.unprivileged_userns_clone=0, persisted in /etc/sysctl.d/"
		} else {
			c.Remedy = "if nothing here needs them (rootless containers and browser sandboxes do): sysctl -w user.max_user_namespaces=0, persisted in /etc/sysctl.d/"
		}
	}
	return c
}

func checkOpenat2(err error) Check {
	c := Check{Name: "openat2", Required: true}
	if err != nil {
		c.Status = StatusMissing
		c.Detail = "openat2 with RESOLVE_BENEATH: " + err.Error()
		c.Remedy = "Linux 5.6 or newer; in a container, a seccomp profile that allows openat2"
		return c
	}
	c.Status, c.Detail = StatusOK, "openat2 with RESOLVE_BENEATH works"
	return c
}

func checkPidfd(openErr, getfdErr error) Check {
	c := Check{Name: "pidfd", Required: true}
	var bad []string
	if openErr != nil {
		bad = append(bad, "pidfd_open: "+openErr.Error())
	}
	if getfdErr != nil {
		bad = append(bad, "pidfd_getfd: "+getfdErr.Error())
	}
	if len(bad) > 0 {
		c.Status = StatusMissing
		c.Detail = strings.Join(bad, "; ")
		c.Remedy = "Linux 5.6 or newer (pidfd_open came in 5.3, pidfd_getfd in 5.6); in a container, a seccomp profile that allows both"
		return c
	}
	c.Status, c.Detail = StatusOK, "pidfd_open and pidfd_getfd work"
	return c
}

func checkDgramQlen(s map[string]Sysctl) Check {
	const name = "net.unix.max_dgram_qlen"
	c := Check{Name: name}
	remedy := fmt.Sprintf("sysctl -w %s=%d; `bulwark install` persists it in /etc/sysctl.d/", name, RecommendedDgramQlen)
	v, ok := s[name]
	n, err := strconv.Atoi(v.Value)
	switch {
	case !ok || v.Err != nil || err != nil:
		c.Status, c.Detail, c.Remedy = StatusWarn, "unreadable: "+sysctlErr(v, ok, err), remedy
	case n < MinDgramQlen:
		c.Status, c.Remedy = StatusWarn, remedy
		c.Detail = fmt.Sprintf("%d: switch ports drop bursts below %d", n, MinDgramQlen)
	case n < RecommendedDgramQlen:
		c.Status, c.Remedy = StatusInfo, remedy
		c.Detail = fmt.Sprintf("%d (enough; %d recommended)", n, RecommendedDgramQlen)
	default:
		c.Status, c.Detail = StatusOK, strconv.Itoa(n)
	}
	return c
}

func checkTPM(p TPMProbe) Check {
	c := Check{Name: "tpm"}
	if len(p.Devices) == 0 {
		c.Status = StatusWarn
		c.Detail = "no /dev/tpmrm0 or /dev/tpm0: measured launch can only use swtpm (--tpm swtpm:SOCKET) or run with --tpm none, where nothing is hardware-rooted"
		c.Remedy = "enable the TPM in the firmware (driver tpm_tis or tpm_crb); swtpm serves for development"
		return c
	}
	c.Status, c.Detail = StatusOK, strings.Join(p.Devices, " ")
	switch p.Version {
	case "":
	case "2":
		c.Detail += " (TPM 2.0)"
	default:
		c.Status = StatusWarn
		c.Detail += " (TPM " + p.Version + ".x): measured launch will need a TPM 2.0"
		c.Remedy = "switch the firmware TPM to 2.0 mode if it offers one"
	}
	return c
}

// hardeningSysctl is a kernel setting that narrows what an unprivileged
// process (such as a compromised VMM) learns or reaches.
type hardeningSysctl struct {
	name   string
	want   string         // the value the remedy sets
	good   func(int) bool // value acceptable?
	why    string         // what a bad value gives an attacker
	absent string         // detail when the kernel lacks the sysctl
}

var hardening = []hardeningSysctl{
	{"kernel.kptr_restrict", "1", atLeast(1), "kernel addresses in /proc help defeat KASLR", "not in this kernel"},
	{"kernel.dmesg_restrict", "1", equals(1), "the kernel log shows addresses and state to every user", "not in this kernel"},
	{"kernel.yama.ptrace_scope", "1", between(1, 2), "", "Yama is not enabled"},
	{"kernel.unprivileged_bpf_disabled", "1", atLeast(1), "unprivileged eBPF is a frequent kernel exploit vector", "not in this kernel"},
	{"fs.protected_symlinks", "1", equals(1), "symlink races in sticky world-writable directories", "not in this kernel"},
	{"fs.protected_hardlinks", "1", equals(1), "hardlinks to files the user cannot write", "not in this kernel"},
}

func (h hardeningSysctl) check(s map[string]Sysctl) Check {
	c := Check{Name: h.name}
	v, ok := s[h.name]
	if !ok {
		c.Status, c.Detail = StatusInfo, h.absent
		return c
	}
	n, err := strconv.Atoi(v.Value)
	if v.Err != nil || err != nil {
		c.Status, c.Detail = StatusWarn, "unreadable: "+sysctlErr(v, true, err)
		c.Remedy = "check that /proc/sys is mounted and readable"
		return c
	}
	if h.good(n) {
		c.Status, c.Detail = StatusOK, v.Value
		return c
	}
	c.Status = StatusWarn
	c.Detail = fmt.Sprintf("%d: %s", n, h.why)
	c.Remedy = fmt.Sprintf("sysctl -w %s=%s, persisted in /etc/sysctl.d/", h.name, h.want)
	if h.name == "kernel.yama.ptrace_scope" {
		if n == 0 {
			c.Detail = "0: any process may trace others of its uid"
		} else {
			// Yama's attach check runs for pidfd_getfd too, and scope 3
			// refuses it to root as well; it cannot be lowered until reboot.
			c.Detail = fmt.Sprintf("%d: no process may attach to another, root included, so the daemon's pidfd_getfd on its VMs fails", n)
			c.Remedy = "set kernel.yama.ptrace_scope=2 in /etc/sysctl.d/ and reboot (3 cannot be lowered at run time)"
		}
	}
	return c
}

func checkRoot(euid int) Check {
	c := Check{Name: "root", Required: true}
	if euid == 0 {
		c.Status, c.Detail = StatusOK, "running as root"
		return c
	}
	c.Status = StatusMissing
	c.Detail = fmt.Sprintf("running as uid %d: the daemon needs root to jail VMs (namespaces, mounts, cgroups, per-VM uids); the checks above saw this uid's view", euid)
	c.Remedy = "run bulwark serve as root (the systemd unit does), and this check as root to see what the daemon sees"
	return c
}

func checkSystemd(p SystemdProbe) Check {
	c := Check{Name: "systemd", Status: StatusInfo}
	switch {
	case p.PID1 != "systemd":
		c.Detail = fmt.Sprintf("PID 1 is %q, not systemd: the unit's sandboxing does not apply", p.PID1)
		c.Remedy = "under another init, run bulwark serve with the restrictions docs/hardening.md lists"
	case !p.UnitInstalled:
		c.Detail = "no unit at " + p.UnitPath
		c.Remedy = "bulwark install"
	case !p.UnitActive:
		c.Detail = "unit installed at " + p.UnitPath + ", not running"
		c.Remedy = "systemctl enable --now bulwark"
	default:
		c.Status, c.Detail = StatusOK, "unit installed at "+p.UnitPath+" and running"
	}
	if p.InvocationID {
		c.Detail += "; this check itself runs under a systemd unit"
	}
	return c
}

func atLeast(min int) func(int) bool    { return func(n int) bool { return n >= min } }
func equals(want int) func(int) bool    { return func(n int) bool { return n == want } }
func between(lo, hi int) func(int) bool { return func(n int) bool { return n >= lo && n <= hi } }

// missingFrom returns the names in need that have is lacks, in need's order.
func missingFrom(have, need []string) []string {
	set := map[string]bool{}
	for _, h := range have {
		set[h] = true
	}
	var out []string
	for _, n := range need {
		if !set[n] {
			out = append(out, n)
		}
	}
	return out
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	s := append([]string(nil), l...)
	sort.Strings(s)
	return strings.Join(s, " ")
}

func sysctlErr(v Sysctl, present bool, parseErr error) string {
	switch {
	case !present:
		return "not present"
	case v.Err != nil:
		return v.Err.Error()
	case parseErr != nil:
		return fmt.Sprintf("value %q is not a number", v.Value)
	}
	return "unknown"
}
