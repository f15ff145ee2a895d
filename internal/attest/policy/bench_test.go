package policy_test

import (
	"fmt"
	"testing"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/attest/policy"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
)

// realisticHost is a host as the verifier sees it every 2 s: 10 host
// events, 20 running VMs of 5 images with 6 launch events each (definition,
// command line, two disks, kernel, initrd), clean introspection and
// runtime checks; and a policy naming each VM.
func realisticHost(tb testing.TB) (*policy.Policy, []eventlog.Event, attest.Report) {
	evs := []eventlog.Event{bulwarkEv("bulwark-1"), qemuEv("qemu-1")}
	fw := map[string][]string{}
	for _, n := range []string{"bios-microvm.bin", "bios-256k.bin", "kvmvapic.bin", "linuxboot_dma.bin", "efi-virtio.rom"} {
		evs = append(evs, firmwareEv(n, n))
		fw[n] = []string{hx(n)}
	}
	evs = append(evs, seccompEv("monitor", "monitor-1"), seccompEv("vmm", "vmm-1"), hardeningEv("hardening-1"))
	p := &policy.Policy{Version: 1, Host: policy.HostRules{
		BulwarkBinary: []string{hx("bulwark-0"), hx("bulwark-1")}, QEMUBinary: []string{hx("qemu-1")}, QEMUFirmware: fw,
		SeccompFilter:   map[string][]string{"monitor": {hx("monitor-1")}, "vmm": {hx("vmm-1")}},
		HardeningConfig: []string{hx("hardening-1")}},
		Images: map[string]policy.Image{}, VMs: map[string]policy.VMRule{},
		VMDefault: &policy.DefaultRule{Images: []string{policy.AnyImage}}}
	for i := range 5 {
		p.Images[fmt.Sprintf("img-%d", i)] = policy.Image{Kernel: hx(fmt.Sprint("kernel-", i)), Initrd: hx(fmt.Sprint("initrd-", i))}
	}
	rep := running()
	for i := range 20 {
		name := fmt.Sprintf("vm-%02d", i)
		img := i % 5
		evs = append(evs, defEv(name, "def-"+name), cmdlineEv(name, "cmdline-1"), diskEv(name, 0), diskEv(name, 1),
			kernelEv(name, fmt.Sprint("kernel-", img)), initrdEv(name, fmt.Sprint("initrd-", img)))
		p.VMs[name] = policy.VMRule{Images: []string{fmt.Sprintf("img-%d", img)}, Definition: []string{hx("def-" + name)}}
		rep.VMs = append(rep.VMs, attest.VMReport{Name: name, Running: true, Introspection: &attest.Introspection{Checked: t0}})
		rep.Runtime = append(rep.Runtime, attest.RuntimeCheck{Process: "qemu", VM: name, PID: 100 + i, Checked: t0, Bytes: 8 << 20})
	}
	p.Introspection.Required = true
	p.Runtime.Required = true
	if err := p.Validate(); err != nil {
		tb.Fatal(err)
	}
	if v := policy.Evaluate(p, evs, rep, t0); v.Status != attest.Trusted || len(v.VMs) != 20 || v.VMs[19].Status != attest.Trusted {
		tb.Fatalf("realistic host not trusted: %+v", v)
	}
	return p, evs, rep
}

func BenchmarkEvaluate(b *testing.B) {
	p, evs, rep := realisticHost(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		policy.Evaluate(p, evs, rep, t0)
	}
}

// BenchmarkParseAndReplay is the verifier's other per-host work on the
// same log: parse the binary event log and replay it to PCR values.
func BenchmarkParseAndReplay(b *testing.B) {
	_, evs, _ := realisticHost(b)
	raw, err := eventlog.Marshal(evs)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		parsed, err := eventlog.Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		eventlog.Replay(parsed)
	}
}

// BenchmarkVerifyHostContent is both: what one host costs the verifier
// besides the quote's signature check.
func BenchmarkVerifyHostContent(b *testing.B) {
	p, evs, rep := realisticHost(b)
	raw, err := eventlog.Marshal(evs)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		parsed, err := eventlog.Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		eventlog.Replay(parsed)
		policy.Evaluate(p, parsed, rep, t0)
	}
}
