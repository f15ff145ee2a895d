package itest

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/guest"
)

// hookOut is `vmi hooks -o json`.
type hookOut struct {
	Millis float64        `json:"millis"`
	Items  guest.HookView `json:"items"`
}

func (h *host) vmiHooks(name string) hookOut {
	h.t.Helper()
	var out hookOut
	h.mustCLI(&out, "vmi", "hooks", name)
	if len(out.Items.Errors) != 0 {
		h.t.Fatalf("vmi hooks: hook points not read: %v", out.Items.Errors)
	}
	return out
}

func findingsOf(r scanReport, kind string) []string {
	var out []string
	for _, f := range r.Findings {
		if f.Kind == kind {
			out = append(out, f.Summary)
		}
	}
	return out
}

// TestVMIHooks: the modern hook points of a live guest. The guest loads a
// kprobe through tracefs (as a tracing tool or a rootkit using the kernel's
// own kprobe events would); `vmi hooks` lists it on its target with the
// kernel's dispatcher as handler, the LSM and netfilter hooks are all
// owned by the kernel, and no finding is raised. Then the test, as a
// rootkit, points an LSM hook (one the guest never calls) at a page
// outside kernel text and every module: hook_unknown_owner names the hook
// point and the address; pointed into a module, the module is named as
// its owner and nothing is reported.
func TestVMIHooks(t *testing.T) {
	h := newHost(t)
	script := `mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
T=/sys/kernel/tracing
echo 'p:bw do_sys_openat2' >>$T/kprobe_events && echo 1 >$T/events/kprobes/bw/enable && echo "bw-kprobe ok"
cat $T/kprobe_events
unshare -n sleep 100000 &
echo "bw-netns started"`
	h.mustCLI(nil, "vm", "create", "vmih", "--kernel", filepath.Join(imgDir, "vmlinuz"),
		"--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", "256",
		"--cmdline", "bulwark.hostname=vmih", "--disk", h.userdata("vmih", script)+":ro")
	h.mustCLI(nil, "vm", "start", "vmih")
	h.waitConsole("vmih", "bulwark-userdata exit", 1)
	if !strings.Contains(h.consoleLog("vmih"), "bw-kprobe ok") {
		t.Fatalf("the guest could not set its kprobe:\n%s", h.consoleLog("vmih"))
	}

	hv := h.vmiHooks("vmih")
	t.Logf("vmi hooks: %v in %.1f ms", hv.Items.Counts, hv.Millis)
	var kprobe, ftrace, otherNS bool
	var lsm []guest.Hook
	for _, hk := range hv.Items.Hooks {
		if !hk.Known {
			t.Errorf("clean guest: %s hook on %s calls %s (owner %s)", hk.Point, hk.Target, hk.Symbol, hk.Owner)
		}
		switch hk.Point {
		case "kprobe":
			t.Logf("kprobe: %s -> %s (%s; %s)", hk.Target, hk.Symbol, hk.Owner, hk.Detail)
			if hk.Target == "do_sys_openat2" && hk.Symbol == "kprobe_dispatcher" && hk.Owner == "kernel" {
				kprobe = true
			}
		case "ftrace":
			t.Logf("ftrace: %s -> %s (%s; %s)", hk.Target, hk.Symbol, hk.Owner, hk.Detail)
			// The kprobe sits on the function's ftrace site.
			if hk.Symbol == "kprobe_ftrace_handler" && strings.Contains(hk.Target, "do_sys_openat2") {
				ftrace = true
			}
		case "lsm":
			lsm = append(lsm, hk)
		case "netfilter":
			t.Logf("netfilter: %s -> %s (%s)", hk.Target, hk.Symbol, hk.Owner)
			if hk.Owner != "kernel" && !strings.HasPrefix(hk.Owner, "module ") {
				t.Errorf("netfilter hook %+v", hk)
			}
			// The namespace the guest made has its own hooks (AppArmor
			// registers per namespace): every namespace is read.
			otherNS = otherNS || strings.HasPrefix(hk.Target, "netns ")
		}
	}
	if !kprobe || !ftrace {
		t.Fatalf("the guest's kprobe on do_sys_openat2 is not listed (kprobe %v, ftrace ops %v):\n%+v", kprobe, ftrace, hv.Items.Hooks)
	}
	if !otherNS {
		t.Errorf("no netfilter hook of the guest's second network namespace is listed")
	}
	if len(lsm) < 100 {
		t.Fatalf("only %d LSM hooks (the Debian kernel's BPF LSM alone has one per hook)", len(lsm))
	}
	if out, _, err := h.cli("vmi", "hooks", "vmih"); err != nil || !strings.Contains(out, "kprobe_dispatcher") {
		t.Fatalf("vmi hooks (table): %v\n%s", err, out)
	} else if lines := strings.Split(out, "\n"); len(lines) > 3 {
		t.Logf("vmi hooks (table), first lines:\n%s", strings.Join(lines[:3], "\n"))
	}
	if out, _, err := h.cli("vmi", "bpf", "vmih"); err != nil || !strings.Contains(out, "0 programs, 0 links") {
		t.Fatalf("vmi bpf (table): %v\n%s", err, out)
	}
	var bpf struct {
		Items guest.BPFView `json:"items"`
	}
	h.mustCLI(&bpf, "vmi", "bpf", "vmih")
	if len(bpf.Items.Errors) != 0 || len(bpf.Items.Programs) != 0 {
		t.Fatalf("vmi bpf on a guest that loads no BPF program: %+v", bpf.Items)
	}
	rep := h.vmiCheck("vmih")
	for _, kind := range []string{"hook_unknown_owner", "bpf_tracing_program"} {
		if f := findingsOf(rep, kind); len(f) != 0 {
			t.Fatalf("clean guest with a kernel kprobe: %s:\n%s", kind, strings.Join(f, "\n"))
		}
	}
	for _, f := range findingsOf(rep, "scan_error") {
		for _, view := range []string{"hook owners", "kprobe hooks", "ftrace hooks", "netfilter hooks", "lsm hooks", "BPF programs"} {
			if strings.HasPrefix(f, view+" ") {
				t.Fatalf("clean guest: %s", f)
			}
		}
	}

	// The rootkit: an LSM hook the guest never calls (InfiniBand), its
	// security_hook_list entry's function pointer replaced.
	var victim *guest.Hook
	for i, hk := range lsm {
		if hk.Target == "ib_pkey_access" {
			victim = &lsm[i]
		}
	}
	if victim == nil {
		t.Fatal("no ib_pkey_access LSM hook to plant on")
	}
	v := h.vm("vmih")
	rk := newRootkit(t, fmt.Sprintf("/proc/%d/fd/3", v.Runtime.PID), 256<<20, filepath.Join(imgDir, "vmlinuz"))
	entry, _ := strconv.ParseUint(victim.Struct, 0, 64)
	hookOff, err := rk.k.Off("security_hook_list.hook")
	if err != nil {
		t.Fatal(err)
	}
	orig := rk.u64(entry + hookOff)
	// A page of the direct map: neither kernel text nor any module.
	evil := rk.k.PageOffset + 0x7000
	rk.put64(entry+hookOff, evil)
	rep = h.vmiCheck("vmih")
	want := fmt.Sprintf("lsm hook on ib_pkey_access calls %#x, outside kernel text and every listed module", evil)
	if f := findingsOf(rep, "hook_unknown_owner"); len(f) != 1 || f[0] != want {
		t.Fatalf("planted LSM hook: want %q, got:\n%s", want, kinds(rep))
	}
	for _, hk := range h.vmiHooks("vmih").Items.Hooks {
		if hk.Target == "ib_pkey_access" && hk.Struct == victim.Struct && (hk.Owner != "unknown" || hk.Known) {
			t.Fatalf("vmi hooks shows the planted hook as %+v", hk)
		}
	}

	// Pointed into a listed module instead, the module owns it.
	var mods struct {
		Items []guest.Module `json:"items"`
	}
	h.mustCLI(&mods, "vmi", "modules", "vmih")
	if len(mods.Items) == 0 || mods.Items[0].Base == 0 {
		t.Fatalf("no module to point into: %+v", mods.Items)
	}
	m := mods.Items[0]
	rk.put64(entry+hookOff, m.Base+0x10)
	found := false
	for _, hk := range h.vmiHooks("vmih").Items.Hooks {
		if hk.Target == "ib_pkey_access" && hk.Struct == victim.Struct {
			found = hk.Owner == "module "+m.Name && hk.Known && hk.Symbol == fmt.Sprintf("[%s]+0x10", m.Name)
			if !found {
				t.Fatalf("hook into module %s shown as %+v", m.Name, hk)
			}
		}
	}
	if !found {
		t.Fatal("the ib_pkey_access hook disappeared")
	}
	if f := findingsOf(h.vmiCheck("vmih"), "hook_unknown_owner"); len(f) != 0 {
		t.Fatalf("a hook owned by a listed module is reported: %v", f)
	}
	rk.put64(entry+hookOff, orig)
	if f := findingsOf(h.vmiCheck("vmih"), "hook_unknown_owner"); len(f) != 0 {
		t.Fatalf("after restoring the hook: %v", f)
	}
}
