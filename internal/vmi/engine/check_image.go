package engine

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/vmi/guest"
)

// Text baseline modes, as reports and attach info name them.
const (
	BaselineImage       = "image"        // expected text derived from the kernel image
	BaselineFirstAttach = "first-attach" // fallback: hashes taken at the first attach
)

// imageRefs caches each kernel build's expected text (about 25 MiB for a
// distribution kernel), shared by every VM that runs the build.
var imageRefs = struct {
	mu sync.Mutex
	m  map[string]*imageRef
}{m: map[string]*imageRef{}}

const maxImageRefs = 4

type imageRef struct {
	img    *guest.ImageText
	err    error
	millis float64 // cost of deriving it (decompression included)
}

// imageState is a VM's verification against its image, or why there is none.
type imageState struct {
	chk        *guest.ImageCheck
	reason     string  // why the first-attach fallback is used
	coldMillis float64 // derive (unless cached) + attach + first verification
}

// attachImageLocked derives (or reuses) the expected kernel text of the
// VM's build and verifies the running kernel against it once, so the cost
// of a cold verification is known. Failure leaves the first-attach baseline
// in charge, with the reason.
func (e *Engine) attachImageLocked(st *vmState, kern *os.File) {
	start := time.Now()
	st.img = &imageState{}
	ref := e.imageRefLocked(st.k.L.BuildID, kern)
	if ref.err != nil {
		st.img.reason = ref.err.Error()
		return
	}
	chk, err := st.k.NewImageCheck(ref.img)
	if err == nil {
		_, _, err = chk.Verify(st.k, nil)
	}
	if err != nil {
		st.img.reason = err.Error()
		return
	}
	st.img.chk = chk
	st.img.coldMillis = float64(time.Since(start).Microseconds()) / 1000
}

func (e *Engine) imageRefLocked(id string, kern *os.File) *imageRef {
	imageRefs.mu.Lock()
	ref := imageRefs.m[id]
	imageRefs.mu.Unlock()
	if ref != nil {
		return ref
	}
	start := time.Now()
	ref = &imageRef{}
	ref.img, ref.err = e.deriveImageLocked(kern)
	ref.millis = float64(time.Since(start).Microseconds()) / 1000
	imageRefs.mu.Lock()
	if len(imageRefs.m) >= maxImageRefs {
		for k := range imageRefs.m {
			delete(imageRefs.m, k)
			break
		}
	}
	imageRefs.m[id] = ref
	imageRefs.mu.Unlock()
	return ref
}

func (e *Engine) deriveImageLocked(kern *os.File) (*guest.ImageText, error) {
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
	img, err := guest.BuildImageText(vmlinux, p.Kallsyms)
	if err != nil {
		return nil, fmt.Errorf("expected text from the image: %w", err)
	}
	return img, nil
}

// baselineMode names the VM's text baseline and, for the fallback, why.
func (st *vmState) baselineMode() (string, string) {
	if st.img != nil && st.img.chk != nil {
		return BaselineImage, ""
	}
	if st.img == nil {
		return BaselineFirstAttach, "no image verification was attempted"
	}
	return BaselineFirstAttach, st.img.reason
}

// checkImage verifies kernel text and read-only data against the image and
// raises a finding per differing run. It reports false when the VM has no
// image verification, so the caller runs the first-attach comparison.
func checkImage(st *vmState, r *Report, add func(Finding), scanErr func(string, error)) bool {
	r.TextBaseline, r.TextBaselineReason = st.baselineMode()
	if r.TextBaseline != BaselineImage {
		return false
	}
	k := st.k
	start := time.Now()
	st.env = siteEnv(st, scanErr)
	ms, stats, err := st.img.chk.Verify(k, st.env)
	if err != nil {
		scanErr("kernel text against the image", err)
		return true
	}
	r.Scanned["protected_pages"] = stats.Pages
	r.Scanned["patch_sites"] = stats.Sites
	r.Scanned["frozen_items"] = stats.Frozen
	r.Scanned["image_mismatches"] = stats.Mismatches
	r.Scanned["alternatives_derived"] = stats.Alt.Derived
	r.Scanned["alternatives_underived"] = stats.Alt.Underived
	r.Scanned["alternatives_reloc"] = stats.Alt.Reloc
	for kind, n := range stats.Alt.OverlapBy {
		r.Scanned["alternatives_overlap_"+kind] = n
	}
	r.Scanned["image_verify_us"] = int(time.Since(start).Microseconds())
	r.Scanned["image_cold_us"] = int(st.img.coldMillis * 1000)
	for _, m := range ms {
		kind := "kernel_text_modified"
		if m.Region == "rodata" {
			kind = "kernel_rodata_modified"
		}
		where := k.Name(m.Addr)
		if where == "" {
			where = fmt.Sprintf("%#x", m.Addr)
		}
		site := ""
		if m.Site != "" {
			site = " (" + m.Site + " site)"
		}
		add(Finding{Kind: kind, Summary: fmt.Sprintf("kernel %s at %s%s %s: % x", m.Region, where, site, m.Why, m.Got),
			Evidence: map[string]any{"addr": fmt.Sprintf("%#x", m.Addr), "symbol": where, "len": m.Len, "site": m.Site,
				"why": m.Why, "got": fmt.Sprintf("% x", m.Got), "want": fmt.Sprintf("% x", m.Want), "baseline": BaselineImage}})
	}
	return true
}

// ftraceLinger is how long an ftrace trampoline or ops function stays a
// legal target after it was last seen registered: ftrace_shutdown unlinks
// an ops before it rewrites the sites that call its trampoline.
const ftraceLinger = 10 * time.Second

// ftraceRecent remembers ftrace targets by when they were last seen.
type ftraceRecent struct {
	tramps, funcs map[uint64]time.Time
}

func (fr *ftraceRecent) note(now time.Time, tramps, funcs map[uint64]bool) (map[uint64]bool, map[uint64]bool) {
	keep := func(m *map[uint64]time.Time, cur map[uint64]bool) map[uint64]bool {
		if *m == nil {
			*m = map[uint64]time.Time{}
		}
		old := map[uint64]bool{}
		for a, t := range *m {
			if now.Sub(t) > ftraceLinger {
				delete(*m, a)
			} else if !cur[a] {
				old[a] = true
			}
		}
		for a := range cur {
			if len(*m) < 1<<14 {
				(*m)[a] = now
			}
		}
		return old
	}
	return keep(&fr.tramps, tramps), keep(&fr.funcs, funcs)
}

// siteEnv reads what this check's ftrace and static-call sites are judged
// by: the registered ftrace trampolines and ops functions (with those seen
// in the last ftraceLinger) and which code a static call may hold (kernel
// text, or a module the VM's initramfs holds; any listed module when the
// VM has no module tree). A failing read is a scan error and leaves the
// looser rules in force.
func siteEnv(st *vmState, scanErr func(string, error)) *guest.SiteEnv {
	k := st.k
	type span struct{ lo, hi uint64 }
	var code []span
	mods, err := st.modules()
	if err == nil {
		judged := st.mods != nil && st.mods.err == nil && st.mods.tree != nil && st.mods.tree.Len() > 0
		for _, m := range mods {
			if m.Base != 0 && m.Size != 0 && (!judged || st.mods.tree.Has(m.Name)) {
				code = append(code, span{m.Base, m.Base + m.Size})
			}
		}
	}
	known := func(a uint64) bool {
		for _, c := range code {
			if a >= c.lo && a < c.hi {
				return true
			}
		}
		return false
	}
	if err != nil {
		// Without the module list nothing tells a module's function from a
		// rootkit's: a static call's function is then not judged by where
		// it lies (the module check reports the list's error).
		known = nil
	}
	env, err := k.NewSiteEnv(known)
	if err != nil {
		scanErr("ftrace trampolines", err)
		return env
	}
	if env.Trampolines != nil {
		env.Remember(st.recent.note(time.Now(), env.Trampolines, env.OpsFuncs))
	}
	return env
}

// modules walks the module list once per check: the site environment
// and the module check both need it. check clears it afterwards.
func (st *vmState) modules() ([]guest.Module, error) {
	if st.listed == nil && st.listedErr == nil {
		st.listed, st.listedErr = st.k.Modules()
		if st.listed == nil && st.listedErr == nil {
			st.listed = []guest.Module{}
		}
	}
	return st.listed, st.listedErr
}
