// Package engine is the introspection work done inside the monitor process
// (`bulwark monitor`): it keeps, per running VM, a read-only mapping of the
// guest's RAM, the attached kernel and the baseline of its protected memory
// captured at the first attach, and answers the daemon's requests with
// views (processes, syscall table, IDT) and checks (findings).
package engine

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/vmi/guest"
	"github.com/bulwark-project/bulwark/internal/vmi/mem"
	"github.com/bulwark-project/bulwark/internal/vmi/monitor"
	"github.com/bulwark-project/bulwark/internal/vmi/profile"
)

// Engine answers monitor requests. It is safe for concurrent use, though
// the monitor serves one request at a time.
type Engine struct {
	CacheDir string // derived profiles, by kernel build id

	mu       sync.Mutex
	vms      map[string]*vmState
	profiles map[string]*profile.Profile // by kernel file identity
	images   imageCache                  // decompressed kernels (imagecache.go)
}

type vmState struct {
	gen      string
	ram      *mem.RAM
	k        *guest.Kernel
	regions  []guest.Region
	baseline map[uint64]*guest.PageHash
	img      *imageState  // verification against the kernel image (check_image.go)
	mods     *moduleState // the initramfs's modules, when passed (check_modules.go)
	// env is this check's runtime patch-site environment (check_image.go);
	// recent holds ftrace targets seen in the last ftraceLinger.
	env    *guest.SiteEnv
	recent ftraceRecent
	// listed is this check's walk of the module list, taken once for the
	// site environment and the module check (cleared after each check).
	listed    []guest.Module
	listedErr error
	attached  time.Time
}

// New returns an engine caching profiles in cacheDir.
func New(cacheDir string) *Engine {
	return &Engine{CacheDir: cacheDir, vms: map[string]*vmState{}, profiles: map[string]*profile.Profile{}}
}

// Handle is the monitor.Handler.
func (e *Engine) Handle(req monitor.Request, files []*os.File) (any, error) {
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	e.mu.Lock()
	defer e.mu.Unlock()
	if req.Op == "forget" {
		e.forgetLocked(req.VM)
		return map[string]bool{"forgotten": true}, nil
	}
	if len(files) != 2 && len(files) != 3 {
		return nil, fmt.Errorf("want the RAM file, the kernel image and optionally the initramfs, got %d descriptors", len(files))
	}
	st, err := e.attachLocked(req, files[0], files[1])
	if err == nil {
		e.loadGatesLocked(st, files[1])
		if len(files) == 3 {
			e.loadModulesLocked(st, files[2])
		}
	}
	e.releaseImagesLocked()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	switch req.Op {
	case "ps":
		ps, err := st.k.TaskList()
		return timed(start, ps, err)
	case "pids":
		ps, err := st.k.PIDTable()
		return timed(start, ps, err)
	case "modules":
		ms, err := st.k.Modules()
		return timed(start, ms, err)
	case "sysfs-modules":
		ms, err := st.k.SysfsModules()
		return timed(start, ms, err)
	case "syscalls":
		sc, err := st.k.Syscalls()
		return timed(start, sc, err)
	case "idt":
		if len(req.Regs) == 0 {
			return nil, errors.New("no registers")
		}
		idt, err := e.idtView(st, req)
		return timed(start, idt, err)
	case "bpf":
		return timed(start, st.k.BPF(), nil)
	case "hooks":
		hv, err := st.k.Hooks()
		return timed(start, hv, err)
	case "check":
		return e.check(st, req), nil
	case "info":
		return st.info(), nil
	}
	return nil, fmt.Errorf("unknown operation %q", req.Op)
}

// Timed wraps a view with how long it took.
type Timed struct {
	Millis float64 `json:"millis"`
	Items  any     `json:"items"`
}

func timed(start time.Time, v any, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return Timed{Millis: float64(time.Since(start).Microseconds()) / 1000, Items: v}, nil
}

func (e *Engine) forgetLocked(vm string) {
	if st := e.vms[vm]; st != nil {
		st.ram.Close()
		delete(e.vms, vm)
	}
}

// attachLocked returns the VM's state for this run of it, mapping its RAM
// and attaching to its kernel the first time.
func (e *Engine) attachLocked(req monitor.Request, ramFile, kernFile *os.File) (*vmState, error) {
	if st := e.vms[req.VM]; st != nil && st.gen == req.Gen {
		return st, nil
	}
	e.forgetLocked(req.VM)
	prof, err := e.profileLocked(kernFile)
	if err != nil {
		return nil, fmt.Errorf("kernel profile of %s: %w", req.Kernel, err)
	}
	ram, err := mem.MapRAM(ramFile, mem.MicrovmLayout(req.RAMSize))
	if err != nil {
		return nil, err
	}
	k, err := guest.Attach(ram, LayoutOf(prof), req.Regs)
	if err != nil {
		ram.Close()
		return nil, bootError(req.Regs, prof, err)
	}
	if ok, state, err := k.Booted(); err != nil || !ok {
		ram.Close()
		if err != nil {
			return nil, fmt.Errorf("guest kernel state: %w", err)
		}
		return nil, fmt.Errorf("the guest kernel is not up yet (system_state %d: still starting; no baseline before it runs); try again once it has booted", state)
	}
	e.prefetchLocked(kernFile) // overlaps the baseline below (imagecache.go)
	st := &vmState{gen: req.Gen, ram: ram, k: k, attached: time.Now()}
	// The baseline of text and read-only data is taken at the first attach
	// (once the guest's kernel is up): later changes are findings.
	if st.regions, err = k.ProtectedRegions(); err == nil {
		st.baseline, err = k.PageHashes(st.regions, nil)
	}
	if err != nil {
		ram.Close()
		return nil, fmt.Errorf("baseline of kernel text: %w", err)
	}
	e.attachImageLocked(st, kernFile)
	e.vms[req.VM] = st
	return st, nil
}

func (e *Engine) profileLocked(kern *os.File) (*profile.Profile, error) {
	key, err := fileKey(kern)
	if err != nil {
		return nil, err
	}
	if p := e.profiles[key]; p != nil {
		return p, nil
	}
	p, err := profile.LoadOrDeriveWith(e.CacheDir, fmt.Sprintf("/proc/self/fd/%d", kern.Fd()),
		func() ([]byte, error) { return e.vmlinuxLocked(kern) })
	if err != nil {
		return nil, err
	}
	e.profiles[key] = p
	return p, nil
}

// Info describes an attachment.
type Info struct {
	Release       string    `json:"release"`
	BuildID       string    `json:"build_id"`
	KernelOffset  string    `json:"kernel_offset"` // hex: JSON numbers lose 64-bit precision
	PhysBase      string    `json:"phys_base"`
	PageOffset    string    `json:"page_offset_base"`
	LA57          bool      `json:"la57"`
	Attached      time.Time `json:"attached"`
	BaselinePages int       `json:"baseline_pages"`
	// TextBaseline is "image" or "first-attach" (see Report).
	TextBaseline       string `json:"text_baseline"`
	TextBaselineReason string `json:"text_baseline_reason,omitempty"`
}

func (st *vmState) info() Info {
	hex := func(v uint64) string { return fmt.Sprintf("%#x", v) }
	mode, reason := st.baselineMode()
	physBase := hex(st.k.PhysBase)
	if pb := int64(st.k.PhysBase); pb < 0 { // phys_base is signed
		physBase = fmt.Sprintf("-%#x", uint64(-pb))
	}
	return Info{Release: st.k.Info.OSRelease, BuildID: st.k.Info.BuildID, KernelOffset: hex(st.k.Slide), PhysBase: physBase,
		PageOffset: hex(st.k.PageOffset), LA57: st.k.LA57, Attached: st.attached, BaselinePages: len(st.baseline),
		TextBaseline: mode, TextBaselineReason: reason}
}
