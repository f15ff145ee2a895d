package hv

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Accel is the accelerator a VM runs under, with the reason it was chosen.
type Accel struct {
	Name   string `json:"name"` // "kvm" or "tcg"
	Reason string `json:"reason"`
}

// KVMProbe is what the host told us about hardware virtualization. It is
// gathered by ProbeKVM (accel_linux.go); the decision below is pure.
type KVMProbe struct {
	CPUFlags    []string // from /proc/cpuinfo "flags"
	KVMModules  []string // loaded modules whose name starts with "kvm"
	DevErr      error    // opening /dev/kvm
	APIVersion  int      // KVM_GET_API_VERSION, 12 on every sane kernel
	CreateVMErr error    // KVM_CREATE_VM
}

// Decide picks the accelerator for a request of "auto", "kvm" or "tcg".
//
// /dev/kvm existing is not enough: some sandboxes provide a KVM device backed
// by a software implementation (for example kvm_pvm) that runs only guests
// built for it. Hardware KVM needs the CPU's vmx or svm flag and the matching
// kvm_intel or kvm_amd module, and a VM must actually be creatable.
func Decide(request string, p KVMProbe) (Accel, error) {
	ok, why := p.hardwareKVM()
	switch request {
	case "tcg":
		return Accel{Name: "tcg", Reason: "requested"}, nil
	case "kvm":
		if !ok {
			return Accel{}, fmt.Errorf("kvm requested but not usable: %s", why)
		}
		return Accel{Name: "kvm", Reason: "requested; " + why}, nil
	case "", "auto":
		if ok {
			return Accel{Name: "kvm", Reason: why}, nil
		}
		return Accel{Name: "tcg", Reason: "no hardware KVM: " + why}, nil
	}
	return Accel{}, fmt.Errorf("unknown accelerator %q", request)
}

func (p KVMProbe) hardwareKVM() (bool, string) {
	if p.DevErr != nil {
		return false, "/dev/kvm: " + p.DevErr.Error()
	}
	if p.APIVersion != 12 {
		return false, fmt.Sprintf("/dev/kvm API version %d, want 12", p.APIVersion)
	}
	flag, mod := "", ""
	for _, f := range p.CPUFlags {
		switch f {
		case "vmx":
			flag, mod = "vmx", "kvm_intel"
		case "svm":
			flag, mod = "svm", "kvm_amd"
		}
	}
	if flag == "" {
		return false, fmt.Sprintf("CPU has no vmx/svm flag (kvm modules: %s)", strings.Join(p.KVMModules, ","))
	}
	found := false
	for _, m := range p.KVMModules {
		if m == mod {
			found = true
		}
	}
	// A kernel with KVM built in lists no module; accept that only when no
	// other kvm_* provider (such as kvm_pvm) is loaded.
	if !found {
		for _, m := range p.KVMModules {
			if m != "kvm" {
				return false, fmt.Sprintf("/dev/kvm is provided by %s, not %s", m, mod)
			}
		}
	}
	if p.CreateVMErr != nil {
		return false, "KVM_CREATE_VM: " + p.CreateVMErr.Error()
	}
	return true, fmt.Sprintf("hardware KVM (%s, %s)", flag, mod)
}

// parseTSCkHz reads the first CPU's "cpu MHz" and "flags" from a
// /proc/cpuinfo stream; see HostTSCkHz.
func parseTSCkHz(r io.Reader) int {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	mhz, constant, nonstop := 0.0, false, false
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			if strings.TrimSpace(sc.Text()) == "" && mhz > 0 {
				break // end of the first CPU's block
			}
			continue
		}
		switch strings.TrimSpace(k) {
		case "cpu MHz":
			mhz, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		case "flags":
			for _, f := range strings.Fields(v) {
				constant = constant || f == "constant_tsc"
				nonstop = nonstop || f == "nonstop_tsc"
			}
		}
	}
	if !constant || !nonstop || !(mhz >= 100 && mhz <= 10000) { // NaN fails too
		return 0
	}
	return int(mhz * 1000)
}
