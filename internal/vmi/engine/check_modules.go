package engine

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/bulwark-project/bulwark/internal/vmi/guest"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
)

// maxInitrdFile bounds the initramfs the daemon passes (compressed).
const maxInitrdFile = 256 << 20

// moduleState is a VM's module tree: the modules its initramfs carries,
// the only ones it may load, each parsed on first use.
type moduleState struct {
	tree   *kimage.ModuleTree
	err    error // the tree could not be read: every scan says so
	refs   map[string]*guest.ModuleRef
	refErr map[string]error
	chk    *guest.ModuleCheck
	// flux: when each module (by struct address) was first seen going or
	// unformed, so that a module held in such a state is verified after
	// fluxGrace instead of never.
	flux map[uint64]time.Time
}

// loadModulesLocked reads the VM's initramfs (the third descriptor) once
// per run of the VM.
func (e *Engine) loadModulesLocked(st *vmState, f *os.File) {
	if st.mods != nil {
		return
	}
	st.mods = &moduleState{refs: map[string]*guest.ModuleRef{}, refErr: map[string]error{}}
	fi, err := f.Stat()
	if err != nil {
		st.mods.err = err
		return
	}
	if fi.Size() > maxInitrdFile {
		st.mods.err = fmt.Errorf("initramfs of %d bytes exceeds %d", fi.Size(), maxInitrdFile)
		return
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		st.mods.err = fmt.Errorf("initramfs: %w", err)
		return
	}
	st.mods.tree, st.mods.err = kimage.ReadModuleTree(b)
}

func (ms *moduleState) ref(name string) (*guest.ModuleRef, error) {
	if r := ms.refs[name]; r != nil {
		return r, nil
	}
	if err := ms.refErr[name]; err != nil {
		return nil, err
	}
	ko, err := ms.tree.Ko(name)
	var r *guest.ModuleRef
	if err == nil {
		r, err = guest.NewModuleRef(ko)
	}
	if err != nil {
		err = fmt.Errorf("%s (%s): %w", name, ms.tree.Path(name), err)
		ms.refErr[name] = err
		return nil, err
	}
	ms.refs[name] = r
	return r, nil
}

// Module states (enum module_state). Live and initialising modules are
// verified; a module being formed or unloaded is in flux for a moment
// (relocations are being applied, or its memory is about to be freed). A
// rootkit can write either state into its own or a patched module's
// struct to stay out of the check: a module seen in flux for longer than
// fluxGrace is verified like a live one, and a state outside the enum
// counts as live.
const (
	moduleLive     = 0
	moduleComing   = 1
	moduleGoing    = 2
	moduleUnformed = 3

	fluxGrace = 30 * time.Second
)

// verifyNow says whether module m is to be verified in this scan, and
// keeps the flux record (pruned to the modules of this scan by the
// caller).
func (ms *moduleState) verifyNow(m guest.Module, now time.Time, seen map[uint64]bool) bool {
	if m.State != moduleGoing && m.State != moduleUnformed {
		return true
	}
	seen[m.Module] = true
	if ms.flux == nil {
		ms.flux = map[uint64]time.Time{}
	}
	first, ok := ms.flux[m.Module]
	if !ok {
		ms.flux[m.Module] = now
		return false
	}
	return now.Sub(first) >= fluxGrace
}

// checkModules: every loaded module must come from the VM's initramfs
// (else unknown_module), and its text and read-only data must match its
// object relocated at its base (module_text_modified,
// module_rodata_modified, module_layout_mismatch).
func checkModules(st *vmState, add func(Finding), scanErr func(string, error), scanned map[string]int) {
	ms := st.mods
	if ms == nil {
		return // no initramfs: the module tree is unknown
	}
	if ms.err != nil {
		scanErr("modules against the initramfs", ms.err)
		return
	}
	scanned["module_tree"] = ms.tree.Len()
	if ms.tree.Len() == 0 {
		return // modules come from elsewhere (a root disk): not judged
	}
	k := st.k
	start := time.Now()
	mods, err := st.modules()
	if err != nil {
		scanErr("modules against the initramfs", err)
		return
	}
	if ms.chk == nil && st.img != nil && st.img.chk != nil {
		ms.chk = guest.NewModuleCheck(st.img.chk.Img, k.Slide)
	}
	// Exports of the loaded known modules, for relocations against them;
	// a name two modules export is left unresolved (masked).
	exports := map[string]uint64{}
	for _, m := range mods {
		if !ms.tree.Has(m.Name) {
			continue
		}
		if r, err := ms.ref(m.Name); err == nil {
			for n, off := range r.Exports {
				if _, dup := exports[n]; dup {
					exports[n] = 0
				} else {
					exports[n] = m.Base + off
				}
			}
		}
	}
	resolve := func(name string) (uint64, bool) {
		if a, ok := ms.chk.KernelExport(k, name); ok {
			return a, true
		}
		a := exports[name]
		return a, a != 0
	}
	masked, verified := map[string]int{}, 0
	inFlux := map[uint64]bool{}
	defer func() {
		for a := range ms.flux {
			if !inFlux[a] {
				delete(ms.flux, a)
			}
		}
	}()
	for _, m := range mods {
		if !ms.tree.Has(m.Name) {
			add(Finding{Kind: "unknown_module", Summary: fmt.Sprintf("module %s is loaded but is not in the VM's initramfs", m.Name),
				Evidence: map[string]any{"name": m.Name, "module": fmt.Sprintf("%#x", m.Module), "base": fmt.Sprintf("%#x", m.Base), "size": m.Size}})
			continue
		}
		if ms.chk == nil || !ms.verifyNow(m, start, inFlux) {
			continue
		}
		r, err := ms.ref(m.Name)
		if err != nil {
			scanErr("module "+m.Name, err)
			continue
		}
		mm, stats, err := ms.chk.Verify(k, m, r, resolve, st.env)
		if err != nil {
			scanErr("module "+m.Name, err)
			continue
		}
		verified++
		scanned["module_bytes"] += stats.Bytes
		scanned["module_sites"] += stats.Sites
		scanned["module_relocs"] += stats.Relocs
		for why, n := range stats.Masked {
			masked[why] += n
		}
		if m.State == moduleLive {
			sm, n, err := ms.chk.VerifySymbols(k, m, r, false)
			if errors.Is(err, guest.ErrSymbolsSwitching) {
				// Legal while do_init_module finishes; held for
				// fluxGrace, it is judged as it stands.
				key := guest.Module{Module: m.Module + 1, State: moduleGoing}
				if ms.verifyNow(key, start, inFlux) {
					sm, n, err = ms.chk.VerifySymbols(k, m, r, true)
				} else {
					err = nil
				}
			}
			switch {
			case errors.Is(err, guest.ErrNoModuleSymbols):
				scanned["module_symbols_unsupported"]++
			case err != nil:
				scanErr("module "+m.Name+" symbols", err)
			default:
				scanned["module_symbols"] += n
				mm = append(mm, sm...)
			}
		}
		for _, x := range mm {
			kind := "module_" + x.Region + "_modified"
			if x.Region == "layout" {
				add(Finding{Kind: "module_layout_mismatch", Summary: fmt.Sprintf("module %s: %s", m.Name, x.Why),
					Evidence: map[string]any{"module": m.Name, "base": fmt.Sprintf("%#x", m.Base)}})
				continue
			}
			site := ""
			if x.Site != "" {
				site = " (" + x.Site + " site)"
			}
			add(Finding{Kind: kind, Summary: fmt.Sprintf("module %s %s at %s%s %s: % x", m.Name, x.Region, x.Where, site, x.Why, x.Got),
				Evidence: map[string]any{"module": m.Name, "addr": fmt.Sprintf("%#x", x.Addr), "symbol": x.Where, "len": x.Len, "site": x.Site,
					"why": x.Why, "got": fmt.Sprintf("% x", x.Got), "want": fmt.Sprintf("% x", x.Want)}})
		}
	}
	scanned["modules_verified"] = verified
	for why, n := range masked {
		scanned["module_masked_"+strings.ReplaceAll(why, " ", "_")] = n
	}
	scanned["module_verify_us"] = int(time.Since(start).Microseconds())
}
