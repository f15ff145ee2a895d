package profile

import (
	"strings"
	"testing"
)

// TestDebianHookOffsets: the Debian 6.1 guest kernel's profile holds every
// offset the hook points need, with the layout the walkers expect.
func TestDebianHookOffsets(t *testing.T) {
	p := debian(t)
	for path, want := range map[string]uint64{
		"kprobe.hlist": 0, "kprobe.addr": 40, "kprobe.pre_handler": 64, "kprobe.flags": 120, "kretprobe.handler": 128,
		"ftrace_ops.func": 0, "ftrace_ops.next": 8, "ftrace_ops.func_hash": 88, "ftrace_func_entry.ip": 16,
		"net.nf.hooks_ipv4": 2600 + 104, "nf_hook_entries.hooks": 8, "nf_hook_entry.hook": 0,
		"security_hook_list.hook": 24, "security_hook_list.lsm": 32,
		"bpf_prog.bpf_func": 48, "bpf_prog.aux": 56, "bpf_prog_aux.id": 32, "bpf_prog_aux.name": 952,
		"bpf_link.prog": 24, "trace_event_call.name": 24, "hlist_node.pprev": 8,
	} {
		if got, ok := p.Offsets[path]; !ok || got != want {
			t.Errorf("%s = %d (%v), want %d", path, got, ok, want)
		}
	}
	if p.Sizes["net.nf.hooks_ipv4"] != 40 || p.Sizes["nf_hook_entry"] != 16 || p.Sizes["security_hook_heads"] != 1944 {
		t.Errorf("sizes: %d %d %d", p.Sizes["net.nf.hooks_ipv4"], p.Sizes["nf_hook_entry"], p.Sizes["security_hook_heads"])
	}
	// Every LSM hook head of the kernel is named, so no hook is shown as
	// an offset on this kernel.
	n := 0
	for path := range p.Offsets {
		if strings.HasPrefix(path, "security_hook_heads.") {
			n++
		}
	}
	if uint64(n)*8 != p.Sizes["security_hook_heads"] {
		t.Errorf("%d LSM hook heads named, the struct holds %d", n, p.Sizes["security_hook_heads"]/8)
	}
	for _, s := range []string{"prog_idr", "link_idr", "kprobe_table", "ftrace_ops_list", "ftrace_list_end", "init_net",
		"security_hook_heads", "aggr_pre_handler", "pre_handler_kretprobe"} {
		if _, ok := p.Symbol(s); !ok {
			t.Errorf("symbol %s not found", s)
		}
	}
}
