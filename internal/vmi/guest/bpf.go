package guest

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
)

// BPFProgram is one loaded eBPF program, from the kernel's prog_idr.
type BPFProgram struct {
	ID         uint32 `json:"id"`
	Type       string `json:"type"` // "kprobe", "tracing", "cgroup_device", ...
	TypeNum    uint32 `json:"type_num"`
	AttachType uint32 `json:"expected_attach_type"`
	Name       string `json:"name"`
	Tag        string `json:"tag"`  // hex, as bpftool shows it
	Func       string `json:"func"` // hex address of bpf_func: the JIT image, or the interpreter
	FuncSymbol string `json:"func_symbol,omitempty"`
	Jited      bool   `json:"jited"`
	AttachTo   string `json:"attach_to,omitempty"` // fentry/fexit/LSM/ext target (aux->attach_func_name)
	Tracing    bool   `json:"tracing"`             // observes or alters other kernel code
	Prog       string `json:"prog"`                // hex address of struct bpf_prog
}

// BPFLink is one BPF link, from link_idr: a program attached somewhere.
type BPFLink struct {
	ID      uint32 `json:"id"`
	Type    string `json:"type"` // "tracing", "raw_tracepoint", "perf_event", ...
	TypeNum uint32 `json:"type_num"`
	ProgID  uint32 `json:"prog_id"`
	Target  string `json:"target,omitempty"` // the attach point where it can be read
	Link    string `json:"link"`             // hex address of struct bpf_link
}

// BPFView is both BPF tables; a table that could not be read has an entry
// in Errors and the other is still listed.
type BPFView struct {
	Programs []BPFProgram      `json:"programs"`
	Links    []BPFLink         `json:"links"`
	Errors   map[string]string `json:"errors,omitempty"`
}

// bpfProgTypes is enum bpf_prog_type (include/uapi/linux/bpf.h: UAPI,
// append-only, so the numbers are the same in every kernel).
var bpfProgTypes = []string{"unspec", "socket_filter", "kprobe", "sched_cls", "sched_act", "tracepoint", "xdp",
	"perf_event", "cgroup_skb", "cgroup_sock", "lwt_in", "lwt_out", "lwt_xmit", "sock_ops", "sk_skb",
	"cgroup_device", "sk_msg", "raw_tracepoint", "cgroup_sock_addr", "lwt_seg6local", "lirc_mode2",
	"sk_reuseport", "flow_dissector", "cgroup_sysctl", "raw_tracepoint_writable", "cgroup_sockopt",
	"tracing", "struct_ops", "ext", "lsm", "sk_lookup", "syscall", "netfilter"}

// bpfLinkTypes is enum bpf_link_type (UAPI, append-only).
var bpfLinkTypes = []string{"unspec", "raw_tracepoint", "tracing", "cgroup", "iter", "netns", "xdp",
	"perf_event", "kprobe_multi", "struct_ops", "netfilter", "tcx", "uprobe_multi", "netkit", "sockmap"}

// Program and link types that run on other kernel code's events or change
// what it does: kprobes, tracepoints, perf events, raw tracepoints,
// fentry/fexit/fmod_ret (tracing), program replacement (ext) and BPF LSM.
// A Bulwark guest loads none of these by itself.
var bpfTracingTypes = map[uint32]bool{2: true, 5: true, 7: true, 17: true, 24: true, 26: true, 28: true, 29: true}

// trace_event_call.flags bit TRACE_EVENT_FL_TRACEPOINT (include/linux/
// trace_events.h; checked against the kernel's BTF by the profile tests).
const TraceEventFlTracepoint = 0x10

// MaxBPFObjects bounds a walk of either IDR.
const MaxBPFObjects = 1 << 16

func enumName(names []string, v uint32) string {
	if int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("type %d", v)
}

// walkIDR visits every pointer stored in an IDR's xarray (root is
// xa_head), the same tree shape as the PID table: internal nodes are
// tagged 2 in the low bits and hold 64 slots; value and retry entries are
// skipped. Each node is visited once; depth is bounded by the tree's
// 64-bit index (at most 11 levels of 6 bits).
func (k *Kernel) walkIDR(root uint64, what string, b *Budget, fn func(entry uint64) error) error {
	slotsOff, err := k.Off("xa_node.slots")
	if err != nil {
		return err
	}
	seen := map[uint64]bool{}
	var walk func(entry uint64, depth int) error
	walk = func(entry uint64, depth int) error {
		if err := b.Take(); err != nil {
			return err
		}
		switch {
		case entry == 0:
			return nil
		case entry&3 == 2 && entry > 4096: // an internal node
			node := entry &^ 3
			if depth > 12 || seen[node] {
				return fmt.Errorf("%s's tree is malformed at %#x", what, node)
			}
			seen[node] = true
			var slots [64 * 8]byte
			if err := k.Read(node+slotsOff, slots[:]); err != nil {
				return fmt.Errorf("%s node %#x: %w", what, node, err)
			}
			for i := 0; i < 64; i++ {
				if err := walk(binary.LittleEndian.Uint64(slots[8*i:]), depth+1); err != nil {
					return err
				}
			}
			return nil
		case entry&3 != 0:
			return nil // value or retry entries
		}
		return fn(entry)
	}
	return walk(root, 0)
}

// idrRoot is the xa_head of the IDR at symbol sym.
func (k *Kernel) idrRoot(sym string) (uint64, error) {
	idr, err := k.Sym(sym)
	if err != nil {
		return 0, err
	}
	off, err := k.offsets("idr.idr_rt", "xarray.xa_head")
	if err != nil {
		return 0, err
	}
	return k.U64(idr + off["idr.idr_rt"] + off["xarray.xa_head"])
}

// BPF reads both tables.
func (k *Kernel) BPF() *BPFView {
	v := &BPFView{Programs: []BPFProgram{}, Links: []BPFLink{}}
	fail := func(what string, err error) {
		if v.Errors == nil {
			v.Errors = map[string]string{}
		}
		v.Errors[what] = err.Error()
	}
	var err error
	if v.Programs, err = retry(k.bpfPrograms); err != nil {
		fail("programs", err)
	}
	if v.Links, err = retry(k.bpfLinks); err != nil {
		fail("links", err)
	}
	if v.Programs == nil {
		v.Programs = []BPFProgram{}
	}
	if v.Links == nil {
		v.Links = []BPFLink{}
	}
	return v
}

// BPFPrograms walks prog_idr: every program with an ID (all loaded ones).
func (k *Kernel) BPFPrograms() ([]BPFProgram, error) { return retry(k.bpfPrograms) }

func (k *Kernel) bpfPrograms() ([]BPFProgram, error) {
	root, err := k.idrRoot("prog_idr")
	if err != nil {
		return nil, err
	}
	off, err := k.offsets("bpf_prog.type", "bpf_prog.expected_attach_type", "bpf_prog.jited_len", "bpf_prog.tag",
		"bpf_prog.bpf_func", "bpf_prog.aux", "bpf_prog_aux.id", "bpf_prog_aux.name", "bpf_prog_aux.attach_func_name")
	if err != nil {
		return nil, err
	}
	lo, hi, err := k.textRange()
	if err != nil {
		return nil, err
	}
	var out []BPFProgram
	b := NewBudget(4*MaxBPFObjects, walkTime)
	err = k.walkIDR(root, "prog_idr", b, func(prog uint64) error {
		if len(out) >= MaxBPFObjects {
			return ErrBudget
		}
		p, err := k.readBPFProg(prog, off)
		if err != nil {
			return fmt.Errorf("bpf_prog at %#x: %w", prog, err)
		}
		if fn, _ := k.U64(prog + off["bpf_prog.bpf_func"]); fn >= lo && fn < hi {
			p.FuncSymbol = k.Name(fn) // the interpreter, not a JIT image
		}
		out = append(out, p)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

func (k *Kernel) readBPFProg(prog uint64, off map[string]uint64) (BPFProgram, error) {
	p := BPFProgram{Prog: hex64(prog)}
	var err error
	if p.TypeNum, err = k.U32(prog + off["bpf_prog.type"]); err != nil {
		return p, err
	}
	p.Type = enumName(bpfProgTypes, p.TypeNum)
	p.Tracing = bpfTracingTypes[p.TypeNum]
	p.AttachType, _ = k.U32(prog + off["bpf_prog.expected_attach_type"])
	jl, _ := k.U32(prog + off["bpf_prog.jited_len"])
	p.Jited = jl > 0
	var tag [8]byte
	if err := k.Read(prog+off["bpf_prog.tag"], tag[:]); err != nil {
		return p, err
	}
	p.Tag = hex.EncodeToString(tag[:])
	fn, err := k.U64(prog + off["bpf_prog.bpf_func"])
	if err != nil {
		return p, err
	}
	p.Func = hex64(fn)
	aux, err := k.U64(prog + off["bpf_prog.aux"])
	if err != nil || aux == 0 {
		return p, fmt.Errorf("no aux: %v", err)
	}
	if p.ID, err = k.U32(aux + off["bpf_prog_aux.id"]); err != nil {
		return p, err
	}
	var name [16]byte // BPF_OBJ_NAME_LEN
	if err := k.Read(aux+off["bpf_prog_aux.name"], name[:]); err == nil {
		p.Name, _ = k.cstringIn(name[:])
	}
	if fp, _ := k.U64(aux + off["bpf_prog_aux.attach_func_name"]); fp != 0 {
		p.AttachTo, _ = k.CString(fp, 128)
	}
	return p, nil
}

func (k *Kernel) cstringIn(b []byte) (string, bool) {
	for i, c := range b {
		if c == 0 {
			return printable(string(b[:i])), true
		}
	}
	return printable(string(b)), false
}

// BPFLinks walks link_idr.
func (k *Kernel) BPFLinks() ([]BPFLink, error) { return retry(k.bpfLinks) }

func (k *Kernel) bpfLinks() ([]BPFLink, error) {
	root, err := k.idrRoot("link_idr")
	if err != nil {
		return nil, err
	}
	off, err := k.offsets("bpf_link.id", "bpf_link.type", "bpf_link.prog", "bpf_prog.aux", "bpf_prog_aux.id",
		"bpf_prog_aux.attach_func_name")
	if err != nil {
		return nil, err
	}
	var out []BPFLink
	b := NewBudget(4*MaxBPFObjects, walkTime)
	err = k.walkIDR(root, "link_idr", b, func(link uint64) error {
		if len(out) >= MaxBPFObjects {
			return ErrBudget
		}
		l := BPFLink{Link: hex64(link)}
		var err error
		if l.ID, err = k.U32(link + off["bpf_link.id"]); err != nil {
			return fmt.Errorf("bpf_link at %#x: %w", link, err)
		}
		l.TypeNum, _ = k.U32(link + off["bpf_link.type"])
		l.Type = enumName(bpfLinkTypes, l.TypeNum)
		if prog, _ := k.U64(link + off["bpf_link.prog"]); prog != 0 {
			if aux, err := k.U64(prog + off["bpf_prog.aux"]); err == nil && aux != 0 {
				l.ProgID, _ = k.U32(aux + off["bpf_prog_aux.id"])
				if l.TypeNum == 2 { // tracing: fentry/fexit/fmod_ret/LSM target
					if fp, _ := k.U64(aux + off["bpf_prog_aux.attach_func_name"]); fp != 0 {
						l.Target, _ = k.CString(fp, 128)
					}
				}
			}
		}
		if l.Target == "" {
			l.Target = k.linkTarget(link, l.TypeNum)
		}
		out = append(out, l)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// linkTarget follows a raw tracepoint link to its tracepoint's name, or a
// perf-event link (kprobes, tracepoints attached through perf) through its
// file to the trace event it fires on. "" when not reachable.
func (k *Kernel) linkTarget(link uint64, typ uint32) string {
	ptr := func(base uint64, path string) uint64 {
		if base == 0 {
			return 0
		}
		o, err := k.Off(path)
		if err != nil {
			return 0
		}
		v, _ := k.U64(base + o)
		return v
	}
	str := func(p uint64) string {
		s, _ := k.CString(p, 128)
		return s
	}
	switch typ {
	case 1: // raw_tracepoint: bpf_raw_tp_link.btp -> bpf_raw_event_map.tp -> tracepoint.name
		if tp := ptr(ptr(link, "bpf_raw_tp_link.btp"), "bpf_raw_event_map.tp"); tp != 0 {
			return "tracepoint " + str(ptr(tp, "tracepoint.name"))
		}
	case 7: // perf_event: bpf_perf_link.perf_file -> file.private_data (perf_event) -> tp_event
		call := ptr(ptr(ptr(link, "bpf_perf_link.perf_file"), "file.private_data"), "perf_event.tp_event")
		if call == 0 {
			return ""
		}
		fo, err1 := k.Off("trace_event_call.flags")
		no, err2 := k.Off("trace_event_call.name")
		if err1 != nil || err2 != nil {
			return ""
		}
		flags, _ := k.U32(call + fo)
		name, _ := k.U64(call + no) // a union: tracepoint* or char*
		if flags&TraceEventFlTracepoint != 0 {
			return "tracepoint " + str(ptr(name, "tracepoint.name"))
		}
		return "trace event " + str(name)
	}
	return ""
}
