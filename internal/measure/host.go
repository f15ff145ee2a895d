package measure

import (
	"crypto/sha256"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Host is the hypervisor layer measured into PCR 11 at daemon start.
type Host struct {
	// Exe is the bulwark binary; default /proc/self/exe.
	Exe string
	// QEMU is the QEMU binary the daemon will run (a path).
	QEMU string
	// Firmware is every file QEMU loads besides its binary, already open:
	// the very descriptors passed to each QEMU (qemu.PinnedFirmware), so
	// what is measured is what is loaded. Measured in this order.
	Firmware []Firmware
	// Seccomp maps each embedded filter name to its file's bytes.
	Seccomp map[string][]byte
	// Jail is false under --unsafe-no-jail.
	Jail bool
	// CgroupBase is the daemon's cgroup base group.
	CgroupBase string
}

// Firmware is one firmware file QEMU loads.
type Firmware struct {
	// Name is the name QEMU knows the file by (bios-microvm.bin), which
	// is what a policy names; it must be a plain file name.
	Name string
	// File is open read-only by its resolved path (File.Name()); it is
	// hashed with pread and not closed.
	File *os.File
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
// bulwark binary, QEMU binary, QEMU's firmware (h.Firmware's order),
// seccomp filters by name, hardening config.
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
	for _, fw := range h.Firmware {
		if !validFirmwareName(fw.Name) || fw.File == nil {
			return fmt.Errorf("measure: qemu-firmware %q: not a plain file name, or no file", fw.Name)
		}
		d, n, err := HashFile(fw.File)
		if err != nil {
			return fmt.Errorf("measure: qemu-firmware %s: %w", fw.Name, err)
		}
		if err := m.Extend(PCRHost, d, fmt.Sprintf("qemu-firmware name=%s path=%s size=%d", fw.Name, quote(fw.File.Name()), n)); err != nil {
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

// validFirmwareName accepts what event data can carry unquoted: 1 to 64
// bytes of letters, digits, '.', '_' and '-', not "." or "..".
func validFirmwareName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
