package engine

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vmi/guest"
	"github.com/bulwark-project/bulwark/internal/vmi/kallsyms"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
	"github.com/bulwark-project/bulwark/internal/vmi/monitor"
	"github.com/bulwark-project/bulwark/internal/vmi/profile"
)

// Exact gates (IDT vectors, x64_sys_call) against the kernel image. The
// reference is derived once per kernel build from the image file the daemon
// passes with every request (the IDT setup tables are init data, freed in
// the guest after boot) and kept for the monitor's lifetime.

// maxGateRefs bounds the cache (one entry per kernel build seen).
const maxGateRefs = 16

var gateRefs = struct {
	mu sync.Mutex
	m  map[string]*gateRef // by kernel build id
}{m: map[string]*gateRef{}}

type gateRef struct {
	ref *guest.GateRef
	err error
}

// symtab adapts the profile's kallsyms table to guest.ImageSymbols.
type symtab struct{ t *kallsyms.Table }

func (s symtab) Lookup(name string) (uint64, bool) {
	a, _, ok := s.t.Lookup(name)
	return a, ok
}

func (s symtab) Next(addr uint64) (uint64, bool) {
	n, ok := s.t.Next(addr)
	return n.Addr, ok
}

// loadGatesLocked derives the gate reference of st's kernel from the image
// file the first time the build is seen (decompressing it once: about as
// long as a profile derivation), and remembers a failure too so it is not
// retried on every scan.
func (e *Engine) loadGatesLocked(st *vmState, kern *os.File) {
	id := st.k.L.BuildID
	gateRefs.mu.Lock()
	_, ok := gateRefs.m[id]
	gateRefs.mu.Unlock()
	if ok {
		return
	}
	g := &gateRef{}
	g.ref, g.err = e.deriveGatesLocked(kern)
	gateRefs.mu.Lock()
	if len(gateRefs.m) >= maxGateRefs {
		for k := range gateRefs.m {
			delete(gateRefs.m, k)
			break
		}
	}
	gateRefs.m[id] = g
	gateRefs.mu.Unlock()
}

func (e *Engine) deriveGatesLocked(kern *os.File) (*guest.GateRef, error) {
	p, err := e.profileLocked(kern)
	if err != nil {
		return nil, err
	}
	if p.Kallsyms == nil {
		return nil, errors.New("the profile has no kallsyms table")
	}
	vmlinux, err := e.vmlinuxLocked(kern)
	if err != nil {
		return nil, err
	}
	segs, err := kimage.LoadSegments(vmlinux)
	if err != nil {
		return nil, err
	}
	img := func(va uint64, n int) []byte {
		off, ok := segs.Offset(va, int64(n))
		if !ok || n < 0 {
			return nil
		}
		return vmlinux[off : off+int64(n)]
	}
	return guest.DeriveGates(img, symtab{p.Kallsyms})
}

// gatesOf is the VM's gate reference, or why there is none.
func gatesOf(st *vmState) (*guest.GateRef, error) {
	gateRefs.mu.Lock()
	defer gateRefs.mu.Unlock()
	g := gateRefs.m[st.k.L.BuildID]
	if g == nil {
		return nil, errors.New("the kernel image's gate tables were not read")
	}
	return g.ref, g.err
}

// IDTView is `vmi idt`: every present gate with its verdict.
type IDTView struct {
	Gates []guest.IDTEntry `json:"gates"`
	Notes []string         `json:"notes,omitempty"` // what the image did not define
}

func (e *Engine) idtView(st *vmState, req monitor.Request) (*IDTView, error) {
	if len(req.Regs) == 0 {
		return nil, errors.New("no registers")
	}
	ref, err := gatesOf(st)
	v := &IDTView{}
	if err != nil {
		v.Notes = append(v.Notes, fmt.Sprintf("no image reference (%v): every vector checked by the fallback rule", err))
	} else {
		v.Notes = ref.Notes
	}
	v.Gates, err = st.k.IDTExact(ref, req.Regs[0].IDTBase, req.Regs[0].IDTLimit)
	return v, err
}

// checkGates adds the IDT and syscall-dispatch findings to a report: every
// present vector of every vCPU's IDT against the image (vCPUs share
// idt_table; a different IDTR on one is checked too), and x64_sys_call's
// code against the image's.
func (e *Engine) checkGates(st *vmState, req monitor.Request, r *Report, add func(Finding), scanErr func(string, error)) {
	k := st.k
	ref, rerr := gatesOf(st)
	seen := map[[2]uint64]bool{}
	for _, regs := range req.Regs {
		key := [2]uint64{regs.IDTBase, uint64(regs.IDTLimit)}
		if seen[key] || len(seen) >= 4 {
			continue
		}
		seen[key] = true
		idt, err := k.IDTExact(ref, regs.IDTBase, regs.IDTLimit)
		if err != nil {
			scanErr("IDT", err)
			continue
		}
		r.Scanned["idt_vectors"] += len(idt)
		for _, g := range idt {
			if !g.OK {
				add(idtFinding(g, rerr))
			}
		}
	}
	if rerr != nil || ref == nil {
		scanErr("syscall dispatch (x64_sys_call)", fmt.Errorf("no image reference: %v", rerr))
		return
	}
	d, err := k.CheckDispatch(ref)
	if err != nil {
		scanErr("syscall dispatch (x64_sys_call)", err)
		return
	}
	if !d.Present {
		return
	}
	r.Scanned["dispatch_bytes"] = d.Size
	if len(d.Changes) > 0 {
		where := make([]string, len(d.Changes))
		for i, c := range d.Changes {
			where[i] = c.Where
		}
		add(Finding{Kind: "syscall_dispatch_modified",
			Summary: fmt.Sprintf("x64_sys_call (the syscall dispatcher) differs from the kernel image at %s", strings.Join(where, ", ")),
			Evidence: map[string]any{"addr": fmt.Sprintf("%#x", d.Addr), "size": d.Size, "image_sha256": d.ImageSHA256,
				"live_sha256": d.LiveSHA256, "changes": d.Changes, "legal_sites": d.LegalSites}})
	}
}

// idtFinding: idt_gate_moved for a handler elsewhere in the kernel's own
// text (the classic check passes it), idt_hook for one outside it or with
// changed attributes.
func idtFinding(g guest.IDTEntry, refErr error) Finding {
	kind := "idt_hook"
	if g.InText && g.Expected != "" && g.Handler != 0 && strings.HasPrefix(g.Reason, "handler differs") {
		kind = "idt_gate_moved"
	}
	ev := map[string]any{"vector": g.Vector, "handler": fmt.Sprintf("%#x", g.Handler), "found": g.Symbol,
		"region": g.Region, "bits": fmt.Sprintf("%#04x", g.Bits), "rule": g.Source, "reason": g.Reason}
	var summary string
	if g.Expected != "" {
		ev["expected"] = g.Expected
		summary = fmt.Sprintf("IDT vector %d points to %s, the image defines %s (%s): %s; %s", g.Vector, g.Symbol, g.Expected, g.Source, g.Reason, g.Region)
	} else {
		if refErr != nil {
			ev["rule"] = fmt.Sprintf("%s (no image reference: %v)", g.Source, refErr)
		}
		summary = fmt.Sprintf("IDT vector %d points to %s: %s (%s); the image defines no handler for it", g.Vector, g.Symbol, g.Reason, g.Region)
	}
	return Finding{Kind: kind, Summary: summary, Evidence: ev}
}

// bootError turns an attach failure during the guest's start-up into
// "the guest kernel is not up yet": before the kernel publishes VMCOREINFO
// (firmware, boot loader, decompressor, early init) the search for it
// fails, and its own message would suggest a missing kernel option. The
// image says whether the option is there: a profile holding vmcoreinfo
// symbols means the kernel will publish it once it runs.
func bootError(regs []hv.Registers, p *profile.Profile, err error) error {
	if err == nil {
		return nil
	}
	hasVmcoreinfo := false
	for _, s := range []string{"vmcoreinfo_data", "vmcoreinfo_note", "crash_save_vmcoreinfo"} {
		if _, ok := p.Symbol(s); ok {
			hasVmcoreinfo = true
		}
	}
	if len(regs) > 0 && regs[0].CR0&(1<<31) == 0 {
		return fmt.Errorf("the guest kernel is not up yet (the vCPU runs without paging: firmware or boot loader); try again once it has booted")
	}
	// Not "gave up after rejecting candidates": planted fakes are not a
	// boot state.
	if msg := err.Error(); hasVmcoreinfo && (strings.Contains(msg, "vmcoreinfo: no OSRELEASE") || strings.Contains(msg, "vmcoreinfo: not found")) {
		return fmt.Errorf("the guest kernel is not up yet: its image publishes VMCOREINFO, the running guest has not yet (%s); try again once it has booted", firstClause(err))
	}
	return err
}

// firstClause drops an underlying message's speculative hint ("kernel
// without CONFIG_CRASH_CORE?"), which does not apply here.
func firstClause(err error) string {
	s := err.Error()
	if i := strings.Index(s, " (kernel without"); i >= 0 {
		s = s[:i]
	}
	return s
}
