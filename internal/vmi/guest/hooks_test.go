package guest

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/mem"
)

// A synthetic guest with every hook point, laid out in the direct map
// (physical address pa is kernel address pageOffset+pa). Offsets are the
// Debian 6.1 kernel's where they matter, smaller elsewhere.
const (
	hkText     = 0x1000 // _stext .. _etext = 0x1000 .. 0x2000: "kernel text"
	hkModules  = 0x3000 // the module list head
	hkModule   = 0x3100 // struct module "nf_evil" (listed), core at hkModCore
	hkModCore  = 0x8000
	hkKprobes  = 0x4000 // kprobe_table[64]
	hkFtrace   = 0x4200 // ftrace_ops_list (a pointer)
	hkListEnd  = 0x4300 // ftrace_list_end
	hkKprobe   = 0x5000
	hkKprobe2  = 0x5100
	hkOps      = 0x5200
	hkHash     = 0x5400 // ftrace_ops_hash, then ftrace_hash, buckets, entries
	hkNet      = 0x6000 // init_net
	hkNFEnt    = 0x6200 // nf_hook_entries
	hkLSMHeads = 0x7000
	hkLSMList  = 0x7100
	hkStrings  = 0x7800
	hkProgIDR  = 0x9000
	hkLinkIDR  = 0x9040
	hkXANode   = 0x9100
	hkProg     = 0xa000
	hkAux      = 0xa100
	hkLink     = 0xa800
	hkSize     = 0x10000
)

var hookOffsets = map[string]uint64{
	"module.list": 0x8, "module.name": 0x18, "module.state": 0, "module.core_layout.base": 0x60, "module.core_layout.size": 0x68,
	"kprobe.hlist": 0, "kprobe.list": 16, "kprobe.addr": 40, "kprobe.symbol_name": 48, "kprobe.pre_handler": 64,
	"kprobe.post_handler": 72, "kprobe.flags": 120, "kretprobe.handler": 128,
	"ftrace_ops.func": 0, "ftrace_ops.next": 8, "ftrace_ops.flags": 16, "ftrace_ops.func_hash": 88,
	"ftrace_ops_hash.filter_hash": 8, "ftrace_hash.size_bits": 0, "ftrace_hash.buckets": 8, "ftrace_hash.count": 16,
	"ftrace_func_entry.hlist": 0, "ftrace_func_entry.ip": 16,
	"net.nf.hooks_ipv4": 0x10, "net.nf.hooks_ipv6": 0x38,
	"nf_hook_entries.num_hook_entries": 0, "nf_hook_entries.hooks": 8, "nf_hook_entry.hook": 0,
	"security_hook_list.list": 0, "security_hook_list.head": 16, "security_hook_list.hook": 24, "security_hook_list.lsm": 32,
	"security_hook_heads.file_open": 0, "security_hook_heads.task_kill": 8, "security_hook_heads.bpf": 16,
	"idr.idr_rt": 0, "xarray.xa_head": 8, "xa_node.shift": 0, "xa_node.slots": 0x28,
	"bpf_prog.type": 4, "bpf_prog.expected_attach_type": 8, "bpf_prog.jited_len": 16, "bpf_prog.tag": 20,
	"bpf_prog.bpf_func": 48, "bpf_prog.aux": 56, "bpf_prog_aux.id": 32, "bpf_prog_aux.name": 0x40,
	"bpf_prog_aux.attach_func_name": 0x60, "bpf_link.id": 8, "bpf_link.type": 12, "bpf_link.prog": 24,
}

func hva(pa uint64) uint64 { return pageOffset + pa }

// hookGuest builds the clean synthetic guest: every handler in kernel text
// or in the listed module.
func hookGuest() []byte {
	b := make([]byte, hkSize)
	p := func(pa, v uint64) { binary.LittleEndian.PutUint64(b[pa:], v) }
	str := func(pa uint64, s string) uint64 { copy(b[pa:], s+"\x00"); return hva(pa) }
	// One listed module, "nf_evil", with 4 KiB of core at hkModCore.
	p(hkModules, hva(hkModule+8))
	p(hkModules+8, hva(hkModule+8))
	p(hkModule+8, hva(hkModules))
	p(hkModule+16, hva(hkModules))
	copy(b[hkModule+0x18:], "nf_evil\x00")
	p(hkModule+0x60, hva(hkModCore))
	p(hkModule+0x68, 0x1000)
	// kprobe_table[5]: one kprobe on text+0x100 with a kernel pre_handler.
	p(hkKprobes+5*8, hva(hkKprobe))
	p(hkKprobe+40, hva(hkText+0x100))
	p(hkKprobe+48, str(hkStrings, "do_sys_openat2"))
	p(hkKprobe+64, hva(hkText+0x200))
	binary.LittleEndian.PutUint32(b[hkKprobe+120:], kprobeFlagFtrace)
	// ftrace: one ops (func in text) filtering one function, then the end.
	p(hkFtrace, hva(hkOps))
	p(hkOps, hva(hkText+0x300))
	p(hkOps+8, hva(hkListEnd))
	p(hkOps+88, hva(hkHash))
	p(hkHash+8, hva(hkHash+0x40)) // filter_hash
	p(hkHash+0x40, 1)             // size_bits
	p(hkHash+0x48, hva(hkHash+0x80))
	p(hkHash+0x50, 1) // count
	p(hkHash+0x88, hva(hkHash+0xc0))
	p(hkHash+0xc0+16, hva(hkText+0x100))
	// netfilter: ipv4 LOCAL_IN has two entries, one in text, one in the module.
	p(hkNet+0x10+8, hva(hkNFEnt))
	binary.LittleEndian.PutUint16(b[hkNFEnt:], 2)
	p(hkNFEnt+8, hva(hkText+0x400))
	p(hkNFEnt+24, hva(hkModCore+0x10))
	// LSM: task_kill has one entry in text.
	p(hkLSMHeads+8, hva(hkLSMList))
	p(hkLSMList+16, hva(hkLSMHeads+8))
	p(hkLSMList+24, hva(hkText+0x500))
	p(hkLSMList+32, str(hkStrings+0x40, "apparmor"))
	// BPF: prog_idr holds one xa_node with program id 3 in slot 3.
	p(hkProgIDR+8, hva(hkXANode)|2)
	p(hkXANode+0x28+3*8, hva(hkProg))
	binary.LittleEndian.PutUint32(b[hkProg+4:], 26) // tracing
	binary.LittleEndian.PutUint32(b[hkProg+16:], 100)
	copy(b[hkProg+20:], []byte{1, 2, 3, 4, 5, 6, 7, 8})
	p(hkProg+48, hva(0xe000)) // JIT image: outside text, by design
	p(hkProg+56, hva(hkAux))
	binary.LittleEndian.PutUint32(b[hkAux+32:], 3)
	copy(b[hkAux+0x40:], "hide_files\x00")
	p(hkAux+0x60, str(hkStrings+0x80, "vfs_read"))
	// link_idr: a single entry (no node), a tracing link to the program.
	p(hkLinkIDR+8, hva(hkLink))
	binary.LittleEndian.PutUint32(b[hkLink+8:], 9)
	binary.LittleEndian.PutUint32(b[hkLink+12:], 2)
	p(hkLink+24, hva(hkProg))
	return b
}

func hookKernel(b []byte) *Kernel {
	syms := map[string]uint64{"_stext": hva(hkText), "_etext": hva(hkText + 0x1000), "modules": hva(hkModules),
		"kprobe_table": hva(hkKprobes), "ftrace_ops_list": hva(hkFtrace), "ftrace_list_end": hva(hkListEnd),
		"init_net": hva(hkNet), "security_hook_heads": hva(hkLSMHeads), "prog_idr": hva(hkProgIDR), "link_idr": hva(hkLinkIDR)}
	sizes := map[string]uint64{"nf_hook_entry": 16, "security_hook_heads": 24, "net.nf.hooks_ipv4": 40, "net.nf.hooks_ipv6": 40}
	nearest := func(a uint64) (string, uint64, bool) {
		if a >= hva(hkText) && a < hva(hkText+0x1000) {
			return "fn", a - hva(hkText), true
		}
		return "", 0, false
	}
	return &Kernel{Mem: mem.FromBytes(b), PageOffset: pageOffset,
		L: &Layout{Symbols: syms, Offsets: hookOffsets, Sizes: sizes, Nearest: nearest}}
}

func TestHooksClean(t *testing.T) {
	k := hookKernel(hookGuest())
	v, err := k.Hooks()
	if err != nil || len(v.Errors) != 0 {
		t.Fatalf("%v %v", err, v.Errors)
	}
	want := map[string]int{"kprobe": 1, "ftrace": 1, "netfilter": 2, "lsm": 1}
	for p, n := range want {
		if v.Counts[p] != n {
			t.Errorf("%s: %d hooks, want %d: %+v", p, v.Counts[p], n, v.Hooks)
		}
	}
	byPoint := map[string][]Hook{}
	for _, h := range v.Hooks {
		if !h.Known {
			t.Errorf("clean guest: unknown owner %+v", h)
		}
		byPoint[h.Point] = append(byPoint[h.Point], h)
	}
	kp := byPoint["kprobe"][0]
	if kp.Target != "fn+0x100" || kp.Symbol != "fn+0x200" || kp.Owner != "kernel" ||
		!strings.Contains(kp.Detail, "symbol_name=do_sys_openat2") || !strings.Contains(kp.Detail, "on ftrace") {
		t.Errorf("kprobe: %+v", kp)
	}
	if ft := byPoint["ftrace"][0]; ft.Target != "fn+0x100" || ft.Symbol != "fn+0x300" {
		t.Errorf("ftrace: %+v", ft)
	}
	nf := byPoint["netfilter"]
	if nf[0].Target != "ipv4 LOCAL_IN #0" || nf[1].Owner != "module nf_evil" || nf[1].Symbol != "[nf_evil]+0x10" {
		t.Errorf("netfilter: %+v", nf)
	}
	if l := byPoint["lsm"][0]; l.Target != "task_kill" || l.Detail != "lsm=apparmor" || l.Symbol != "fn+0x500" {
		t.Errorf("lsm: %+v", l)
	}
}

// TestHooksUnknownOwner plants handlers the way a rootkit would, outside
// kernel text and every listed module.
func TestHooksUnknownOwner(t *testing.T) {
	b := hookGuest()
	evil := hva(0xf000)
	binary.LittleEndian.PutUint64(b[hkLSMList+24:], evil)     // LSM hook replaced
	binary.LittleEndian.PutUint64(b[hkNFEnt+8:], evil+0x10)   // netfilter hook replaced
	binary.LittleEndian.PutUint64(b[hkKprobe+72:], evil+0x20) // a post_handler added
	// A second kprobe chained behind the first, with a foreign pre_handler.
	binary.LittleEndian.PutUint64(b[hkKprobe:], hva(hkKprobe2))
	binary.LittleEndian.PutUint64(b[hkKprobe2+40:], hva(hkText+0x10))
	binary.LittleEndian.PutUint64(b[hkKprobe2+64:], evil+0x30)
	k := hookKernel(b)
	v, err := k.Hooks()
	if err != nil || len(v.Errors) != 0 {
		t.Fatalf("%v %v", err, v.Errors)
	}
	var unknown []string
	for _, h := range v.Hooks {
		if !h.Known {
			unknown = append(unknown, h.Point+" "+h.Target+" "+h.Handler+" "+h.Owner)
		}
	}
	got := strings.Join(unknown, "\n")
	for _, w := range []string{"kprobe fn+0x100 0xffff88800000f020 unknown", "kprobe fn+0x10 0xffff88800000f030 unknown",
		"netfilter ipv4 LOCAL_IN #0 0xffff88800000f010 unknown", "lsm task_kill 0xffff88800000f000 unknown"} {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
}

func TestHooksHostile(t *testing.T) {
	for _, c := range []struct {
		name  string
		point string
		poke  func(b []byte)
		want  string
	}{
		{"kprobe cycle", "kprobe", func(b []byte) { binary.LittleEndian.PutUint64(b[hkKprobe:], hva(hkKprobe)) }, "loops"},
		{"kprobe wild", "kprobe", func(b []byte) { binary.LittleEndian.PutUint64(b[hkKprobe:], 0xffff888fffff0000) }, "kprobe"},
		{"ftrace no end", "ftrace", func(b []byte) { binary.LittleEndian.PutUint64(b[hkOps+8:], hva(hkOps)) }, "loops"},
		{"ftrace NULL", "ftrace", func(b []byte) { binary.LittleEndian.PutUint64(b[hkOps+8:], 0) }, "NULL"},
		{"nf huge count", "netfilter", func(b []byte) { binary.LittleEndian.PutUint16(b[hkNFEnt:], 60000) }, "claims 60000"},
		{"lsm cycle", "lsm", func(b []byte) { binary.LittleEndian.PutUint64(b[hkLSMList:], hva(hkLSMList)) }, "loops"},
		{"lsm shared node", "lsm", func(b []byte) { binary.LittleEndian.PutUint64(b[hkLSMHeads+16:], hva(hkLSMList)) }, "loops"},
	} {
		b := hookGuest()
		c.poke(b)
		k := hookKernel(b)
		o, err := k.Owners()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.HookPoint(c.point, o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
	// A filter hash that loops still yields the ops (its target is cut short).
	b := hookGuest()
	binary.LittleEndian.PutUint64(b[hkHash+0xc0:], hva(hkHash+0xc0))
	k := hookKernel(b)
	o, _ := k.Owners()
	if hs, err := k.HookPoint("ftrace", o); err != nil || len(hs) != 1 {
		t.Errorf("looping filter hash: %v %+v", err, hs)
	}
}

func TestBPF(t *testing.T) {
	k := hookKernel(hookGuest())
	v := k.BPF()
	if len(v.Errors) != 0 || len(v.Programs) != 1 || len(v.Links) != 1 {
		t.Fatalf("%+v", v)
	}
	p := v.Programs[0]
	if p.ID != 3 || p.Type != "tracing" || !p.Tracing || p.Name != "hide_files" || p.Tag != "0102030405060708" ||
		p.AttachTo != "vfs_read" || !p.Jited || p.Func != "0xffff88800000e000" {
		t.Errorf("program: %+v", p)
	}
	if l := v.Links[0]; l.ID != 9 || l.Type != "tracing" || l.ProgID != 3 || l.Target != "vfs_read" {
		t.Errorf("link: %+v", l)
	}
	// A node that points at itself, and a wild program pointer.
	b := hookGuest()
	binary.LittleEndian.PutUint64(b[hkXANode+0x28+8:], hva(hkXANode)|2)
	if _, err := hookKernel(b).BPFPrograms(); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("self-referencing node: %v", err)
	}
	b = hookGuest()
	binary.LittleEndian.PutUint64(b[hkXANode+0x28+3*8:], 0xffff888fffff0000)
	if _, err := hookKernel(b).BPFPrograms(); err == nil {
		t.Error("wild program pointer accepted")
	}
}

func TestCString(t *testing.T) {
	b := make([]byte, 8192)
	copy(b[4096-3:], "ab") // NUL at the page's last byte
	k := hookKernel(b)
	if s, err := k.CString(hva(4096-3), 128); err != nil || s != "ab" {
		t.Errorf("%q %v", s, err)
	}
	copy(b[8192-4:], "xyzw") // no NUL before the end of memory
	if s, err := k.CString(hva(8192-4), 128); err == nil {
		t.Errorf("string running off memory: %q", s)
	}
	copy(b[100:], "\x1b[31mred\x00")
	if s, _ := k.CString(hva(100), 128); s != "?[31mred" {
		t.Errorf("control bytes kept: %q", s)
	}
}

// FuzzHooks walks every hook point and both BPF tables over the synthetic
// guest with fuzzed bytes written over it: errors are fine, panics and
// hangs are not.
func FuzzHooks(f *testing.F) {
	f.Add(uint16(hkKprobe), []byte{0, 0x50, 0, 0, 0x80, 0x88, 0xff, 0xff})
	f.Add(uint16(hkNFEnt), []byte{0xff, 0xff})
	f.Add(uint16(hkXANode+0x28), []byte{0x02, 0x91, 0, 0, 0x80, 0x88, 0xff, 0xff})
	f.Add(uint16(hkLSMList), []byte{0, 0x71, 0, 0, 0x80, 0x88, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, at uint16, patch []byte) {
		b := hookGuest()
		if int(at) < len(b) {
			copy(b[at:], patch)
		}
		k := hookKernel(b)
		k.Hooks()
		k.BPF()
	})
}

// BenchmarkHooks is one read of every hook point and both BPF tables of
// the synthetic guest (the cost a scan adds, less the guest's own sizes).
func BenchmarkHooks(b *testing.B) {
	k := hookKernel(hookGuest())
	for i := 0; i < b.N; i++ {
		if v, err := k.Hooks(); err != nil || len(v.Errors) != 0 {
			b.Fatal(err, v.Errors)
		}
		if v := k.BPF(); len(v.Errors) != 0 {
			b.Fatal(v.Errors)
		}
	}
}
