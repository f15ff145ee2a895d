package hv

import (
	"errors"
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	intel := []string{"fpu", "vme", "vmx", "sse2"}
	amd := []string{"fpu", "svm", "sse2"}
	none := []string{"fpu", "sse2", "hypervisor"}
	errNoDev := errors.New("open /dev/kvm: no such file or directory")
	errCreate := errors.New("cannot allocate memory")

	good := func(flags []string, mods ...string) KVMProbe {
		return KVMProbe{CPUFlags: flags, KVMModules: mods, APIVersion: 12}
	}
	tests := []struct {
		desc string
		p    KVMProbe
		// For each request: accelerator chosen, or "error"; and a piece the
		// reason or error must contain.
		auto, kvm string
		why       string
	}{
		{"intel with kvm_intel", good(intel, "kvm", "kvm_intel"), "kvm", "kvm", "hardware KVM (vmx, kvm_intel)"},
		{"amd with kvm_amd", good(amd, "kvm", "kvm_amd"), "kvm", "kvm", "hardware KVM (svm, kvm_amd)"},
		{"intel, kvm built in", good(intel), "kvm", "kvm", "hardware KVM (vmx, kvm_intel)"},
		{"amd, kvm core module only", good(amd, "kvm"), "kvm", "kvm", "hardware KVM (svm, kvm_amd)"},
		{"intel flag, amd module", good(intel, "kvm", "kvm_amd"), "tcg", "error", "provided by kvm_amd, not kvm_intel"},
		{"amd flag, intel module", good(amd, "kvm", "kvm_intel"), "tcg", "error", "provided by kvm_intel, not kvm_amd"},

		// A sandbox's software KVM: /dev/kvm works but it is not hardware.
		{"no vmx/svm with kvm_pvm", good(none, "kvm", "kvm_pvm"), "tcg", "error", "no vmx/svm flag (kvm modules: kvm,kvm_pvm)"},
		{"intel flag with kvm_pvm", good(intel, "kvm", "kvm_pvm"), "tcg", "error", "provided by kvm_pvm"},
		{"intel with kvm_intel and kvm_pvm", good(intel, "kvm", "kvm_intel", "kvm_pvm"), "kvm", "kvm", "hardware KVM"},
		{"no vmx/svm, built in", good(none), "tcg", "error", "no vmx/svm flag"},
		{"no cpu flags at all", good(nil), "tcg", "error", "no vmx/svm flag"},
		{"flag substring is not a flag", good([]string{"vmxe", "svm2", "xsvm"}, "kvm", "kvm_intel"), "tcg", "error", "no vmx/svm flag"},

		{"no /dev/kvm", KVMProbe{CPUFlags: intel, KVMModules: []string{"kvm_intel"}, DevErr: errNoDev}, "tcg", "error", "/dev/kvm: open /dev/kvm"},
		{"API version 0", KVMProbe{CPUFlags: intel, KVMModules: []string{"kvm_intel"}}, "tcg", "error", "API version 0, want 12"},
		{"API version 11", KVMProbe{CPUFlags: intel, KVMModules: []string{"kvm_intel"}, APIVersion: 11}, "tcg", "error", "API version 11"},
		{"API version 13", KVMProbe{CPUFlags: intel, KVMModules: []string{"kvm_intel"}, APIVersion: 13}, "tcg", "error", "API version 13"},
		{"create VM fails", KVMProbe{CPUFlags: intel, KVMModules: []string{"kvm_intel"}, APIVersion: 12, CreateVMErr: errCreate}, "tcg", "error", "KVM_CREATE_VM: cannot allocate memory"},
		{"dev error wins over everything", KVMProbe{DevErr: errNoDev, APIVersion: 12, CreateVMErr: errCreate}, "tcg", "error", "/dev/kvm:"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			// tcg is always honoured, whatever the host.
			a, err := Decide("tcg", tc.p)
			if err != nil || a.Name != "tcg" || a.Reason != "requested" {
				t.Errorf(`Decide("tcg") = %+v, %v; want tcg, requested`, a, err)
			}

			for _, req := range []string{"auto", ""} {
				a, err := Decide(req, tc.p)
				if err != nil {
					t.Fatalf("Decide(%q) error %v", req, err)
				}
				if a.Name != tc.auto || !strings.Contains(a.Reason, tc.why) {
					t.Errorf("Decide(%q) = %+v, want %s with reason containing %q", req, a, tc.auto, tc.why)
				}
				if a.Name == "tcg" && !strings.HasPrefix(a.Reason, "no hardware KVM: ") {
					t.Errorf("Decide(%q) fell back with reason %q, want it to say why", req, a.Reason)
				}
			}

			a, err = Decide("kvm", tc.p)
			if tc.kvm == "error" {
				if err == nil {
					t.Fatalf(`Decide("kvm") = %+v, want an error`, a)
				}
				if a != (Accel{}) {
					t.Errorf(`Decide("kvm") returned %+v with its error`, a)
				}
				if !strings.Contains(err.Error(), "kvm requested but not usable") || !strings.Contains(err.Error(), tc.why) {
					t.Errorf(`Decide("kvm") error %q, want it to contain %q`, err, tc.why)
				}
				return
			}
			if err != nil || a.Name != "kvm" || !strings.HasPrefix(a.Reason, "requested; ") || !strings.Contains(a.Reason, tc.why) {
				t.Errorf(`Decide("kvm") = %+v, %v; want kvm with reason containing %q`, a, err, tc.why)
			}
		})
	}
}

// The key case the decision exists for: a sandbox whose /dev/kvm is kvm_pvm
// on a CPU without vmx/svm.
func TestDecideSoftwareKVM(t *testing.T) {
	p := KVMProbe{CPUFlags: []string{"fpu", "sse4_2", "hypervisor"}, KVMModules: []string{"kvm", "kvm_pvm"}, APIVersion: 12}
	a, err := Decide("auto", p)
	if err != nil || a.Name != "tcg" {
		t.Errorf("auto on kvm_pvm = %+v, %v; want tcg", a, err)
	}
	if _, err := Decide("kvm", p); err == nil {
		t.Error("kvm on kvm_pvm succeeded, want an error")
	}
}

func TestDecideUnknownRequest(t *testing.T) {
	good := KVMProbe{CPUFlags: []string{"vmx"}, KVMModules: []string{"kvm_intel"}, APIVersion: 12}
	for _, req := range []string{"bogus", "KVM", "Auto", "hvf", " kvm", "kvm,tcg"} {
		for _, p := range []KVMProbe{good, {}} {
			a, err := Decide(req, p)
			if err == nil {
				t.Errorf("Decide(%q) = %+v, want an error", req, a)
				continue
			}
			if !strings.Contains(err.Error(), "unknown accelerator") {
				t.Errorf("Decide(%q) error %q", req, err)
			}
		}
	}
}
