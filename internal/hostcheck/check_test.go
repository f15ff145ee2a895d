package hostcheck

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bulwark-project/bulwark/internal/hv"
)

// goodHost is a host where every check passes.
func goodHost() Probe {
	return Probe{
		EUID:   0,
		KVM:    hv.KVMProbe{CPUFlags: []string{"fpu", "vmx"}, KVMModules: []string{"kvm", "kvm_intel"}, APIVersion: 12},
		Cgroup: CgroupProbe{V2: true, Controllers: []string{"cpuset", "cpu", "io", "memory", "pids"}},
		Seccomp: SeccompProbe{StatusField: true,
			Actions: []string{"kill_process", "kill_thread", "trap", "errno", "user_notif", "trace", "log", "allow"}},
		Namespaces: map[string]bool{"mnt": true, "pid": true, "net": true, "ipc": true, "uts": true, "cgroup": true, "user": true, "time": true},
		Sysctls: map[string]Sysctl{
			"net.unix.max_dgram_qlen":          {Value: "512"},
			"user.max_user_namespaces":         {Value: "63000"},
			"kernel.unprivileged_userns_clone": {Value: "0"},
			"kernel.kptr_restrict":             {Value: "1"},
			"kernel.dmesg_restrict":            {Value: "1"},
			"kernel.yama.ptrace_scope":         {Value: "1"},
			"kernel.unprivileged_bpf_disabled": {Value: "2"},
			"fs.protected_symlinks":            {Value: "1"},
			"fs.protected_hardlinks":           {Value: "1"},
		},
		TPM:     TPMProbe{Devices: []string{"/dev/tpmrm0", "/dev/tpm0"}, Version: "2"},
		Systemd: SystemdProbe{PID1: "systemd", UnitPath: "/etc/systemd/system/bulwark.service", UnitInstalled: true, UnitActive: true},
	}
}

func TestGoodHost(t *testing.T) {
	for _, c := range Evaluate(goodHost()) {
		want := StatusOK
		if c.Name == "userns" { // disabled unprivileged user namespaces are "info"
			want = StatusInfo
		}
		if c.Status != want || c.Remedy != "" {
			t.Errorf("%s: %s %q (remedy %q), want %s without remedy", c.Name, c.Status, c.Detail, c.Remedy, want)
		}
	}
	if r := NewReport(Evaluate(goodHost())); len(r.RequiredMissing) != 0 {
		t.Errorf("RequiredMissing = %v", r.RequiredMissing)
	}
}

func TestEvaluate(t *testing.T) {
	sysctl := func(name, v string) func(*Probe) {
		return func(p *Probe) { p.Sysctls[name] = Sysctl{Value: v} }
	}
	noSysctl := func(name string) func(*Probe) {
		return func(p *Probe) { delete(p.Sysctls, name) }
	}
	tests := []struct {
		name   string
		change func(*Probe)
		check  string
		status Status
		detail string // substring of Detail
	}{
		// accelerator: hv.Decide's verdict and reason
		{"kvm", func(p *Probe) {}, "accelerator", StatusOK, "kvm: hardware KVM (vmx, kvm_intel)"},
		{"no /dev/kvm", func(p *Probe) { p.KVM.DevErr = unix.ENOENT }, "accelerator", StatusWarn, "tcg: no hardware KVM: /dev/kvm: no such file"},
		{"software kvm", func(p *Probe) { p.KVM.CPUFlags, p.KVM.KVMModules = []string{"fpu"}, []string{"kvm", "kvm_pvm"} }, "accelerator", StatusWarn, "no vmx/svm"},

		// cgroup
		{"v2 without pids", func(p *Probe) { p.Cgroup.Controllers = []string{"cpu", "memory"} }, "cgroup", StatusMissing, "without the pids controller"},
		{"v2 without both", func(p *Probe) { p.Cgroup.Controllers = nil }, "cgroup", StatusMissing, "memory, pids controller (available: none)"},
		{"v1", func(p *Probe) { p.Cgroup = CgroupProbe{V1: []string{"cpu", "memory", "pids"}} }, "cgroup", StatusWarn, "v1; hierarchies: cpu memory pids"},
		{"hybrid", func(p *Probe) { p.Cgroup = CgroupProbe{V1: []string{"memory", "pids"}, Hybrid: true} }, "cgroup", StatusWarn, "hybrid"},
		{"v1 without memory", func(p *Probe) { p.Cgroup = CgroupProbe{V1: []string{"cpu", "pids"}} }, "cgroup", StatusMissing, "without the memory hierarchy"},
		{"no cgroups", func(p *Probe) { p.Cgroup = CgroupProbe{} }, "cgroup", StatusMissing, "no cgroup hierarchy"},

		// seccomp
		{"seccomp filtered already", func(p *Probe) { p.Seccomp.Mode = 2 }, "seccomp", StatusOK, "already runs in mode 2"},
		{"no seccomp", func(p *Probe) { p.Seccomp.PrctlErr = unix.EINVAL }, "seccomp", StatusMissing, "prctl(PR_GET_SECCOMP): invalid argument"},
		{"no status field", func(p *Probe) { p.Seccomp.StatusField = false }, "seccomp", StatusMissing, "no Seccomp: field"},
		{"no filter", func(p *Probe) { p.Seccomp.Actions, p.Seccomp.ActionsErr = nil, unix.ENOENT }, "seccomp", StatusMissing, "filter actions unknown"},
		{"old kernel", func(p *Probe) { p.Seccomp.Actions = []string{"kill_thread", "trap", "errno", "allow"} }, "seccomp", StatusMissing, "lacks the kill_process action"},
		{"no trap", func(p *Probe) { p.Seccomp.Actions = []string{"kill_process", "allow"} }, "seccomp", StatusMissing, "lacks the trap action"},

		// namespaces
		{"no net ns", func(p *Probe) { p.Namespaces["net"] = false }, "namespaces", StatusMissing, "no net namespace"},
		{"no cgroup ns", func(p *Probe) { delete(p.Namespaces, "cgroup") }, "namespaces", StatusMissing, "no cgroup namespace"},
		{"all ns", func(p *Probe) {}, "namespaces", StatusOK, "mnt pid net ipc uts cgroup"},

		// user namespaces: warn only when unprivileged users get them
		{"userns open", sysctl("kernel.unprivileged_userns_clone", "1"), "userns", StatusWarn, "unprivileged users may create"},
		{"userns open, no debian knob", noSysctl("kernel.unprivileged_userns_clone"), "userns", StatusWarn, "user.max_user_namespaces = 63000"},
		{"userns off", sysctl("user.max_user_namespaces", "0"), "userns", StatusInfo, "disabled (user.max_user_namespaces = 0)"},
		{"userns apparmor", func(p *Probe) {
			delete(p.Sysctls, "kernel.unprivileged_userns_clone")
			p.Sysctls["kernel.apparmor_restrict_unprivileged_userns"] = Sysctl{Value: "1"}
		}, "userns", StatusInfo, "restricted by AppArmor"},
		{"no userns", func(p *Probe) { p.Namespaces["user"] = false }, "userns", StatusInfo, "no user namespaces"},

		// system calls
		{"no openat2", func(p *Probe) { p.Openat2Err = unix.ENOSYS }, "openat2", StatusMissing, "function not implemented"},
		{"openat2 filtered", func(p *Probe) { p.Openat2Err = unix.EPERM }, "openat2", StatusMissing, "operation not permitted"},
		{"no pidfd_getfd", func(p *Probe) { p.PidfdGetfdErr = unix.ENOSYS }, "pidfd", StatusMissing, "pidfd_getfd: function not implemented"},
		{"no pidfd_open", func(p *Probe) { p.PidfdOpenErr, p.PidfdGetfdErr = unix.ENOSYS, errors.New("not tried") }, "pidfd", StatusMissing, "pidfd_open: function not implemented; pidfd_getfd: not tried"},

		// datagram queue
		{"qlen default", sysctl("net.unix.max_dgram_qlen", "10"), "net.unix.max_dgram_qlen", StatusWarn, "10: switch ports drop bursts"},
		{"qlen 64", sysctl("net.unix.max_dgram_qlen", "64"), "net.unix.max_dgram_qlen", StatusInfo, "512 recommended"},
		{"qlen 511", sysctl("net.unix.max_dgram_qlen", "511"), "net.unix.max_dgram_qlen", StatusInfo, "511"},
		{"qlen big", sysctl("net.unix.max_dgram_qlen", "4096"), "net.unix.max_dgram_qlen", StatusOK, "4096"},
		{"qlen missing", noSysctl("net.unix.max_dgram_qlen"), "net.unix.max_dgram_qlen", StatusWarn, "unreadable: not present"},
		{"qlen garbage", sysctl("net.unix.max_dgram_qlen", "x"), "net.unix.max_dgram_qlen", StatusWarn, `value "x" is not a number`},

		// TPM
		{"no tpm", func(p *Probe) { p.TPM = TPMProbe{} }, "tpm", StatusWarn, "no /dev/tpmrm0"},
		{"tpm 1.2", func(p *Probe) { p.TPM = TPMProbe{Devices: []string{"/dev/tpm0"}, Version: "1"} }, "tpm", StatusWarn, "TPM 1.x"},
		{"tpm unknown version", func(p *Probe) { p.TPM.Version = "" }, "tpm", StatusOK, "/dev/tpmrm0 /dev/tpm0"},

		// hardening sysctls
		{"kptr 0", sysctl("kernel.kptr_restrict", "0"), "kernel.kptr_restrict", StatusWarn, "KASLR"},
		{"kptr 2", sysctl("kernel.kptr_restrict", "2"), "kernel.kptr_restrict", StatusOK, "2"},
		{"dmesg 0", sysctl("kernel.dmesg_restrict", "0"), "kernel.dmesg_restrict", StatusWarn, "kernel log"},
		{"yama absent", noSysctl("kernel.yama.ptrace_scope"), "kernel.yama.ptrace_scope", StatusInfo, "Yama is not enabled"},
		{"yama 0", sysctl("kernel.yama.ptrace_scope", "0"), "kernel.yama.ptrace_scope", StatusWarn, "any process may trace"},
		{"yama 2", sysctl("kernel.yama.ptrace_scope", "2"), "kernel.yama.ptrace_scope", StatusOK, "2"},
		{"yama 3", sysctl("kernel.yama.ptrace_scope", "3"), "kernel.yama.ptrace_scope", StatusWarn, "pidfd_getfd on its VMs fails"},
		{"bpf 0", sysctl("kernel.unprivileged_bpf_disabled", "0"), "kernel.unprivileged_bpf_disabled", StatusWarn, "eBPF"},
		{"bpf 1", sysctl("kernel.unprivileged_bpf_disabled", "1"), "kernel.unprivileged_bpf_disabled", StatusOK, "1"},
		{"symlinks 0", sysctl("fs.protected_symlinks", "0"), "fs.protected_symlinks", StatusWarn, "symlink"},
		{"hardlinks 0", sysctl("fs.protected_hardlinks", "0"), "fs.protected_hardlinks", StatusWarn, "hardlink"},
		{"sysctl unreadable", func(p *Probe) { p.Sysctls["kernel.kptr_restrict"] = Sysctl{Err: unix.EACCES} }, "kernel.kptr_restrict", StatusWarn, "permission denied"},
		{"sysctl absent", noSysctl("fs.protected_hardlinks"), "fs.protected_hardlinks", StatusInfo, "not in this kernel"},

		// root
		{"not root", func(p *Probe) { p.EUID = 1000 }, "root", StatusMissing, "uid 1000"},

		// systemd
		{"no systemd", func(p *Probe) { p.Systemd.PID1 = "init" }, "systemd", StatusInfo, `PID 1 is "init"`},
		{"no unit", func(p *Probe) { p.Systemd.UnitInstalled, p.Systemd.UnitActive = false, false }, "systemd", StatusInfo, "no unit at /etc/systemd/system/bulwark.service"},
		{"unit stopped", func(p *Probe) { p.Systemd.UnitActive = false }, "systemd", StatusInfo, "not running"},
		{"check under a unit", func(p *Probe) { p.Systemd.InvocationID = true }, "systemd", StatusOK, "this check itself runs under a systemd unit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := goodHost()
			tt.change(&p)
			c := find(t, Evaluate(p), tt.check)
			if c.Status != tt.status || !strings.Contains(c.Detail, tt.detail) {
				t.Errorf("%s = %s %q, want %s containing %q", tt.check, c.Status, c.Detail, tt.status, tt.detail)
			}
		})
	}
}

// TestVerdictShape: whatever the host, every check has a name, a known
// status and a detail; every missing or warn verdict says what to do in one
// line; only the checks the daemon cannot do without are required.
func TestVerdictShape(t *testing.T) {
	bad := Probe{EUID: 1000, KVM: hv.KVMProbe{DevErr: unix.ENOENT},
		Seccomp: SeccompProbe{PrctlErr: unix.EINVAL}, Openat2Err: unix.ENOSYS,
		PidfdOpenErr: unix.ENOSYS, PidfdGetfdErr: unix.ENOSYS,
		Sysctls: map[string]Sysctl{"kernel.kptr_restrict": {Value: "0"}, "kernel.yama.ptrace_scope": {Value: "3"}}}
	required := map[string]bool{"cgroup": true, "seccomp": true, "namespaces": true, "openat2": true, "pidfd": true, "root": true}
	for _, p := range []Probe{goodHost(), bad, {}} {
		checks := Evaluate(p)
		if len(checks) != 11+len(hardening) {
			t.Errorf("%d checks, want %d", len(checks), 11+len(hardening))
		}
		seen := map[string]bool{}
		for _, c := range checks {
			if c.Name == "" || seen[c.Name] {
				t.Errorf("check name %q empty or repeated", c.Name)
			}
			seen[c.Name] = true
			switch c.Status {
			case StatusOK, StatusMissing, StatusWarn, StatusInfo:
			default:
				t.Errorf("%s: unknown status %q", c.Name, c.Status)
			}
			if c.Detail == "" {
				t.Errorf("%s: no detail", c.Name)
			}
			if (c.Status == StatusMissing || c.Status == StatusWarn) && c.Remedy == "" {
				t.Errorf("%s: %s without a remedy", c.Name, c.Status)
			}
			if c.Status == StatusOK && c.Remedy != "" {
				t.Errorf("%s: ok with a remedy", c.Name)
			}
			if strings.Contains(c.Detail+c.Remedy, "\n") {
				t.Errorf("%s: detail or remedy spans lines", c.Name)
			}
			if c.Required != required[c.Name] {
				t.Errorf("%s: required = %v", c.Name, c.Required)
			}
		}
	}
	r := NewReport(Evaluate(bad))
	want := []string{"cgroup", "seccomp", "namespaces", "openat2", "pidfd", "root"}
	if strings.Join(r.RequiredMissing, ",") != strings.Join(want, ",") {
		t.Errorf("RequiredMissing = %v, want %v", r.RequiredMissing, want)
	}
	total := 0
	for _, n := range r.Counts {
		total += n
	}
	if total != len(r.Checks) {
		t.Errorf("counts %v add up to %d, want %d", r.Counts, total, len(r.Checks))
	}
}

func find(t *testing.T, checks []Check, name string) Check {
	t.Helper()
	for _, c := range checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q", name)
	return Check{}
}
