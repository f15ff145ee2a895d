package hv

import (
	"bufio"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// KVM ioctl numbers (include/uapi/linux/kvm.h): _IO(0xAE, 0x00) and _IO(0xAE, 0x01).
const (
	kvmGetAPIVersion = 0xAE00
	kvmCreateVM      = 0xAE01
)

// ProbeKVM gathers the facts Decide needs. It creates and immediately closes
// one empty VM; it never runs guest code.
func ProbeKVM() KVMProbe {
	var p KVMProbe
	p.CPUFlags = cpuFlags()
	p.KVMModules = kvmModules()
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		p.DevErr = err
		return p
	}
	defer f.Close()
	// SAFETY-free: plain ioctls on an fd we own, no pointers passed.
	v, err := unix.IoctlRetInt(int(f.Fd()), kvmGetAPIVersion)
	if err != nil {
		p.DevErr = err
		return p
	}
	p.APIVersion = v
	vmfd, err := unix.IoctlRetInt(int(f.Fd()), kvmCreateVM)
	if err != nil {
		p.CreateVMErr = err
		return p
	}
	unix.Close(vmfd)
	return p
}

func cpuFlags() []string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "flags" {
			return strings.Fields(v)
		}
	}
	return nil
}

func kvmModules() []string {
	ents, err := os.ReadDir("/sys/module")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "kvm") {
			out = append(out, e.Name())
		}
	}
	return out
}

// HostTSCkHz returns the host TSC frequency in kHz when /proc/cpuinfo shows an
// invariant TSC (constant_tsc and nonstop_tsc), else 0.
//
// Under TCG the guest's TSC runs at the host's rate, and microvm offers the
// guest no HPET or ACPI PM timer to calibrate it against; on a loaded host
// the PIT calibration fails and the guest kernel can stall early in boot.
// Passing the rate as tsc_early_khz skips that calibration.
func HostTSCkHz() int {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	return parseTSCkHz(f)
}
