package engine

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/bulwark-project/bulwark/internal/vmi/guest"
	"github.com/bulwark-project/bulwark/internal/vmi/monitor"
)

// Finding is one detection, raised as a monitoring event by the daemon.
type Finding struct {
	Kind     string         `json:"kind"` // hidden_process, syscall_hook, idt_hook, idt_gate_moved, syscall_dispatch_modified, kernel_text_modified, kernel_rodata_modified, scan_error
	Summary  string         `json:"summary"`
	Evidence map[string]any `json:"evidence,omitempty"`
}

// Report is the result of one check of a VM.
type Report struct {
	Time     time.Time      `json:"time"`
	Millis   float64        `json:"millis"`
	Findings []Finding      `json:"findings"`
	Scanned  map[string]int `json:"scanned"`
	// TextBaseline says what kernel text is compared with: "image" or,
	// where that cannot be derived, "first-attach" (with the reason).
	TextBaseline       string `json:"text_baseline"`
	TextBaselineReason string `json:"text_baseline_reason,omitempty"`
}

// MaxFindingsPerKind bounds a report (a thoroughly broken guest could
// otherwise produce one per page).
const MaxFindingsPerKind = 32

func (e *Engine) check(st *vmState, req monitor.Request) Report {
	start := time.Now()
	r := Report{Time: start.UTC(), Findings: []Finding{}, Scanned: map[string]int{}}
	add := func(f Finding) {
		n := 0
		for _, x := range r.Findings {
			if x.Kind == f.Kind {
				n++
			}
		}
		if n < MaxFindingsPerKind {
			r.Findings = append(r.Findings, f)
		}
	}
	scanErr := func(what string, err error) {
		add(Finding{Kind: "scan_error", Summary: fmt.Sprintf("%s could not be checked: %v", what, err)})
	}
	k := st.k

	if hidden, err := k.HiddenProcesses(); err != nil {
		scanErr("processes", err)
	} else {
		for _, p := range hidden {
			add(Finding{Kind: "hidden_process", Summary: fmt.Sprintf("process %d (%s) has a PID but is missing from the task list", p.PID, p.Comm),
				Evidence: map[string]any{"pid": p.PID, "comm": p.Comm, "uid": p.UID, "task": fmt.Sprintf("%#x", p.Task)}})
		}
		r.Scanned["hidden_candidates"] = len(hidden)
	}
	checkHiddenTasks(k, req, &r, add, scanErr)

	if hidden, err := k.HiddenModules(); err != nil {
		scanErr("modules", err)
	} else {
		for _, m := range hidden {
			add(Finding{Kind: "hidden_module", Summary: fmt.Sprintf("module %s is in /sys/module but missing from the module list", m.Name),
				Evidence: map[string]any{"name": m.Name, "module": fmt.Sprintf("%#x", m.Module), "base": fmt.Sprintf("%#x", m.Base), "size": m.Size}})
		}
	}

	if sc, err := k.Syscalls(); err != nil {
		scanErr("sys_call_table", err)
	} else {
		r.Scanned["syscalls"] = len(sc)
		for _, s := range sc {
			if s.Hooked {
				add(Finding{Kind: "syscall_hook", Summary: fmt.Sprintf("sys_call_table[%d] points to %s instead of %s", s.NR, s.Symbol, s.Expected),
					Evidence: map[string]any{"nr": s.NR, "addr": fmt.Sprintf("%#x", s.Addr), "symbol": s.Symbol, "expected": s.Expected, "in_text": s.InText}})
			}
		}
	}

	e.checkGates(st, req, &r, add, scanErr)

	if bad, err := k.BadJumpSites(); err != nil {
		scanErr("static-key sites", err)
	} else {
		r.Scanned["jump_sites"] = len(k.L.JumpSites)
		for _, b := range bad {
			add(Finding{Kind: "kernel_text_modified", Summary: fmt.Sprintf("kernel text changed at static-key site %s: % x is neither its NOP nor its jump", k.Name(b.Addr), b.Bytes),
				Evidence: map[string]any{"addr": fmt.Sprintf("%#x", b.Addr), "bytes": fmt.Sprintf("% x", b.Bytes)}})
		}
	}

	if checkImage(st, &r, add, scanErr) {
		// Verified against the kernel image (check_image.go).
	} else if now, err := k.PageHashes(st.regions, st.baseline); err != nil {
		scanErr("kernel text", err)
	} else {
		r.Scanned["protected_pages"] = len(now)
		var changed []uint64
		for va, h := range st.baseline {
			if nh, ok := now[va]; !ok || nh.Sum != h.Sum {
				changed = append(changed, va)
			}
		}
		sort.Slice(changed, func(i, j int) bool { return changed[i] < changed[j] })
		for _, va := range changed {
			kind, region := "kernel_text_modified", "text"
			for _, rg := range st.regions {
				if va >= rg.Start && va < rg.End && rg.Name == "rodata" {
					kind, region = "kernel_rodata_modified", "rodata"
				}
			}
			where := k.Name(va)
			var blocks []string
			if nh, ok := now[va]; ok {
				for _, b := range guest.ChangedBlocks(va, st.baseline[va], nh) {
					// A 64-byte block may span the end of one function and
					// the start of the next: name both ends.
					name := k.Name(b)
					if end := k.Name(b + 63); end != "" && symOf(end) != symOf(name) {
						name += " .. " + end
					}
					blocks = append(blocks, name)
				}
			}
			if len(blocks) > 0 {
				where = strings.Join(blocks, ", ")
			}
			add(Finding{Kind: kind, Summary: fmt.Sprintf("kernel %s changed since the baseline at %s (page %#x)", region, where, va),
				Evidence: map[string]any{"page": fmt.Sprintf("%#x", va), "blocks": blocks}})
		}
	}
	checkHooks(k, add, scanErr, r.Scanned)
	checkModules(st, add, scanErr, r.Scanned)
	st.listed, st.listedErr = nil, nil
	r.Millis = float64(time.Since(start).Microseconds()) / 1000
	return r
}

// symOf strips "+0x.." from a symbol+offset name.
func symOf(n string) string {
	if i := strings.IndexByte(n, '+'); i >= 0 {
		return n[:i]
	}
	return n
}
