package policy_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/attest/policy"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
)

// Test fixtures: digests are SHA-256 of a short label, so a test says
// which thing it measured ("kernel-a") rather than spelling hex.

func dg(label string) [32]byte { return sha256.Sum256([]byte(label)) }

func hx(label string) string {
	d := dg(label)
	return hex.EncodeToString(d[:])
}

func ipl(pcr uint32, label, data string) eventlog.Event {
	return eventlog.Event{PCR: pcr, Type: eventlog.EventIPL, Digest: dg(label), Data: []byte(data)}
}

// Event data as internal/measure writes it (measure.quote is %q).
func bulwarkEv(label string) eventlog.Event {
	return ipl(11, label, `bulwark-binary path="/proc/self/exe" size=12345678`)
}
func qemuEv(label string) eventlog.Event {
	return ipl(11, label, `qemu-binary path="/usr/bin/qemu-system-x86_64" size=20000000`)
}
func seccompEv(name, label string) eventlog.Event {
	return ipl(11, label, fmt.Sprintf("seccomp-filter name=%s size=4096", name))
}
func firmwareEv(name, label string) eventlog.Event {
	return ipl(11, label, fmt.Sprintf("qemu-firmware name=%s path=%q size=131072", name, "/usr/share/qemu/"+name))
}
func hardeningEv(label string) eventlog.Event {
	return ipl(11, label, "hardening-config "+strconv.Quote("cgroup_base=bulwark\njail=true\nseccomp=monitor,vmm\n"))
}

func hostEvents() []eventlog.Event {
	return []eventlog.Event{
		bulwarkEv("bulwark-1"),
		qemuEv("qemu-1"),
		firmwareEv("bios-microvm.bin", "bios-1"),
		seccompEv("monitor", "monitor-1"),
		seccompEv("vmm", "vmm-1"),
		hardeningEv("hardening-1"),
	}
}

func defEv(vm, label string) eventlog.Event {
	return ipl(12, label, fmt.Sprintf("vm-definition vm=%q digest-of=canonical-json", vm))
}
func cmdlineEv(vm, label string) eventlog.Event {
	return ipl(12, label, fmt.Sprintf("vm-cmdline vm=%q cmdline=%q", vm, "console=ttyS0 root=/dev/vda"))
}
func diskEv(vm string, index int) eventlog.Event {
	ident := fmt.Sprintf("volume=%q ro=false layer0=qcow2,ro=false,dev=2049,ino=%d,size=1048576 layer1=raw,ro=true,dev=2049,ino=77,size=2097152", vm+"-root", 100+index)
	return eventlog.Event{PCR: 12, Type: eventlog.EventIPL, Digest: sha256.Sum256([]byte(ident)),
		Data: []byte(fmt.Sprintf("vm-disk vm=%q index=%d digest-of=identity %s", vm, index, ident))}
}
func contentEv(vm string, index, layer int, label string) eventlog.Event {
	return ipl(12, label, fmt.Sprintf("vm-disk-content vm=%q index=%d layer=%d digest-of=content", vm, index, layer))
}
func kernelEv(vm, label string) eventlog.Event {
	return ipl(12, label, fmt.Sprintf("vm-kernel vm=%q size=9000000 file=%q", vm, "/var/lib/bulwark/images/x/vmlinuz"))
}
func initrdEv(vm, label string) eventlog.Event {
	return ipl(12, label, fmt.Sprintf("vm-initrd vm=%q size=3000000 file=%q", vm, "/var/lib/bulwark/images/x/initrd.img"))
}

// launch is a VM start as the daemon measures it: image "a" unless the
// labels say otherwise.
func launch(vm, kernel, initrd string) []eventlog.Event {
	evs := []eventlog.Event{defEv(vm, "def-"+vm), cmdlineEv(vm, "cmdline-1"), diskEv(vm, 0), kernelEv(vm, kernel)}
	if initrd != "" {
		evs = append(evs, initrdEv(vm, initrd))
	}
	return evs
}

func join(parts ...[]eventlog.Event) []eventlog.Event {
	var out []eventlog.Event
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func running(names ...string) attest.Report {
	rep := attest.Report{Host: "h1", Time: t0}
	for _, n := range names {
		rep.VMs = append(rep.VMs, attest.VMReport{Name: n, Running: true,
			Introspection: &attest.Introspection{Checked: t0.Add(-time.Minute)}})
	}
	rep.Runtime = append(rep.Runtime, attest.RuntimeCheck{Process: "daemon", PID: 1, Binary: "/usr/bin/bulwark", Checked: t0.Add(-time.Minute), Bytes: 1 << 20})
	return rep
}

// basePolicyJSON allows hostEvents and images a (kernel-a, initrd-a) and b
// (kernel-b, initrd-b) for every VM.
func basePolicyJSON() string {
	return fmt.Sprintf(`{
  "version": 3,
  "host": {
    "bulwark-binary": [%q],
    "qemu-binary": [%q, %q],
    "qemu-firmware": {"bios-microvm.bin": [%q]},
    "seccomp-filter": {"monitor": [%q], "vmm": [%q]},
    "hardening-config": [%q]
  },
  "images": {
    "a": {"kernel": %q, "initrd": %q},
    "b": {"kernel": %q, "initrd": %q}
  },
  "vm_default": {"images": ["*"]},
  "introspection": {"max_age": "10m"}
}`, hx("bulwark-1"), hx("qemu-1"), hx("qemu-2"), hx("bios-1"), hx("monitor-1"), hx("vmm-1"), hx("hardening-1"),
		hx("kernel-a"), hx("initrd-a"), hx("kernel-b"), hx("initrd-b"))
}

func basePolicy(t testing.TB) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(basePolicyJSON()))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
