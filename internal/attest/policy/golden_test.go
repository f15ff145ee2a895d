package policy_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/attest/policy"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
)

func TestGoldenFromReferenceHost(t *testing.T) {
	ref := join(hostEvents(), launch("ref", "kernel-a", "initrd-a"), []eventlog.Event{contentEv("ref", 0, 1, "disk-a")})
	p, err := policy.FromHostEvents(7, ref)
	if err != nil {
		t.Fatal(err)
	}
	im, err := policy.ImageFromLaunch(ref, "ref")
	if err != nil {
		t.Fatal(err)
	}
	if im != (policy.Image{Kernel: hx("kernel-a"), Initrd: hx("initrd-a"), Disk: hx("disk-a")}) {
		t.Fatalf("image %+v", im)
	}
	if err := p.AddImage("debian-12", im.Kernel, im.Initrd, im.Disk); err != nil {
		t.Fatal(err)
	}
	p.VMDefault = &policy.DefaultRule{Images: []string{policy.AnyImage}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	// Another host booted the same way passes; one with other QEMU fails.
	other := join(hostEvents(), launch("web", "kernel-a", "initrd-a"), []eventlog.Event{contentEv("web", 0, 1, "disk-a")})
	if v := policy.Evaluate(p, other, running("web"), t0); v.Status != T || v.VMs[0].Status != T || v.PolicyVersion != 7 {
		t.Fatalf("%+v", v)
	}
	if v := policy.Evaluate(p, replace(other, 1, qemuEv("qemu-2")), running("web"), t0); v.Status != U {
		t.Fatalf("%+v", v)
	}
}

func TestGoldenErrors(t *testing.T) {
	if _, err := policy.FromHostEvents(1, without(hostEvents(), 5)); err == nil || !strings.Contains(err.Error(), "host layer not measured") {
		t.Errorf("no hardening-config: %v", err)
	}
	if _, err := policy.FromHostEvents(1, join(hostEvents(), []eventlog.Event{ipl(11, "x", "mystery")})); !errors.Is(err, policy.ErrUnknownKind) {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := policy.FromHostEvents(0, hostEvents()); err == nil {
		t.Error("version 0 accepted")
	}
	p := basePolicy(t)
	if err := p.AddImage("a", hx("kernel-a"), hx("initrd-a"), ""); err != nil {
		t.Errorf("same image again: %v", err)
	}
	if err := p.AddImage("a", hx("kernel-a"), hx("initrd-b"), ""); err == nil || !strings.Contains(err.Error(), "other digests") {
		t.Errorf("conflicting image: %v", err)
	}
	if err := p.AddImage("c", "zz", "", ""); err == nil || !strings.Contains(err.Error(), `images["c"].kernel`) {
		t.Errorf("bad digest: %v", err)
	}
	if _, err := policy.ImageFromLaunch(hostEvents(), "web"); err == nil {
		t.Error("image from no launch")
	}
}

func TestMerge(t *testing.T) {
	a := basePolicy(t)
	b := basePolicy(t)
	b.Version = 9
	b.Host.QEMUBinary = []string{hx("qemu-3")}
	b.Host.SeccompFilter["extra"] = []string{hx("extra-1")}
	b.Images = map[string]policy.Image{"c": {Kernel: hx("kernel-c")}}
	b.VMs = map[string]policy.VMRule{"web": {Images: []string{"c"}, Cmdline: []string{hx("cmdline-1")}}}
	b.VMDefault = nil
	b.Introspection = policy.IntrospectionRules{Required: true, MaxAge: policy.Duration(5 * time.Minute), IgnoreKinds: []string{"hidden_module"}}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	before, _ := policy.Marshal(a)
	m, err := policy.Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := policy.Marshal(a); string(before) != string(after) {
		t.Error("Merge changed its input")
	}
	if m.Version != 9 || !reflect.DeepEqual(m.Host.QEMUBinary, []string{hx("qemu-1"), hx("qemu-2"), hx("qemu-3")}) ||
		len(m.Images) != 3 || len(m.Host.SeccompFilter) != 3 || m.VMDefault == nil || m.VMs["web"].Images[0] != "c" {
		t.Fatalf("merged %+v", m)
	}
	if !m.Introspection.Required || m.Introspection.MaxAge != policy.Duration(5*time.Minute) || len(m.Introspection.IgnoreKinds) != 0 {
		t.Errorf("introspection %+v: the stricter settings must win", m.Introspection)
	}
	b.Images["a"] = policy.Image{Kernel: hx("kernel-x")}
	if _, err := policy.Merge(a, b); err == nil || !strings.Contains(err.Error(), "other digests") {
		t.Errorf("conflicting images merged: %v", err)
	}
}
