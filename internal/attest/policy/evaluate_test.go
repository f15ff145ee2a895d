package policy_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/attest/policy"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
)

// want matches one reason: on the host (vm "") or on a VM's verdict.
type want struct {
	vm, component string
	found         string   // hex label, "" to skip
	expected      []string // hex labels, nil to skip
	msg           string   // substring, "" to skip
}

type evalCase struct {
	name   string
	pol    func(p *policy.Policy) // edits a fresh basePolicy
	events []eventlog.Event
	rep    attest.Report
	host   attest.Status
	vms    map[string]attest.Status // every VM verdict expected
	reason []want
}

func runEvalCases(t *testing.T, cases []evalCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := basePolicy(t)
			if tc.pol != nil {
				tc.pol(p)
				if err := p.Validate(); err != nil {
					t.Fatal(err)
				}
			}
			v := policy.Evaluate(p, tc.events, tc.rep, t0.Add(time.Second))
			dump := fmt.Sprintf("%+v", v)
			if v.Status != tc.host {
				t.Errorf("host %s, want %s\n%s", v.Status, tc.host, dump)
			}
			if v.PolicyVersion != 3 || v.Host != tc.rep.Host {
				t.Errorf("verdict header %+v", v)
			}
			got := map[string]attest.Status{}
			for _, vv := range v.VMs {
				got[vv.Name] = vv.Status
			}
			if tc.vms == nil {
				tc.vms = map[string]attest.Status{}
			}
			if !reflect.DeepEqual(got, tc.vms) {
				t.Errorf("VMs %v, want %v\n%s", got, tc.vms, dump)
			}
			for _, w := range tc.reason {
				if !hasReason(v, w) {
					t.Errorf("no reason %+v in\n%s", w, dump)
				}
			}
			// Deterministic: the same inputs give the same verdict.
			if again := policy.Evaluate(p, tc.events, tc.rep, t0.Add(time.Second)); !reflect.DeepEqual(v, again) {
				t.Errorf("second evaluation differs:\n%+v\n%+v", v, again)
			}
		})
	}
}

func hasReason(v attest.Verdict, w want) bool {
	list := v.Reasons
	if w.vm != "" {
		list = nil
		for _, vv := range v.VMs {
			if vv.Name == w.vm {
				list = vv.Reasons
			}
		}
	}
	for _, r := range list {
		if r.Component != w.component || w.msg != "" && !strings.Contains(r.Message, w.msg) {
			continue
		}
		if w.vm != "" && r.VM != w.vm {
			continue
		}
		if w.found != "" && r.Found != hx(w.found) {
			continue
		}
		if w.expected != nil {
			var exp []string
			for _, l := range w.expected {
				exp = append(exp, hx(l))
			}
			slices.Sort(exp)
			if !slices.Equal(exp, r.Expected) {
				continue
			}
		}
		return true
	}
	return false
}

const (
	T = attest.Trusted
	U = attest.Untrusted
	K = attest.Unknown
)

func replace(evs []eventlog.Event, i int, e eventlog.Event) []eventlog.Event {
	out := slices.Clone(evs)
	out[i] = e
	return out
}

func without(evs []eventlog.Event, i int) []eventlog.Event {
	return slices.Delete(slices.Clone(evs), i, i+1)
}

func TestEvaluateHost(t *testing.T) {
	good := join(hostEvents(), launch("web", "kernel-a", "initrd-a"))
	rep := running("web")
	runEvalCases(t, []evalCase{
		{name: "clean", events: good, rep: rep, host: T, vms: map[string]attest.Status{"web": T}},
		{name: "second daemon start measured again", events: join(hostEvents(), good), rep: rep, host: T, vms: map[string]attest.Status{"web": T}},
		{name: "qemu not in allow-list", events: replace(good, 1, qemuEv("qemu-evil")), rep: rep, host: U,
			vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "qemu-binary", found: "qemu-evil", expected: []string{"qemu-1", "qemu-2"}, msg: "/usr/bin/qemu-system-x86_64"},
				{vm: "web", component: "host", msg: "host is untrusted"}}},
		{name: "bulwark not in allow-list", events: replace(good, 0, bulwarkEv("bulwark-old")), rep: rep, host: U, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "bulwark-binary", found: "bulwark-old", expected: []string{"bulwark-1"}}}},
		{name: "seccomp filter changed", events: replace(good, 4, seccompEv("vmm", "vmm-2")), rep: rep, host: U, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "seccomp-filter/vmm", found: "vmm-2", expected: []string{"vmm-1"}}}},
		{name: "seccomp filter with no golden value", events: join(good, []eventlog.Event{seccompEv("extra", "x")}), rep: rep, host: U, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "seccomp-filter/extra", found: "x", msg: "no golden value for seccomp-filter/extra"}}},
		{name: "seccomp filter not measured", events: without(good, 4), rep: rep, host: U, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "seccomp-filter/vmm", expected: []string{"vmm-1"}, msg: "not measured"}}},
		{name: "firmware changed", events: replace(good, 2, firmwareEv("bios-microvm.bin", "bios-evil")), rep: rep, host: U, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "qemu-firmware/bios-microvm.bin", found: "bios-evil", expected: []string{"bios-1"}}}},
		{name: "firmware with no golden value", events: join(good, []eventlog.Event{firmwareEv("efi.fd", "efi")}), rep: rep, host: U, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "qemu-firmware/efi.fd", msg: "no golden value for qemu-firmware/efi.fd"}}},
		{name: "firmware not measured is fine", events: without(good, 2), rep: rep, host: T, vms: map[string]attest.Status{"web": T}},
		{name: "hardening config changed", events: replace(good, 5, hardeningEv("nojail")), rep: rep, host: U, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "hardening-config", found: "nojail", msg: `config "cgroup_base=bulwark\njail=true`}}},
		{name: "hardening config not measured", events: without(good, 5), rep: rep, host: U, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "hardening-config", msg: "hardening-config not measured"}}},
		{name: "host layer not measured", events: launch("web", "kernel-a", "initrd-a"), rep: rep, host: U, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "host", msg: "host layer not measured"}}},
		{name: "unknown kind in PCR 11", events: join(good, []eventlog.Event{ipl(11, "thing", `bootloader path="/x"`)}), rep: rep, host: U, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "event-log", found: "thing", msg: "no golden value for this event: unknown event kind"}}},
		{name: "PCR 12 kind in PCR 11", events: join(good, []eventlog.Event{ipl(11, "kernel-a", `vm-kernel vm="web" size=1 file="/k"`)}), rep: rep, host: U, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "event-log", msg: "belongs in PCR 12"}}},
		{name: "other event type in PCR 11", events: join(good, []eventlog.Event{{PCR: 11, Type: eventlog.EventSeparator, Digest: dg("sep")}}), rep: rep, host: U, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "event-log", found: "sep", msg: "EV_SEPARATOR"}}},
		{name: "EV_NO_ACTION and other PCRs are not judged", rep: rep, host: T, vms: map[string]attest.Status{"web": T},
			events: join(good, []eventlog.Event{{PCR: 11, Type: eventlog.EventNoAction, Data: []byte("junk")}, ipl(0, "fw", "junk"), ipl(14, "x", "junk")})},
		{name: "unparseable PCR 12 event", events: join(good, []eventlog.Event{ipl(12, "k", `vm-kernel vm=web size=1 file="/k"`)}), rep: rep, host: U, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "event-log", found: "k", msg: "cannot tell which VM launch"}}},
		{name: "launch event before its definition", events: join(hostEvents(), []eventlog.Event{kernelEv("web", "kernel-a")}, launch("web", "kernel-a", "initrd-a")),
			rep: rep, host: U, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "event-log", msg: "vm-kernel of vm web comes before any vm-definition"}}},
		{name: "invalid VM name in report", events: good, rep: attest.Report{Host: "h1", Time: t0, VMs: []attest.VMReport{{Name: "Bad\nName", Running: true}}}, host: K,
			reason: []want{{component: "report", msg: `invalid name "Bad\nName"`}}},
		{name: "VM reported twice", events: good, rep: attest.Report{Host: "h1", Time: t0, VMs: []attest.VMReport{{Name: "web", Running: true}, {Name: "web"}}}, host: K,
			vms: map[string]attest.Status{"web": K}, reason: []want{{component: "report", vm: "", msg: "twice"}}},
	})
}

func TestEvaluateRuntime(t *testing.T) {
	good := join(hostEvents(), launch("web", "kernel-a", "initrd-a"))
	mismatch := running("web")
	mismatch.Runtime = append(mismatch.Runtime, attest.RuntimeCheck{Process: "qemu", VM: "web", PID: 77, Binary: "/usr/bin/qemu", Checked: t0,
		Mismatches: []attest.TextMismatch{{Object: "/usr/lib/libc.so.6", Offset: 0x1234, Length: 5, Symbol: "memcpy+0x10", Expected: "9090", Found: "cccc"}}})
	failed := running("web")
	failed.Runtime[0].Error = "read /proc/1/mem: permission denied"
	stale := running("web")
	stale.Runtime[0].Checked = t0.Add(-time.Hour)
	withQEMU := running("web")
	withQEMU.Runtime = append(withQEMU.Runtime, attest.RuntimeCheck{Process: "qemu", VM: "web", PID: 77, Checked: t0})
	required := func(p *policy.Policy) { p.Runtime.Required = true }
	runEvalCases(t, []evalCase{
		{name: "PCR 13 finding", rep: running("web"), host: U, vms: map[string]attest.Status{"web": K},
			events: join(good, []eventlog.Event{ipl(13, "m", `runtime-text-mismatch process=qemu vm="web" pid=77 binary="/usr/bin/qemu" first_offset=0x1a2b count=2`)}),
			reason: []want{{component: "runtime/qemu", found: "m", msg: `process qemu (pid 77, vm web) differs from its binary "/usr/bin/qemu" at offset 0x1a2b`}}},
		{name: "PCR 13 finding with unreadable data", rep: running("web"), host: U, vms: map[string]attest.Status{"web": K},
			events: join(good, []eventlog.Event{ipl(13, "m", "garbage\n")}),
			reason: []want{{component: "runtime", found: "m", msg: "unreadable"}}},
		{name: "mismatch in report", events: good, rep: mismatch, host: U, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "runtime/qemu", vm: "", msg: `differs from "/usr/lib/libc.so.6" at offset 0x1234 in "memcpy+0x10" (5 bytes)`}}},
		{name: "check failed", events: good, rep: failed, host: K, vms: map[string]attest.Status{"web": K},
			reason: []want{{component: "runtime/daemon", msg: "could not be done"}}},
		{name: "check failed, on_error untrusted", events: good, rep: failed, host: U, vms: map[string]attest.Status{"web": K},
			pol:    func(p *policy.Policy) { p.Runtime.OnError = policy.OnErrorUntrusted },
			reason: []want{{component: "runtime/daemon", msg: "could not be done"}}},
		{name: "required, no QEMU check", events: good, rep: running("web"), host: K, vms: map[string]attest.Status{"web": K}, pol: required,
			reason: []want{{component: "runtime/qemu", msg: "no runtime check of this VM's QEMU"}}},
		{name: "required, stale daemon check", events: good, rep: stale, host: K, vms: map[string]attest.Status{"web": K}, pol: required,
			reason: []want{{component: "runtime/daemon", msg: "no runtime check of the daemon in the last 10m0s"}}},
		{name: "required and present", events: good, rep: withQEMU, host: T, vms: map[string]attest.Status{"web": T}, pol: required},
		{name: "stale but not required", events: good, rep: stale, host: T, vms: map[string]attest.Status{"web": T}},
	})
}

func TestEvaluateLaunch(t *testing.T) {
	host := hostEvents()
	two := running("web", "db")
	onlyA := func(p *policy.Policy) { p.VMs = map[string]policy.VMRule{"web": {Images: []string{"a"}}} }
	withDisk := func(p *policy.Policy) {
		im := p.Images["a"]
		im.Disk = hx("disk-a")
		p.Images["a"] = im
	}
	runEvalCases(t, []evalCase{
		{name: "two VMs, two images", events: join(host, launch("web", "kernel-a", "initrd-a"), launch("db", "kernel-b", "initrd-b")), rep: two,
			host: T, vms: map[string]attest.Status{"web": T, "db": T}},
		{name: "interleaved launches", rep: two, host: T, vms: map[string]attest.Status{"web": T, "db": T},
			events: join(host, []eventlog.Event{defEv("web", "d1"), defEv("db", "d2"), kernelEv("db", "kernel-b"), kernelEv("web", "kernel-a"), initrdEv("web", "initrd-a"), initrdEv("db", "initrd-b")})},
		{name: "no measured launch", events: join(host, launch("web", "kernel-a", "initrd-a")), rep: two, host: T,
			vms: map[string]attest.Status{"web": T, "db": U}, reason: []want{{vm: "db", component: "vm-launch", msg: "no measured launch"}}},
		{name: "replaced initrd", events: join(host, launch("web", "kernel-a", "initrd-evil")), rep: running("web"), host: T,
			vms:    map[string]attest.Status{"web": U},
			reason: []want{{vm: "web", component: "vm-initrd", found: "initrd-evil", expected: []string{"initrd-a"}, msg: "not that of image a, whose kernel was measured"}}},
		{name: "kernel of a with initrd of b", events: join(host, launch("web", "kernel-a", "initrd-b")), rep: running("web"), host: T,
			vms: map[string]attest.Status{"web": U}, reason: []want{{vm: "web", component: "vm-initrd", found: "initrd-b", expected: []string{"initrd-a"}}}},
		{name: "replaced kernel", events: join(host, launch("web", "kernel-evil", "initrd-a")), rep: running("web"), host: T,
			vms: map[string]attest.Status{"web": U}, reason: []want{{vm: "web", component: "vm-kernel", found: "kernel-evil", expected: []string{"kernel-a"}, msg: "whose initrd was measured"}}},
		{name: "both unknown", events: join(host, launch("web", "kernel-evil", "initrd-evil")), rep: running("web"), host: T,
			vms: map[string]attest.Status{"web": U}, reason: []want{
				{vm: "web", component: "vm-kernel", found: "kernel-evil", expected: []string{"kernel-a", "kernel-b"}},
				{vm: "web", component: "vm-initrd", found: "initrd-evil", expected: []string{"initrd-a", "initrd-b"}}}},
		{name: "initrd missing", events: join(host, launch("web", "kernel-a", "")), rep: running("web"), host: T,
			vms: map[string]attest.Status{"web": U}, reason: []want{{vm: "web", component: "vm-initrd", expected: []string{"initrd-a"}, msg: "no initrd measured"}}},
		{name: "image without initrd", events: join(host, launch("web", "kernel-c", "")), rep: running("web"), host: T,
			vms: map[string]attest.Status{"web": T},
			pol: func(p *policy.Policy) { p.Images["c"] = policy.Image{Kernel: hx("kernel-c")} }},
		{name: "image without initrd, launch with one", events: join(host, launch("web", "kernel-c", "initrd-a")), rep: running("web"), host: T,
			vms: map[string]attest.Status{"web": U}, reason: []want{{vm: "web", component: "vm-initrd", found: "initrd-a"}},
			pol: func(p *policy.Policy) { p.Images["c"] = policy.Image{Kernel: hx("kernel-c")} }},
		{name: "no kernel", events: join(host, []eventlog.Event{defEv("web", "d")}), rep: running("web"), host: T,
			vms: map[string]attest.Status{"web": U}, reason: []want{{vm: "web", component: "vm-kernel", msg: "no kernel measured"}}},
		{name: "kernel measured twice", events: join(host, launch("web", "kernel-a", "initrd-a"), []eventlog.Event{kernelEv("web", "kernel-a")}), rep: running("web"), host: T,
			vms: map[string]attest.Status{"web": U}, reason: []want{{vm: "web", component: "vm-kernel", msg: "measured 2 times"}}},
		{name: "latest launch counts (good after bad)", events: join(host, launch("web", "kernel-evil", "initrd-a"), launch("web", "kernel-a", "initrd-a")),
			rep: running("web"), host: T, vms: map[string]attest.Status{"web": T}},
		{name: "latest launch counts (bad after good)", events: join(host, launch("web", "kernel-a", "initrd-a"), launch("web", "kernel-a", "initrd-evil")),
			rep: running("web"), host: T, vms: map[string]attest.Status{"web": U}},
		{name: "image not allowed for this VM", events: join(host, launch("web", "kernel-b", "initrd-b")), rep: running("web"), host: T, pol: onlyA,
			vms: map[string]attest.Status{"web": U}, reason: []want{{vm: "web", component: "vm-kernel", expected: []string{"kernel-a"}, msg: "any image allowed for this VM (a)"}}},
		{name: "no rule for the VM", events: join(host, launch("db", "kernel-b", "initrd-b")), rep: running("db"), host: T,
			pol: func(p *policy.Policy) { onlyA(p); p.VMDefault = nil },
			vms: map[string]attest.Status{"db": U}, reason: []want{{vm: "db", component: "policy", msg: "allows no image"}}},
		{name: "stopped VM gets no verdict", events: join(host, launch("web", "kernel-evil", "initrd-a")),
			rep: attest.Report{Host: "h1", Time: t0, VMs: []attest.VMReport{{Name: "web"}}}, host: T},
		{name: "definition allowed", events: join(host, launch("web", "kernel-a", "initrd-a")), rep: running("web"), host: T,
			vms: map[string]attest.Status{"web": T}, pol: func(p *policy.Policy) { p.VMs = map[string]policy.VMRule{"web": {Definition: []string{hx("def-web")}}} }},
		{name: "definition not allowed", events: join(host, launch("web", "kernel-a", "initrd-a")), rep: running("web"), host: T,
			vms: map[string]attest.Status{"web": U}, pol: func(p *policy.Policy) {
				p.VMs = map[string]policy.VMRule{"web": {Definition: []string{hx("def-other")}}}
			},
			reason: []want{{vm: "web", component: "vm-definition", found: "def-web", expected: []string{"def-other"}}}},
		{name: "cmdline not allowed", events: join(host, launch("web", "kernel-a", "initrd-a")), rep: running("web"), host: T,
			vms: map[string]attest.Status{"web": U}, pol: func(p *policy.Policy) { p.VMs = map[string]policy.VMRule{"web": {Cmdline: []string{hx("cmdline-2")}}} },
			reason: []want{{vm: "web", component: "vm-cmdline", found: "cmdline-1", expected: []string{"cmdline-2"}}}},
		{name: "cmdline allowed", events: join(host, launch("web", "kernel-a", "initrd-a")), rep: running("web"), host: T,
			vms: map[string]attest.Status{"web": T}, pol: func(p *policy.Policy) { p.VMs = map[string]policy.VMRule{"web": {Cmdline: []string{hx("cmdline-1")}}} }},
		{name: "disk content matches", events: join(host, launch("web", "kernel-a", "initrd-a"), []eventlog.Event{contentEv("web", 0, 1, "disk-a")}),
			rep: running("web"), host: T, vms: map[string]attest.Status{"web": T}, pol: withDisk},
		{name: "disk content replaced", events: join(host, launch("web", "kernel-a", "initrd-a"), []eventlog.Event{contentEv("web", 0, 1, "disk-evil")}),
			rep: running("web"), host: T, vms: map[string]attest.Status{"web": U}, pol: withDisk,
			reason: []want{{vm: "web", component: "vm-disk-content", found: "disk-evil", expected: []string{"disk-a"}, msg: "no golden value"},
				{vm: "web", component: "vm-disk-content", expected: []string{"disk-a"}, msg: "no read-only disk layer has the content of image a's disk"}}},
		{name: "disk content not measured", events: join(host, launch("web", "kernel-a", "initrd-a")),
			rep: running("web"), host: T, vms: map[string]attest.Status{"web": K}, pol: withDisk,
			reason: []want{{vm: "web", component: "vm-disk-content", expected: []string{"disk-a"}, msg: "no disk content was measured"}}},
		{name: "extra read-only layer allowed by the VM rule", rep: running("web"), host: T, vms: map[string]attest.Status{"web": T},
			events: join(host, launch("web", "kernel-a", "initrd-a"), []eventlog.Event{contentEv("web", 0, 1, "disk-a"), contentEv("web", 1, 0, "data")}),
			pol: func(p *policy.Policy) {
				withDisk(p)
				p.VMs = map[string]policy.VMRule{"web": {Disks: []string{hx("data")}}}
			}},
		{name: "read-only layer with no golden value", rep: running("web"), host: T, vms: map[string]attest.Status{"web": U},
			events: join(host, launch("web", "kernel-a", "initrd-a"), []eventlog.Event{contentEv("web", 1, 0, "data")}),
			reason: []want{{vm: "web", component: "vm-disk-content", found: "data", msg: "no golden value"}}},
		// A hostile VM name in event data cannot attach a launch to
		// another VM: `a" vm="b` is one name.
		{name: "injected vm name", events: join(host, launch(`a" vm="b`, "kernel-a", "initrd-a")), rep: running("b"), host: U,
			vms: map[string]attest.Status{"b": U}, reason: []want{{vm: "b", component: "vm-launch"}, {component: "event-log", msg: "names no valid VM"}}},
		{name: "injected newline", events: join(host, launch("web\nvm-kernel vm=\"db\"", "kernel-a", "initrd-a")), rep: running("db"), host: U,
			vms: map[string]attest.Status{"db": U}, reason: []want{{vm: "db", component: "vm-launch"}}},
	})
}

func TestEvaluateIntrospection(t *testing.T) {
	good := join(hostEvents(), launch("web", "kernel-a", "initrd-a"))
	with := func(in *attest.Introspection) attest.Report {
		rep := running("web")
		rep.VMs[0].Introspection = in
		return rep
	}
	finding := func(kind, summary string) *attest.Introspection {
		return &attest.Introspection{Checked: t0, Findings: []attest.Finding{{Kind: kind, Summary: summary}}}
	}
	required := func(p *policy.Policy) { p.Introspection.Required = true }
	runEvalCases(t, []evalCase{
		{name: "kernel text modified", events: good, rep: with(finding("kernel_text_modified", "kernel text changed at x")), host: T,
			vms: map[string]attest.Status{"web": U}, reason: []want{{vm: "web", component: "introspection/kernel_text_modified", msg: "kernel text changed at x"}}},
		{name: "a kind the policy predates fails", events: good, rep: with(finding("future_kind", "s")), host: T,
			vms: map[string]attest.Status{"web": U}, reason: []want{{vm: "web", component: "introspection/future_kind"}}},
		{name: "ignored kind", events: good, rep: with(finding("hidden_module", "m")), host: T, vms: map[string]attest.Status{"web": T},
			pol: func(p *policy.Policy) { p.Introspection.IgnoreKinds = []string{"hidden_module"} }},
		{name: "scan_error", events: good, rep: with(finding("scan_error", "IDT could not be checked")), host: T,
			vms: map[string]attest.Status{"web": K}, reason: []want{{vm: "web", component: "introspection/scan_error"}}},
		{name: "scan failed", events: good, rep: with(&attest.Introspection{Checked: t0, Error: "no symbols"}), host: T,
			vms: map[string]attest.Status{"web": K}, reason: []want{{vm: "web", component: "introspection", msg: "the scan failed: no symbols"}}},
		{name: "hostile summary is quoted", events: good, rep: with(finding("hidden_process", "process 7 (evil\nvm=ok) hidden")), host: T,
			vms: map[string]attest.Status{"web": U}, reason: []want{{vm: "web", component: "introspection/hidden_process", msg: `"process 7 (evil\nvm=ok) hidden"`}}},
		{name: "invalid kind", events: good, rep: with(finding("Bad Kind", "s")), host: T,
			vms: map[string]attest.Status{"web": U}, reason: []want{{vm: "web", component: "introspection/invalid"}}},
		{name: "required, none", events: good, rep: with(nil), host: T, pol: required,
			vms: map[string]attest.Status{"web": K}, reason: []want{{vm: "web", component: "introspection", msg: "no introspection scan"}}},
		{name: "required, stale", events: good, rep: with(&attest.Introspection{Checked: t0.Add(-time.Hour)}), host: T, pol: required,
			vms: map[string]attest.Status{"web": K}, reason: []want{{vm: "web", component: "introspection", msg: "1h0m0s old (max_age 10m0s)"}}},
		{name: "not required, none", events: good, rep: with(nil), host: T, vms: map[string]attest.Status{"web": T}},
	})
}

func TestEvaluateCapsReasons(t *testing.T) {
	evs := hostEvents()
	for i := range 100 {
		evs = append(evs, seccompEv(fmt.Sprintf("f%03d", i), "x"))
	}
	v := policy.Evaluate(basePolicy(t), evs, running(), t0)
	if v.Status != U || len(v.Reasons) != policy.MaxReasons+1 {
		t.Fatalf("status %s, %d reasons", v.Status, len(v.Reasons))
	}
	if last := v.Reasons[policy.MaxReasons]; last.Message != "and 68 more reasons" {
		t.Fatalf("last reason %+v", last)
	}
	// Failures sort before undecided reasons, so a cap never hides them.
	rep := running()
	rep.Runtime[0].Error = "e"
	v = policy.Evaluate(basePolicy(t), evs, rep, t0)
	if v.Reasons[0].Component == "runtime/daemon" {
		t.Fatalf("undecided reason first: %+v", v.Reasons[0])
	}
}

func TestEvaluateOrderIndependentOfReport(t *testing.T) {
	evs := join(hostEvents(), launch("web", "kernel-a", "initrd-evil"), launch("db", "kernel-b", "initrd-b"))
	a := policy.Evaluate(basePolicy(t), evs, running("web", "db"), t0)
	b := policy.Evaluate(basePolicy(t), evs, running("db", "web"), t0)
	if !reflect.DeepEqual(a, b) || a.VMs[0].Name != "db" {
		t.Fatalf("%+v\n%+v", a, b)
	}
}

func TestEvaluateWithoutUsablePolicy(t *testing.T) {
	evs := hostEvents()
	if v := policy.Evaluate(nil, evs, running(), t0); v.Status != K || v.Reasons[0].Component != "policy" {
		t.Fatalf("nil policy: %+v", v)
	}
	bad := &policy.Policy{Version: 2}
	if v := policy.Evaluate(bad, evs, running(), t0); v.Status != K || v.PolicyVersion != 2 || !strings.Contains(v.Reasons[0].Message, "host.bulwark-binary") {
		t.Fatalf("invalid policy: %+v", v)
	}
	// A hand-built valid policy works without Validate.
	hand := &policy.Policy{Version: 1, Host: policy.HostRules{BulwarkBinary: []string{hx("bulwark-1")}, QEMUBinary: []string{hx("qemu-1")},
		HardeningConfig: []string{hx("hardening-1")}, SeccompFilter: map[string][]string{"monitor": {hx("monitor-1")}, "vmm": {hx("vmm-1")}},
		QEMUFirmware: map[string][]string{"bios-microvm.bin": {hx("bios-1")}}}}
	if v := policy.Evaluate(hand, evs, running(), t0); v.Status != T {
		t.Fatalf("hand-built policy: %+v", v)
	}
}

// One policy serves many hosts at once (run with -race).
func TestEvaluateConcurrent(t *testing.T) {
	p := basePolicy(t)
	evs := join(hostEvents(), launch("web", "kernel-a", "initrd-evil"))
	want := policy.Evaluate(p, evs, running("web"), t0)
	done := make(chan attest.Verdict)
	for range 4 {
		go func() { done <- policy.Evaluate(p, evs, running("web"), t0) }()
	}
	for range 4 {
		if got := <-done; !reflect.DeepEqual(got, want) {
			t.Errorf("%+v", got)
		}
	}
}
