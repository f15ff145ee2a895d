package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/benchrun"

	"github.com/bulwark-project/bulwark/bench/internal/host"
	"github.com/bulwark-project/bulwark/internal/image"
	"github.com/bulwark-project/bulwark/internal/vmi/engine"
	"github.com/bulwark-project/bulwark/internal/vmi/guest"
	"github.com/bulwark-project/bulwark/internal/vmi/mem"
	"github.com/bulwark-project/bulwark/internal/vmi/monitor"
	"github.com/bulwark-project/bulwark/internal/vmi/profile"
	"github.com/bulwark-project/bulwark/internal/vmi/vmcoreinfo"
)

// bench sets everything up, runs the measurements and tears it all down. A
// partial result is returned with the error when some measurements finished.
func bench(ctx context.Context, cfg config) (res *result, err error) {
	qemuPath, err := exec.LookPath(cfg.qemuBin)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	root, err := os.MkdirTemp("", "bulwark-bench-vmi-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if cfg.keep {
			fmt.Fprintf(os.Stderr, "vmi: kept %s\n", root)
			return
		}
		os.RemoveAll(root)
	}()
	ramDir := root
	if cfg.ramDir != "" {
		if ramDir, err = os.MkdirTemp(cfg.ramDir, "bulwark-bench-vmi-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(ramDir)
	}

	img := cfg.img
	if img == "" {
		img = filepath.Join(root, "img")
		if err := step("build guest image", func() error {
			opts := image.Options{OutDir: img}
			if cfg.modules > 0 {
				opts.Modules = append(slices.Clone(image.DefaultModules), extraModules[:cfg.modules]...)
			}
			_, err := image.Build(opts)
			return err
		}); err != nil {
			return nil, err
		}
	}
	kernel, initrd := filepath.Join(img, "vmlinuz"), filepath.Join(img, "initrd.img")
	for _, p := range []string{kernel, initrd} {
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
	}
	ud := filepath.Join(root, "userdata.img")
	script := userdataScript(cfg.procs, cfg.spin)
	if cfg.churn > 0 {
		script = churnScript(cfg.procs, cfg.churnModule())
	}
	if err := writeUserdata(ud, script); err != nil {
		return nil, err
	}

	res = &result{
		Date:    time.Now().UTC().Format(time.RFC3339),
		Source:  sourceRevision(ctx),
		Machine: machineInfo(qemuPath),
		Config: resultConfig{Procs: cfg.procs, PhaseS: cfg.phase.Seconds(), Rounds: cfg.rounds, IntervalS: cfg.interval.Seconds(),
			PS: cfg.psN, Checks: cfg.checkN, ColdReps: cfg.coldReps, Spin: cfg.spin, VCPUs: cfg.vcpus, MemoryMiB: cfg.memMiB,
			Accel: cfg.accel, RAMDir: ramDir, Modules: cfg.modules, ChurnS: cfg.churn.Seconds(), ChurnIntervalS: cfg.churnInterval.Seconds()},
	}
	defer func() {
		if res != nil {
			res.Machine.LoadAfter = host.Loadavg()
		}
	}()

	var g *guestVM
	if err := step(fmt.Sprintf("boot the guest and start %d processes", cfg.procs), func() error {
		bctx, cancel := context.WithTimeout(ctx, cfg.bootTimeout)
		defer cancel()
		var err error
		g, err = startVM(bctx, vmConfig{qemu: qemuPath, accel: cfg.accel, vcpus: cfg.vcpus, memMiB: cfg.memMiB,
			kernel: kernel, initrd: initrd, userdata: ud, dir: root, ramDir: ramDir,
			consoleLogPath: filepath.Join(root, "console.log")})
		if err != nil {
			return err
		}
		ready, err := g.waitMark(bctx, markReady)
		if err != nil {
			return err
		}
		procs, err := g.waitMark(bctx, markProcs)
		if err != nil {
			return err
		}
		// Two loop lines, so the phases start with the loop running.
		for g.con.spinCount() < 2 {
			ch := g.con.changed()
			if g.con.spinCount() >= 2 {
				break
			}
			select {
			case <-ch:
			case <-g.exited:
				return fmt.Errorf("qemu exited: %s", benchrun.Tail(g.logPath, 1024))
			case <-bctx.Done():
				return fmt.Errorf("waiting for the guest loop: %w; console tail:\n%s", bctx.Err(), g.con.tail())
			}
		}
		res.Boot = bootInfo{ReadyS: ready.Sub(g.started).Seconds(), ProcsS: procs.Sub(g.started).Seconds(), ProcsLine: g.con.procsLine()}
		return nil
	}); err != nil {
		if g != nil {
			g.stop()
		}
		return nil, err // nothing measured yet
	}
	defer g.stop()

	b := &bencher{cfg: cfg, g: g, kernel: kernel, initrd: initrd, root: root, res: res, cacheDir: filepath.Join(root, "cache")}
	if cfg.churn > 0 {
		return res, step(fmt.Sprintf("churn (%s, a check every %s)", cfg.churn, cfg.churnInterval), func() error { return b.churn(ctx) })
	}
	if err := step("cold discovery", func() error { return b.cold(ctx) }); err != nil {
		return res, err
	}
	cacheDir := b.cacheDir
	if err := os.Mkdir(cacheDir, 0o700); err != nil {
		return res, err
	}
	e := engine.New(cacheDir)
	defer e.Handle(monitor.Request{Op: "forget", VM: vmName}, nil)
	// Attach once (deriving into cacheDir); not timed here.
	if _, _, err := b.call(ctx, e, "info"); err != nil {
		return res, err
	}
	if err := step(fmt.Sprintf("warm views (%d ps, %d checks)", cfg.psN, cfg.checkN), func() error { return b.warm(ctx, e) }); err != nil {
		return res, err
	}
	runtime.GC()
	debug.FreeOSMemory()
	if err := step(fmt.Sprintf("slowdown phases (%d × A/B, %s each)", cfg.rounds, cfg.phase), func() error { return b.phases(ctx, e) }); err != nil {
		return res, err
	}
	return res, nil
}

const vmName = "vmibench"

type bencher struct {
	cfg      config
	g        *guestVM
	kernel   string
	initrd   string // passed as the daemon does, for the module check
	root     string
	cacheDir string // the warm engine's profile cache
	res      *result
}

// call does what the daemon's gateway and the monitor do for one request:
// read the registers over QMP, open the RAM file (read-only), the kernel
// image and the initramfs, run the engine, encode the result as JSON.
// Handle closes the files.
func (b *bencher) call(ctx context.Context, e *engine.Engine, op string) (callSample, any, error) {
	var s callSample
	t0 := time.Now()
	regs, err := b.g.registers(ctx)
	if err != nil {
		return s, nil, fmt.Errorf("registers: %w", err)
	}
	t1 := time.Now()
	ram, err := os.Open(b.g.ramPath)
	if err != nil {
		return s, nil, err
	}
	kern, err := os.Open(b.kernel)
	if err != nil {
		ram.Close()
		return s, nil, err
	}
	initrd, err := os.Open(b.initrd)
	if err != nil {
		ram.Close()
		kern.Close()
		return s, nil, err
	}
	t2 := time.Now()
	c0 := selfCPUSeconds()
	out, err := e.Handle(monitor.Request{Op: op, VM: vmName, Gen: "1", RAMSize: b.g.ramSize, Regs: regs, Kernel: b.kernel},
		[]*os.File{ram, kern, initrd})
	t3 := time.Now()
	c1 := selfCPUSeconds()
	if err != nil {
		return s, nil, fmt.Errorf("%s: %w", op, err)
	}
	enc, err := json.Marshal(out)
	if err != nil {
		return s, nil, err
	}
	t4 := time.Now()
	s = callSample{RegsMS: ms(t1.Sub(t0)), OpenMS: ms(t2.Sub(t1)), HandleMS: ms(t3.Sub(t2)), MarshalMS: ms(t4.Sub(t3)),
		TotalMS: ms(t4.Sub(t0)), CPUMS: (c1 - c0) * 1000, Bytes: len(enc)}
	switch v := out.(type) {
	case engine.Timed:
		s.MonitorMS = v.Millis
	case engine.Report:
		s.MonitorMS = v.Millis
	}
	return s, out, nil
}

// cold times discovery from nothing: the profile alone, then a first
// request on a fresh engine with an empty and with a filled profile cache,
// then the attach stages one by one.
func (b *bencher) cold(ctx context.Context) error {
	c := &b.res.Cold
	if b.cfg.cpuProfile != "" {
		f, err := os.Create(b.cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for rep := 0; rep < b.cfg.coldReps; rep++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		runtime.GC()
		t := time.Now()
		dp, err := profile.Derive(b.kernel)
		if err != nil {
			return fmt.Errorf("derive: %w", err)
		}
		c.DeriveMS = append(c.DeriveMS, ms(time.Since(t)))
		c.Release, c.BuildID = dp.Release, dp.BuildID
		runtime.GC()

		cacheDir, err := os.MkdirTemp(b.root, "cold-cache-")
		if err != nil {
			return err
		}
		for _, filled := range []bool{false, true} {
			// As a freshly started monitor: no build's expected text or
			// gate tables derived yet (they are shared by all engines).
			engine.DropDerivedImages()
			runtime.GC()
			e := engine.New(cacheDir)
			s, out, err := b.call(ctx, e, "info")
			e.Handle(monitor.Request{Op: "forget", VM: vmName}, nil)
			if err != nil {
				return fmt.Errorf("info (filled cache %v): %w", filled, err)
			}
			if filled {
				c.InfoFilledMS = append(c.InfoFilledMS, s.HandleMS)
			} else {
				c.InfoEmptyMS = append(c.InfoEmptyMS, s.HandleMS)
			}
			c.RegsMS = append(c.RegsMS, s.RegsMS)
			if inf, ok := out.(engine.Info); ok {
				c.BaselinePages = inf.BaselinePages
				c.KernelOffset = inf.KernelOffset
			}
			runtime.GC()
		}

		// LoadOrDerive alone, empty cache: derive, save, remember the
		// image's build id.
		emptyDir, err := os.MkdirTemp(b.root, "cold-cache-")
		if err != nil {
			return err
		}
		t = time.Now()
		_, err = profile.LoadOrDerive(emptyDir, b.kernel)
		c.DeriveSaveMS = append(c.DeriveSaveMS, ms(time.Since(t)))
		os.RemoveAll(emptyDir)
		if err != nil {
			return err
		}
		runtime.GC()

		// The stages of the attach, with the profile from the cache.
		regs, err := b.g.registers(ctx)
		if err != nil {
			return err
		}
		t = time.Now()
		p, err := profile.LoadOrDerive(cacheDir, b.kernel)
		if err != nil {
			return err
		}
		l := engine.LayoutOf(p)
		c.ProfileLoadMS = append(c.ProfileLoadMS, ms(time.Since(t)))
		t = time.Now()
		ram, err := mem.OpenRAM(b.g.ramPath, b.g.ramSize)
		if err != nil {
			return err
		}
		c.MapMS = append(c.MapMS, ms(time.Since(t)))
		err = func() error {
			defer ram.Close()
			t := time.Now()
			if _, _, err := vmcoreinfo.FindVerified(ram, regs[0].CR3, regs[0].LA57()); err != nil {
				return err
			}
			c.FindMS = append(c.FindMS, ms(time.Since(t)))
			t = time.Now()
			k, err := guest.Attach(ram, l, regs)
			if err != nil {
				return err
			}
			c.AttachMS = append(c.AttachMS, ms(time.Since(t)))
			t = time.Now()
			regions, err := k.ProtectedRegions()
			if err != nil {
				return err
			}
			h, err := k.PageHashes(regions, nil)
			if err != nil {
				return err
			}
			c.BaselineMS = append(c.BaselineMS, ms(time.Since(t)))
			c.BaselinePages = len(h)
			return nil
		}()
		os.RemoveAll(cacheDir)
		if err != nil {
			return fmt.Errorf("attach stages: %w", err)
		}
		fmt.Fprintf(os.Stderr, "vmi:   cold %d/%d: derive %.0f ms, info empty cache %.0f ms, filled cache %.0f ms\n",
			rep+1, b.cfg.coldReps, c.DeriveMS[rep], c.InfoEmptyMS[rep], c.InfoFilledMS[rep])
	}
	return nil
}

// warm times the process list and the full check on an attached engine.
func (b *bencher) warm(ctx context.Context, e *engine.Engine) error {
	w := &b.res.Warm
	for i := 0; i < b.cfg.psN; i++ {
		s, out, err := b.call(ctx, e, "ps")
		if err != nil {
			return err
		}
		w.PS = append(w.PS, s)
		if i == 0 {
			t, _ := out.(engine.Timed)
			ps, ok := t.Items.([]guest.Process)
			if !ok {
				return fmt.Errorf("ps returned %T", t.Items)
			}
			w.Processes = len(ps)
			for _, p := range ps {
				if p.KernelThread {
					w.KernelThreads++
				}
				if p.Comm == "sleep" {
					w.Sleeps++
				}
			}
		}
	}
	cpu0 := selfCPUSeconds()
	t0 := time.Now()
	for i := 0; i < b.cfg.checkN; i++ {
		s, out, err := b.call(ctx, e, "check")
		if err != nil {
			return err
		}
		w.Check = append(w.Check, s)
		r, ok := out.(engine.Report)
		if !ok {
			return fmt.Errorf("check returned %T", out)
		}
		if i == 0 {
			w.Scanned = r.Scanned
			for _, f := range r.Findings {
				w.Findings = append(w.Findings, f.Kind+": "+f.Summary)
			}
		}
		for k, v := range r.Scanned {
			if strings.HasSuffix(k, "_us") && k != "image_cold_us" {
				if w.ViewUS == nil {
					w.ViewUS = map[string][]float64{}
				}
				w.ViewUS[k] = append(w.ViewUS[k], float64(v))
			}
		}
	}
	w.CheckLoopCPUPerCheckMS = (selfCPUSeconds() - cpu0) * 1000 / float64(b.cfg.checkN)
	w.CheckLoopWallPerCheckMS = ms(time.Since(t0)) / float64(b.cfg.checkN)
	if _, out, err := b.call(ctx, e, "modules"); err == nil {
		if t, ok := out.(engine.Timed); ok {
			if ms, ok := t.Items.([]guest.Module); ok {
				w.Modules = len(ms)
			}
		}
	}
	return b.checkParts(ctx)
}

// checkPartNames are the pieces of a check (engine/check.go), and the two
// process views, in report order.
var checkPartNames = []string{"TaskList", "PIDTable", "HiddenProcesses", "HiddenTasks", "HiddenModules", "Syscalls", "IDT", "PageHashes", "Hooks", "BPF"}

// checkParts times the pieces of a check on an attachment of its own.
func (b *bencher) checkParts(ctx context.Context) error {
	regs, err := b.g.registers(ctx)
	if err != nil {
		return err
	}
	p, err := profile.LoadOrDerive(b.cacheDir, b.kernel)
	if err != nil {
		return err
	}
	ram, err := mem.OpenRAM(b.g.ramPath, b.g.ramSize)
	if err != nil {
		return err
	}
	defer ram.Close()
	k, err := guest.Attach(ram, engine.LayoutOf(p), regs)
	if err != nil {
		return err
	}
	regions, err := k.ProtectedRegions()
	if err != nil {
		return err
	}
	base, err := k.PageHashes(regions, nil)
	if err != nil {
		return err
	}
	parts := map[string]func() error{
		"TaskList":        func() error { _, err := k.TaskList(); return err },
		"PIDTable":        func() error { _, err := k.PIDTable(); return err },
		"HiddenProcesses": func() error { _, err := k.HiddenProcesses(); return err },
		"HiddenModules":   func() error { _, err := k.HiddenModules(); return err },
		"Syscalls":        func() error { _, err := k.Syscalls(); return err },
		"IDT":             func() error { _, err := k.IDT(regs[0].IDTBase, regs[0].IDTLimit); return err },
		"PageHashes":      func() error { _, err := k.PageHashes(regions, base); return err },
		"HiddenTasks":     func() error { _, err := k.HiddenTasks(regs, true); return err },
		"Hooks":           func() error { _, err := k.Hooks(); return err },
		"BPF":             func() error { k.BPF(); return nil },
	}
	out := map[string][]float64{}
	for i := 0; i < 5; i++ {
		for _, name := range checkPartNames {
			t := time.Now()
			if err := parts[name](); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			out[name] = append(out[name], ms(time.Since(t)))
		}
	}
	b.res.Warm.CheckPartsMS = out
	return nil
}

// phases alternates A (no scanning) and B (a check every interval),
// A B A B ... A: the closing A gives every B an A on both sides, so a
// drift of the guest's speed during the run cancels in the comparison.
// It measures the guest loop's rate in each.
func (b *bencher) phases(ctx context.Context, e *engine.Engine) error {
	var seq []string
	for r := 0; r < b.cfg.rounds; r++ {
		seq = append(seq, "A", "B")
	}
	seq = append(seq, "A")
	for i, kind := range seq {
		r := i/2 + 1
		p, err := b.phase(ctx, e, r, kind)
		if err != nil {
			return err
		}
		b.res.Phases = append(b.res.Phases, p)
		fmt.Fprintf(os.Stderr, "vmi:   %d%s: %.4f iterations per guest s (%d lines), QEMU %.2f cores, host busy %.2f of %d cores, %d checks\n",
			r, kind, p.RateGuest, p.Lines, p.QEMUCores, p.HostBusyCores, runtime.NumCPU(), p.Checks)
	}
	return nil
}

func (b *bencher) phase(ctx context.Context, e *engine.Engine, round int, kind string) (phaseResult, error) {
	p := phaseResult{Round: round, Kind: kind}
	start := time.Now()
	q0, s0 := b.g.cpuSeconds(), selfCPUSeconds()
	hb0, ht0 := hostCPU()
	end := start.Add(b.cfg.phase)
	wait := func(until time.Time) error {
		d := time.Until(until)
		if d <= 0 {
			return nil
		}
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-tm.C:
			return nil
		case <-b.g.exited:
			return errors.New("qemu exited")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var spans [][2]time.Time // host time of each check, registers read to JSON done
	if kind == "B" {
		next := start
		for time.Now().Before(end) {
			cs := time.Now()
			s, out, err := b.call(ctx, e, "check")
			if err != nil {
				return p, err
			}
			spans = append(spans, [2]time.Time{cs, time.Now()})
			p.Checks++
			p.CheckMonitorMS = append(p.CheckMonitorMS, s.MonitorMS)
			p.CheckTotalMS = append(p.CheckTotalMS, s.TotalMS)
			if r, ok := out.(engine.Report); ok {
				p.Findings += len(r.Findings)
				for _, f := range r.Findings {
					if t := f.Kind + ": " + f.Summary; len(p.FindingTexts) < 10 && !slices.Contains(p.FindingTexts, t) {
						p.FindingTexts = append(p.FindingTexts, t)
					}
				}
			}
			// Like a ticker: the next check one interval after the last
			// one started, at once when that has passed.
			next = next.Add(b.cfg.interval)
			if now := time.Now(); next.Before(now) {
				next = now
			}
			if err := wait(minTime(next, end)); err != nil {
				return p, err
			}
		}
	} else if err := wait(end); err != nil {
		return p, err
	}
	stop := time.Now()
	q1, s1 := b.g.cpuSeconds(), selfCPUSeconds()
	hb1, ht1 := hostCPU()
	dur := stop.Sub(start).Seconds()
	p.Seconds = dur
	p.QEMUCores = (q1 - q0) / dur
	p.SelfCPUSeconds = s1 - s0
	if ht1 > ht0 {
		p.HostBusyCores = (hb1 - hb0) / (ht1 - ht0) * float64(runtime.NumCPU())
		p.OtherCores = max(0, p.HostBusyCores-p.QEMUCores-p.SelfCPUSeconds/dur)
	}
	// The lines printed inside the phase: from the first to the last, the
	// loop did last.I-first.I whole iterations, all of them in the phase.
	ss := b.g.con.spinsBetween(start, stop)
	p.Lines = len(ss)
	if len(ss) < 2 {
		return p, fmt.Errorf("phase %d%s: %d loop lines in %.1fs; make -spin smaller or -phase longer", round, kind, len(ss), dur)
	}
	first, last := ss[0], ss[len(ss)-1]
	p.Iterations = last.I - first.I
	if last.Up > first.Up {
		p.RateGuest = float64(p.Iterations) / (last.Up - first.Up)
	}
	p.RateHost = float64(p.Iterations) / last.Host.Sub(first.Host).Seconds()

	// Each loop iteration by itself: its length in guest time, and whether
	// a check ran while it did (between the host times its line and the
	// previous one were read).
	for k := 1; k < len(ss); k++ {
		if ss[k].I != ss[k-1].I+1 {
			continue // a line was lost or garbled
		}
		d := 1000 * (ss[k].Up - ss[k-1].Up)
		overlap := false
		for _, sp := range spans {
			if sp[0].Before(ss[k].Host) && sp[1].After(ss[k-1].Host) {
				overlap = true
				break
			}
		}
		if overlap {
			p.IterOverlapMS = append(p.IterOverlapMS, d)
		} else {
			p.IterCleanMS = append(p.IterCleanMS, d)
		}
	}
	return p, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// sourceRevision describes the checkout the benchmark was built from.
func sourceRevision(ctx context.Context) string {
	b, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	s := "git " + string(trimNL(b))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		s += " + uncommitted changes"
	}
	return s
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
