package measure

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"
)

// Host is the hypervisor layer measured into PCR 11 at daemon start.
type Host struct {
	// Exe is the bulwark binary; default /proc/self/exe.
	Exe string
	// QEMU is the QEMU binary the daemon will run (a path).
	QEMU string
	// Seccomp maps each embedded filter name to its file's bytes.
	Seccomp map[string][]byte
	// Jail is false under --unsafe-no-jail.
	Jail bool
	// CgroupBase is the daemon's cgroup base group.
	CgroupBase string
}

// Hardening is the canonical string of the effective hardening
// configuration that PCR 11 records: one "key=value" per line, sorted keys.
func (h Host) Hardening() string {
	names := make([]string, 0, len(h.Seccomp))
	for n := range h.Seccomp {
		names = append(names, n)
	}
	sort.Strings(names)
	return fmt.Sprintf("cgroup_base=%s\njail=%t\nseccomp=%s\n", h.CgroupBase, h.Jail, strings.Join(names, ","))
}

// MeasureHost measures the hypervisor layer into PCR 11, in this order:
// bulwark binary, QEMU binary, seccomp filters by name, hardening config.
func (m *Measurer) MeasureHost(h Host) error {
	if h.Exe == "" {
		h.Exe = "/proc/self/exe"
	}
	for _, b := range []struct{ kind, path string }{{"bulwark-binary", h.Exe}, {"qemu-binary", h.QEMU}} {
		d, n, err := hashPath(b.path)
		if err != nil {
			return fmt.Errorf("measure: %s %s: %w", b.kind, b.path, err)
		}
		if err := m.Extend(PCRHost, d, fmt.Sprintf("%s path=%s size=%d", b.kind, quote(b.path), n)); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(h.Seccomp))
	for n := range h.Seccomp {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := m.Extend(PCRHost, sha256.Sum256(h.Seccomp[n]), fmt.Sprintf("seccomp-filter name=%s size=%d", n, len(h.Seccomp[n]))); err != nil {
			return err
		}
	}
	hard := h.Hardening()
	return m.Extend(PCRHost, sha256.Sum256([]byte(hard)), "hardening-config "+quote(hard))
}
