package guest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"time"
)

// The hook points current Linux rootkits use instead of the syscall table:
// kprobes, ftrace ops, netfilter hooks and LSM hook lists. Each is read
// from guest memory and every handler it would call is attributed to an
// owner: kernel text, a module on the module list, or unknown (code
// outside both, such as a hidden module or a page the attacker allocated).

// Hook is one handler registered at a hook point.
type Hook struct {
	Point   string `json:"point"`   // kprobe, kretprobe, ftrace, netfilter, lsm
	Target  string `json:"target"`  // what is hooked: a function, "ipv4 LOCAL_IN #0", an LSM hook name
	Handler string `json:"handler"` // hex address of the function called
	Symbol  string `json:"symbol"`  // the handler named: "kprobe_dispatcher", "[nf_conntrack]+0x1a0", "0xffff..."
	Owner   string `json:"owner"`   // "kernel", "module NAME" or "unknown"
	Known   bool   `json:"known_owner"`
	Detail  string `json:"detail,omitempty"`
	Struct  string `json:"struct"` // hex address of the registering structure
}

// HookPoints names the hook points, in the order Hooks lists them.
var HookPoints = []string{"kprobe", "ftrace", "netfilter", "lsm"}

// Walk limits. The kernel's own limits are far lower (1024 netfilter hooks
// per chain, a few hundred LSM hooks); ours only keep a hostile guest from
// making a walk unbounded.
const (
	MaxHooks         = 1 << 14 // per hook point
	maxHookList      = 4096    // entries in one hlist
	maxNFHookEntries = 1024    // MAX_HOOK_COUNT in net/netfilter/core.c
	maxFtraceHashLog = 12      // FTRACE_HASH_MAX_BITS
	maxFilterNames   = 8       // ftrace filter functions named per ops
	hookWalkTime     = time.Second
)

// kprobeTableSize is KPROBE_TABLE_SIZE (1 << KPROBE_HASH_BITS, 6 since 2.6).
const kprobeTableSize = 64

// Flags of struct kprobe (include/linux/kprobes.h, unchanged since 3.x).
const (
	kprobeFlagGone     = 1
	kprobeFlagDisabled = 2
	kprobeFlagFtrace   = 8
)

// Owners attributes code addresses: kernel text or a module on the
// module list. It is built once per view from a fresh module walk.
type Owners struct {
	textLo, textHi uint64
	mods           []Module // sorted by Base, Size > 0
}

// Owners reads kernel text bounds and the module list.
func (k *Kernel) Owners() (*Owners, error) {
	lo, hi, err := k.textRange()
	if err != nil {
		return nil, err
	}
	mods, err := k.Modules()
	if err != nil {
		return nil, fmt.Errorf("module list: %w", err)
	}
	o := &Owners{textLo: lo, textHi: hi}
	for _, m := range mods {
		if m.Base != 0 && m.Size > 0 && m.Base+m.Size > m.Base {
			o.mods = append(o.mods, m)
		}
	}
	sort.Slice(o.mods, func(i, j int) bool { return o.mods[i].Base < o.mods[j].Base })
	return o, nil
}

// Of names the owner of addr and whether it is known; mod is the module's
// name when a module owns it.
func (o *Owners) Of(addr uint64) (owner string, known bool, mod *Module) {
	if addr >= o.textLo && addr < o.textHi {
		return "kernel", true, nil
	}
	i := sort.Search(len(o.mods), func(i int) bool { return o.mods[i].Base+o.mods[i].Size > addr })
	if i < len(o.mods) && addr >= o.mods[i].Base {
		return "module " + o.mods[i].Name, true, &o.mods[i]
	}
	return "unknown", false, nil
}

// hook fills a Hook's handler, symbol and owner.
func (k *Kernel) hook(o *Owners, point, target string, handler, structAddr uint64, detail string) Hook {
	owner, known, mod := o.Of(handler)
	h := Hook{Point: point, Target: target, Handler: hex64(handler), Owner: owner, Known: known,
		Detail: detail, Struct: hex64(structAddr)}
	switch {
	case mod != nil:
		h.Symbol = fmt.Sprintf("[%s]+%#x", mod.Name, handler-mod.Base)
	case known:
		h.Symbol = k.Name(handler)
	default:
		h.Symbol = hex64(handler)
	}
	return h
}

// codeName names a code address that is hooked (a kprobe's or ftrace
// filter's target): a kernel symbol, a module offset, or the address.
func (k *Kernel) codeName(o *Owners, a uint64) string {
	if _, known, mod := o.Of(a); mod != nil {
		return fmt.Sprintf("[%s]+%#x", mod.Name, a-mod.Base)
	} else if known {
		if n := k.Name(a); n != "" {
			return n
		}
	}
	return hex64(a)
}

func hex64(v uint64) string { return fmt.Sprintf("%#x", v) }

// HookView is every hook point read at once; a point that could not be
// read has an entry in Errors and the others are still listed.
type HookView struct {
	Hooks  []Hook            `json:"hooks"`
	Counts map[string]int    `json:"counts"`
	Errors map[string]string `json:"errors,omitempty"`
}

// Hooks reads every hook point. It fails only when owners cannot be
// attributed (kernel text bounds or the module list unreadable).
func (k *Kernel) Hooks() (*HookView, error) {
	o, err := k.Owners()
	if err != nil {
		return nil, fmt.Errorf("hook owners: %w", err)
	}
	v := &HookView{Hooks: []Hook{}, Counts: map[string]int{}}
	for _, p := range HookPoints {
		hs, err := k.HookPoint(p, o)
		if err != nil {
			if v.Errors == nil {
				v.Errors = map[string]string{}
			}
			v.Errors[p] = err.Error()
		}
		v.Counts[p] = len(hs)
		v.Hooks = append(v.Hooks, hs...)
	}
	return v, nil
}

// HookPoint reads one hook point ("kprobe", "ftrace", "netfilter", "lsm").
// What was read before an error is returned with it.
func (k *Kernel) HookPoint(point string, o *Owners) ([]Hook, error) {
	b := NewBudget(4*MaxHooks, hookWalkTime)
	switch point {
	case "kprobe":
		return k.kprobes(o, b)
	case "ftrace":
		return k.ftraceOps(o, b)
	case "netfilter":
		return k.netfilterHooks(o, b)
	case "lsm":
		return k.lsmHooks(o, b)
	}
	return nil, fmt.Errorf("unknown hook point %q", point)
}

// offsets reads several profile offsets at once.
func (k *Kernel) offsets(paths ...string) (map[string]uint64, error) {
	m := make(map[string]uint64, len(paths))
	for _, p := range paths {
		o, err := k.Off(p)
		if err != nil {
			return nil, err
		}
		m[p] = o
	}
	return m, nil
}

// walkHlist follows an hlist from its first node, calling fn with each
// node's address; seen is shared across the lists of one view, so a node
// linked into two lists (or a cycle) ends the walk with an error.
func (k *Kernel) walkHlist(first uint64, what string, b *Budget, seen map[uint64]bool, fn func(node uint64) error) error {
	n := 0
	for node := first; node != 0; n++ {
		if err := b.Take(); err != nil {
			return err
		}
		if n >= maxHookList {
			return fmt.Errorf("%s has more than %d entries", what, maxHookList)
		}
		if seen[node] {
			return fmt.Errorf("%s loops back to %#x", what, node)
		}
		seen[node] = true
		if err := fn(node); err != nil {
			return err
		}
		next, err := k.U64(node) // hlist_node.next is the first member
		if err != nil {
			return fmt.Errorf("%s at %#x: %w", what, node, err)
		}
		node = next
	}
	return nil
}

// CString reads a NUL-terminated string of at most max bytes at va, page
// by page (a short string at the end of a mapped page must not fail for
// the unmapped page after it), made printable.
func (k *Kernel) CString(va uint64, max int) (string, error) {
	if va == 0 {
		return "", nil
	}
	var out []byte
	for len(out) < max {
		room := int(4096 - (va+uint64(len(out)))&4095)
		buf := make([]byte, min(room, max-len(out)))
		if err := k.Read(va+uint64(len(out)), buf); err != nil {
			return printable(string(out)), err
		}
		if i := bytes.IndexByte(buf, 0); i >= 0 {
			return printable(string(append(out, buf[:i]...))), nil
		}
		out = append(out, buf...)
	}
	return printable(string(out)), nil
}

// kprobes walks kprobe_table's hash chains. A kprobe whose pre_handler is
// aggr_pre_handler stands for several probes on one address: its `list`
// holds the real ones, each attributed on its own. A kretprobe's own
// handler lives in the struct kretprobe around the kprobe.
func (k *Kernel) kprobes(o *Owners, b *Budget) ([]Hook, error) {
	table, err := k.Sym("kprobe_table")
	if err != nil {
		return nil, err
	}
	off, err := k.offsets("kprobe.hlist", "kprobe.list", "kprobe.addr", "kprobe.symbol_name", "kprobe.pre_handler",
		"kprobe.post_handler", "kprobe.flags")
	if err != nil {
		return nil, err
	}
	aggr, _ := k.Sym("aggr_pre_handler")
	kret, _ := k.Sym("pre_handler_kretprobe")
	retOff, retErr := k.Off("kretprobe.handler")
	var out []Hook
	seen := map[uint64]bool{}
	one := func(kp uint64, what string) error {
		addr, err := k.U64(kp + off["kprobe.addr"])
		if err != nil {
			return fmt.Errorf("%s at %#x: %w", what, kp, err)
		}
		flags, _ := k.U32(kp + off["kprobe.flags"])
		var notes []string
		if sp, _ := k.U64(kp + off["kprobe.symbol_name"]); sp != 0 {
			if s, err := k.CString(sp, 128); err == nil && s != "" {
				notes = append(notes, "symbol_name="+s)
			}
		}
		for _, f := range []struct {
			bit  uint32
			name string
		}{{kprobeFlagDisabled, "disabled"}, {kprobeFlagGone, "gone"}, {kprobeFlagFtrace, "on ftrace"}} {
			if flags&f.bit != 0 {
				notes = append(notes, f.name)
			}
		}
		target := k.codeName(o, addr)
		for _, h := range []struct{ path, role string }{{"kprobe.pre_handler", "pre_handler"}, {"kprobe.post_handler", "post_handler"}} {
			fn, err := k.U64(kp + off[h.path])
			if err != nil {
				return fmt.Errorf("%s at %#x: %w", what, kp, err)
			}
			if fn == 0 || fn == aggr && aggr != 0 {
				continue
			}
			point := "kprobe"
			if fn == kret && kret != 0 && retErr == nil {
				// struct kretprobe begins with its kprobe.
				if rh, err := k.U64(kp + retOff); err == nil && rh != 0 {
					out = append(out, k.hook(o, "kretprobe", target, rh, kp, strings.Join(append([]string{"handler"}, notes...), ", ")))
				}
			}
			out = append(out, k.hook(o, point, target, fn, kp, strings.Join(append([]string{h.role}, notes...), ", ")))
		}
		if len(out) > MaxHooks {
			return ErrBudget
		}
		return nil
	}
	var buckets [kprobeTableSize * 8]byte
	if err := k.Read(table, buckets[:]); err != nil {
		return nil, fmt.Errorf("kprobe_table: %w", err)
	}
	for i := 0; i < kprobeTableSize; i++ {
		first := binary.LittleEndian.Uint64(buckets[8*i:])
		err := k.walkHlist(first, fmt.Sprintf("kprobe_table[%d]", i), b, seen, func(node uint64) error {
			kp := node - off["kprobe.hlist"]
			if aggr != 0 {
				if pre, err := k.U64(kp + off["kprobe.pre_handler"]); err == nil && pre == aggr {
					// An aggregate: its probes hang off kprobe.list.
					return k.walkList(kp+off["kprobe.list"], "an aggregated kprobe's list", maxHookList, func(e uint64) error {
						if err := b.Take(); err != nil {
							return err
						}
						return one(e-off["kprobe.list"], "aggregated kprobe")
					})
				}
			}
			return one(kp, "kprobe")
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// ftraceOps walks ftrace_ops_list up to ftrace_list_end. Each ops' func is
// called for every function its filter hash selects (all functions when
// the hash is empty); up to maxFilterNames of them are named.
func (k *Kernel) ftraceOps(o *Owners, b *Budget) ([]Hook, error) {
	head, err := k.Sym("ftrace_ops_list")
	if err != nil {
		return nil, err
	}
	end, err := k.Sym("ftrace_list_end")
	if err != nil {
		return nil, err
	}
	off, err := k.offsets("ftrace_ops.func", "ftrace_ops.next", "ftrace_ops.flags", "ftrace_ops.func_hash",
		"ftrace_ops_hash.filter_hash", "ftrace_hash.size_bits", "ftrace_hash.buckets", "ftrace_hash.count",
		"ftrace_func_entry.hlist", "ftrace_func_entry.ip")
	if err != nil {
		return nil, err
	}
	ops, err := k.U64(head)
	if err != nil {
		return nil, fmt.Errorf("ftrace_ops_list: %w", err)
	}
	var out []Hook
	seen := map[uint64]bool{}
	for ops != end {
		if err := b.Take(); err != nil {
			return out, err
		}
		if ops == 0 {
			return out, fmt.Errorf("ftrace_ops_list ends in NULL, not at ftrace_list_end")
		}
		if seen[ops] || len(out) >= MaxHooks {
			return out, fmt.Errorf("ftrace_ops_list loops back to %#x", ops)
		}
		seen[ops] = true
		fn, err := k.U64(ops + off["ftrace_ops.func"])
		if err != nil {
			return out, fmt.Errorf("ftrace_ops at %#x: %w", ops, err)
		}
		flags, _ := k.U64(ops + off["ftrace_ops.flags"])
		target := k.ftraceFilter(o, ops, off, b)
		out = append(out, k.hook(o, "ftrace", target, fn, ops, fmt.Sprintf("flags=%#x", flags)))
		if ops, err = k.U64(ops + off["ftrace_ops.next"]); err != nil {
			return out, fmt.Errorf("ftrace_ops.next: %w", err)
		}
	}
	return out, nil
}

// ftraceFilter describes the functions an ops traces, from its filter
// hash: "do_sys_openat2+0x4", "f1, f2 (+3 more)", "all functions".
func (k *Kernel) ftraceFilter(o *Owners, ops uint64, off map[string]uint64, b *Budget) string {
	fh, err := k.U64(ops + off["ftrace_ops.func_hash"])
	if err != nil || fh == 0 {
		return "(no filter hash)"
	}
	hash, err := k.U64(fh + off["ftrace_ops_hash.filter_hash"])
	if err != nil {
		return "(filter hash unreadable)"
	}
	if hash == 0 {
		return "all functions"
	}
	bits, err1 := k.U64(hash + off["ftrace_hash.size_bits"])
	buckets, err2 := k.U64(hash + off["ftrace_hash.buckets"])
	count, err3 := k.U64(hash + off["ftrace_hash.count"])
	if err1 != nil || err2 != nil || err3 != nil || bits > maxFtraceHashLog {
		return "(filter hash unreadable)"
	}
	if count == 0 || buckets == 0 {
		return "all functions"
	}
	var names []string
	seen := map[uint64]bool{}
	for i := uint64(0); i < 1<<bits && len(names) < maxFilterNames; i++ {
		first, err := k.U64(buckets + 8*i)
		if err != nil {
			break
		}
		k.walkHlist(first, "an ftrace filter hash", b, seen, func(node uint64) error {
			if len(names) >= maxFilterNames {
				return errEnough
			}
			if ip, err := k.U64(node - off["ftrace_func_entry.hlist"] + off["ftrace_func_entry.ip"]); err == nil {
				names = append(names, k.codeName(o, ip))
			}
			return nil
		})
	}
	sort.Strings(names)
	s := strings.Join(names, ", ")
	if count > uint64(len(names)) {
		s += fmt.Sprintf(" (+%d more)", count-uint64(len(names)))
	}
	return s
}

var errEnough = fmt.Errorf("enough")

// Netfilter hook numbers (enum nf_inet_hooks, enum of NF_ARP_*: UAPI).
var (
	nfInetHooks = []string{"PRE_ROUTING", "LOCAL_IN", "FORWARD", "LOCAL_OUT", "POST_ROUTING"}
	nfArpHooks  = []string{"IN", "OUT", "FORWARD"}
)

// netfilterHooks reads init_net's per-family hook arrays: each slot points
// to a struct nf_hook_entries {u16 num_hook_entries; struct nf_hook_entry
// hooks[]} whose entries hold the function called for every packet. Only
// the initial network namespace is read.
func (k *Kernel) netfilterHooks(o *Owners, b *Budget) ([]Hook, error) {
	initNet, err := k.Sym("init_net")
	if err != nil {
		return nil, err
	}
	// Every network namespace (net_namespace_list), init_net first; a
	// kernel whose profile lacks the list gets init_net alone.
	nets := []uint64{initNet}
	if head, err := k.Sym("net_namespace_list"); err == nil {
		if lo, err := k.Off("net.list"); err == nil {
			nets = nets[:0]
			if err := k.walkList(head, "the network namespace list", maxNetNamespaces, func(e uint64) error {
				nets = append(nets, e-lo)
				return nil
			}); err != nil {
				return nil, err
			}
		}
	}
	var out []Hook
	for _, net := range nets {
		hs, err := k.netfilterHooksOf(o, b, net, net == initNet)
		out = append(out, hs...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// maxNetNamespaces bounds the namespaces whose hooks are read.
const maxNetNamespaces = 4096

// netfilterHooksOf reads one namespace's hook arrays; hooks of another
// namespace than init_net are named with its inode number (as
// /proc/PID/ns/net shows it).
func (k *Kernel) netfilterHooksOf(o *Owners, b *Budget, net uint64, initial bool) ([]Hook, error) {
	where := "init_net"
	ns := ""
	if !initial {
		where = fmt.Sprintf("netns at %#x", net)
		ns = where + " "
		if io, err := k.Off("net.ns.inum"); err == nil {
			if inum, err := k.U32(net + io); err == nil {
				where = fmt.Sprintf("netns %d", inum)
				ns = where + " "
			}
		}
	}
	off, err := k.offsets("nf_hook_entries.num_hook_entries", "nf_hook_entries.hooks", "nf_hook_entry.hook")
	if err != nil {
		return nil, err
	}
	esz := k.L.Sizes["nf_hook_entry"]
	if esz < 8 || esz > 64 {
		return nil, fmt.Errorf("size of nf_hook_entry (%d) not in the profile or implausible", esz)
	}
	var out []Hook
	families := 0
	for _, fam := range []struct {
		name  string
		hooks []string
	}{{"ipv4", nfInetHooks}, {"ipv6", nfInetHooks}, {"arp", nfArpHooks}, {"bridge", nfInetHooks}} {
		path := "net.nf.hooks_" + fam.name
		base, err := k.Off(path)
		if err != nil {
			continue // a family the kernel was built without
		}
		families++
		n := int(k.L.Sizes[path] / 8)
		if n <= 0 || n > len(fam.hooks) {
			n = len(fam.hooks)
		}
		for h := 0; h < n; h++ {
			if err := b.Take(); err != nil {
				return out, err
			}
			entries, err := k.U64(net + base + 8*uint64(h))
			if err != nil {
				return out, fmt.Errorf("%s %s hooks: %w", where, fam.name, err)
			}
			if entries == 0 {
				continue
			}
			var cnt [2]byte
			if err := k.Read(entries+off["nf_hook_entries.num_hook_entries"], cnt[:]); err != nil {
				return out, fmt.Errorf("%s %s hook entries at %#x: %w", fam.name, fam.hooks[h], entries, err)
			}
			num := int(binary.LittleEndian.Uint16(cnt[:]))
			if num > maxNFHookEntries {
				return out, fmt.Errorf("%s %s claims %d hook entries (at most %d)", fam.name, fam.hooks[h], num, maxNFHookEntries)
			}
			raw := make([]byte, uint64(num)*esz)
			if err := k.Read(entries+off["nf_hook_entries.hooks"], raw); err != nil {
				return out, fmt.Errorf("%s %s hook entries at %#x: %w", fam.name, fam.hooks[h], entries, err)
			}
			for i := 0; i < num; i++ {
				if err := b.Take(); err != nil {
					return out, err
				}
				fn := binary.LittleEndian.Uint64(raw[uint64(i)*esz+off["nf_hook_entry.hook"]:])
				out = append(out, k.hook(o, "netfilter", fmt.Sprintf("%s%s %s #%d", ns, fam.name, fam.hooks[h], i), fn, entries, ""))
			}
		}
	}
	if families == 0 {
		return nil, fmt.Errorf("offset of net.nf.hooks_ipv4 not in the profile")
	}
	return out, nil
}

// lsmHooks walks security_hook_heads: one hlist per LSM hook, each entry a
// struct security_hook_list whose `hook` the kernel calls (the 6.1 form;
// kernels from 6.9 use static calls and have no such lists).
func (k *Kernel) lsmHooks(o *Owners, b *Budget) ([]Hook, error) {
	heads, err := k.Sym("security_hook_heads")
	if err != nil {
		return nil, err
	}
	off, err := k.offsets("security_hook_list.list", "security_hook_list.head", "security_hook_list.hook", "security_hook_list.lsm")
	if err != nil {
		return nil, err
	}
	size := k.L.Sizes["security_hook_heads"]
	if size == 0 || size%8 != 0 || size > 8*4096 {
		return nil, fmt.Errorf("size of security_hook_heads (%d) not in the profile or implausible", size)
	}
	names := map[uint64]string{}
	for p, v := range k.L.Offsets {
		if n, ok := strings.CutPrefix(p, "security_hook_heads."); ok {
			names[v] = n
		}
	}
	raw := make([]byte, size)
	if err := k.Read(heads, raw); err != nil {
		return nil, fmt.Errorf("security_hook_heads: %w", err)
	}
	var out []Hook
	seen := map[uint64]bool{}
	for i := uint64(0); i < size/8; i++ {
		name, ok := names[8*i]
		if !ok {
			name = fmt.Sprintf("security_hook_heads+%#x", 8*i)
		}
		first := binary.LittleEndian.Uint64(raw[8*i:])
		err := k.walkHlist(first, "LSM hook list "+name, b, seen, func(node uint64) error {
			e := node - off["security_hook_list.list"]
			fn, err := k.U64(e + off["security_hook_list.hook"])
			if err != nil {
				return fmt.Errorf("LSM hook %s entry at %#x: %w", name, e, err)
			}
			var notes []string
			if lp, _ := k.U64(e + off["security_hook_list.lsm"]); lp != 0 {
				if s, err := k.CString(lp, 32); err == nil && s != "" {
					notes = append(notes, "lsm="+s)
				}
			}
			if h, err := k.U64(e + off["security_hook_list.head"]); err == nil && h != heads+8*i {
				notes = append(notes, fmt.Sprintf("entry names head %#x, not its own list's", h))
			}
			out = append(out, k.hook(o, "lsm", name, fn, e, strings.Join(notes, ", ")))
			if len(out) > MaxHooks {
				return ErrBudget
			}
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}
