package engine

import (
	"fmt"

	"github.com/bulwark-project/bulwark/internal/vmi/guest"
)

// checkHooks reports the modern hook points: a kprobe, ftrace, netfilter
// or LSM handler owned by neither kernel text nor a module on the module
// list (hook_unknown_owner), and every loaded BPF program of a tracing
// type (bpf_tracing_program: kprobe, tracepoint, perf event, raw
// tracepoint, fentry/fexit, ext, LSM). Other BPF programs (socket filters,
// cgroup device and skb programs, XDP) are normal on a systemd guest: they
// are listed by `vmi bpf` and counted, not reported. A BPF program's JIT
// image lives in the BPF JIT region, outside text and modules, by design:
// its address is not an owner check.
func checkHooks(k *guest.Kernel, add func(Finding), scanErr func(string, error), scanned map[string]int) {
	if o, err := k.Owners(); err != nil {
		scanErr("hook owners", err)
	} else {
		for _, p := range guest.HookPoints {
			hs, err := k.HookPoint(p, o)
			if err != nil {
				scanErr(p+" hooks", err)
			}
			scanned[p+"_hooks"] = len(hs)
			for _, h := range hs {
				if !h.Known {
					add(unknownOwner(h))
				}
			}
		}
	}
	progs, err := k.BPFPrograms()
	if err != nil {
		scanErr("BPF programs", err)
	}
	scanned["bpf_programs"] = len(progs)
	for _, p := range progs {
		if p.Tracing {
			add(tracingProgram(p))
		}
	}
}

func unknownOwner(h guest.Hook) Finding {
	return Finding{Kind: "hook_unknown_owner",
		Summary: fmt.Sprintf("%s hook on %s calls %s, outside kernel text and every listed module", h.Point, h.Target, h.Handler),
		Evidence: map[string]any{"point": h.Point, "target": h.Target, "handler": h.Handler, "owner": h.Owner,
			"detail": h.Detail, "struct": h.Struct}}
}

func tracingProgram(p guest.BPFProgram) Finding {
	what := fmt.Sprintf("BPF program %d (%s, type %s", p.ID, p.Name, p.Type)
	if p.AttachTo != "" {
		what += ", attached to " + p.AttachTo
	}
	return Finding{Kind: "bpf_tracing_program", Summary: what + ") is loaded: it runs on other kernel code's events",
		Evidence: map[string]any{"id": p.ID, "name": p.Name, "type": p.Type, "tag": p.Tag, "attach_to": p.AttachTo,
			"func": p.Func, "prog": p.Prog}}
}
