package main

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"

	"github.com/bulwark-project/bulwark/bench/internal/host"
	"github.com/bulwark-project/bulwark/internal/hv"
)

type machine struct {
	NProc      int    `json:"nproc"`
	CPUModel   string `json:"cpu_model"`
	Kernel     string `json:"kernel"`
	QEMU       string `json:"qemu"`
	Go         string `json:"go"`
	TSCkHz     int    `json:"tsc_khz"`
	LoadBefore string `json:"loadavg_before"`
	LoadAfter  string `json:"loadavg_after"`
}

type resultConfig struct {
	Procs     int     `json:"procs"`
	PhaseS    float64 `json:"phase_s"`
	Rounds    int     `json:"rounds"`
	IntervalS float64 `json:"interval_s"`
	PS        int     `json:"ps"`
	Checks    int     `json:"checks"`
	ColdReps  int     `json:"cold_reps"`
	Spin      int     `json:"spin"`
	VCPUs     int     `json:"vcpus"`
	MemoryMiB int     `json:"memory_mib"`
	Accel     string  `json:"accel"`
	RAMDir    string  `json:"ram_dir"`
	Modules   int     `json:"extra_modules"`
	ChurnS    float64 `json:"churn_s,omitempty"`
	// ChurnIntervalS is the time between checks of a churn run.
	ChurnIntervalS float64 `json:"churn_interval_s,omitempty"`
}

type bootInfo struct {
	ReadyS    float64 `json:"ready_s"`    // QEMU start to the image's ready marker
	ProcsS    float64 `json:"procs_s"`    // QEMU start to the script's processes started
	ProcsLine string  `json:"procs_line"` // "vmibench-procs-started N UPTIME PIDS-IN-/proc"
}

// coldResult holds raw samples, in ms.
type coldResult struct {
	DeriveMS      []float64 `json:"derive_ms"`       // profile.Derive, no cache
	DeriveSaveMS  []float64 `json:"derive_save_ms"`  // profile.LoadOrDerive, empty cache
	InfoEmptyMS   []float64 `json:"info_empty_ms"`   // first Handle, fresh engine, empty cache
	InfoFilledMS  []float64 `json:"info_filled_ms"`  // first Handle, fresh engine, filled cache
	RegsMS        []float64 `json:"regs_ms"`         // registers over QMP, before those
	ProfileLoadMS []float64 `json:"profile_load_ms"` // LoadOrDerive from the filled cache + LayoutOf
	MapMS         []float64 `json:"map_ms"`          // mem.OpenRAM
	FindMS        []float64 `json:"find_ms"`         // vmcoreinfo.FindVerified
	AttachMS      []float64 `json:"attach_ms"`       // guest.Attach (finds VMCOREINFO again)
	BaselineMS    []float64 `json:"baseline_ms"`     // ProtectedRegions + PageHashes
	BaselinePages int       `json:"baseline_pages"`  // 4 KiB pages of text and rodata hashed
	Release       string    `json:"release"`         // of the derived profile
	BuildID       string    `json:"build_id"`        // of the derived profile
	KernelOffset  string    `json:"kernel_offset"`   // KASLR slide found
}

// callSample is one request as the daemon and monitor would serve it.
type callSample struct {
	RegsMS    float64 `json:"regs_ms"`    // info registers -a over QMP, parsed
	OpenMS    float64 `json:"open_ms"`    // opening the RAM file and kernel image
	HandleMS  float64 `json:"handle_ms"`  // engine.Handle, wall
	MonitorMS float64 `json:"monitor_ms"` // the millis the engine reports
	MarshalMS float64 `json:"marshal_ms"` // JSON of the result
	TotalMS   float64 `json:"total_ms"`   // all of the above
	CPUMS     float64 `json:"cpu_ms"`     // this process's CPU time during Handle
	Bytes     int     `json:"bytes"`      // JSON size
}

type warmResult struct {
	PS            []callSample `json:"ps"`
	Check         []callSample `json:"check"`
	Processes     int          `json:"processes"`
	KernelThreads int          `json:"kernel_threads"`
	Sleeps        int          `json:"sleeps"`
	Modules       int          `json:"modules"` // the module list's length
	// ViewUS are the per-view costs each check reports (Report.Scanned's
	// *_us counts), one sample per check.
	ViewUS                  map[string][]float64 `json:"view_us"`
	Scanned                 map[string]int       `json:"scanned"`
	Findings                []string             `json:"findings"`
	CheckPartsMS            map[string][]float64 `json:"check_parts_ms"`
	CheckLoopCPUPerCheckMS  float64              `json:"check_loop_cpu_per_check_ms"`
	CheckLoopWallPerCheckMS float64              `json:"check_loop_wall_per_check_ms"`
}

type phaseResult struct {
	Round          int      `json:"round"`
	Kind           string   `json:"kind"` // A: no scanning, B: a check every interval
	Seconds        float64  `json:"seconds"`
	Lines          int      `json:"lines"`
	Iterations     int      `json:"iterations"`
	RateGuest      float64  `json:"rate_per_guest_s"`
	RateHost       float64  `json:"rate_per_host_s"`
	QEMUCores      float64  `json:"qemu_cores"`
	HostBusyCores  float64  `json:"host_busy_cores"`
	OtherCores     float64  `json:"other_cores"` // host busy less QEMU and this process
	SelfCPUSeconds float64  `json:"self_cpu_s"`
	Checks         int      `json:"checks"`
	Findings       int      `json:"findings"`
	FindingTexts   []string `json:"finding_texts,omitempty"` // distinct, the first 10
	// Iteration lengths (guest ms, 10 ms resolution): in B phases split
	// by whether a check ran during the iteration; in A phases all clean.
	IterCleanMS    []float64 `json:"iter_clean_ms"`
	IterOverlapMS  []float64 `json:"iter_overlap_ms,omitempty"`
	CheckMonitorMS []float64 `json:"check_monitor_ms,omitempty"`
	CheckTotalMS   []float64 `json:"check_total_ms,omitempty"`
}

type dist struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
	P95    float64 `json:"p95"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func summarizeDist(xs []float64) dist {
	if len(xs) == 0 {
		return dist{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	p90 := s[int(math.Ceil(0.9*float64(n)))-1]
	p95 := s[int(math.Ceil(0.95*float64(n)))-1]
	return dist{N: n, Median: med, P90: p90, P95: p95, Min: s[0], Max: s[n-1]}
}

func field(ss []callSample, f func(callSample) float64) dist {
	xs := make([]float64, len(ss))
	for i, s := range ss {
		xs[i] = f(s)
	}
	return summarizeDist(xs)
}

type summary struct {
	Derive      dist `json:"derive_ms"`
	DeriveSave  dist `json:"derive_save_ms"`
	InfoEmpty   dist `json:"info_empty_cache_ms"`
	InfoFilled  dist `json:"info_filled_cache_ms"`
	ProfileLoad dist `json:"profile_load_ms"`
	Map         dist `json:"map_ms"`
	Find        dist `json:"find_ms"`
	Attach      dist `json:"attach_ms"`
	Baseline    dist `json:"baseline_ms"`
	Regs        dist `json:"regs_ms"`

	PSMonitor dist `json:"ps_monitor_ms"`
	PSHandle  dist `json:"ps_handle_ms"`
	PSTotal   dist `json:"ps_total_ms"`
	PSRegs    dist `json:"ps_regs_ms"`
	PSMarshal dist `json:"ps_marshal_ms"`
	PSCPU     dist `json:"ps_cpu_ms"`
	PSBytes   int  `json:"ps_bytes"`

	CheckMonitor dist            `json:"check_monitor_ms"`
	CheckHandle  dist            `json:"check_handle_ms"`
	CheckTotal   dist            `json:"check_total_ms"`
	CheckCPU     dist            `json:"check_cpu_ms"`
	CheckParts   map[string]dist `json:"check_parts_ms"`
	ViewUS       map[string]dist `json:"view_us"`
	ChurnCheck   dist            `json:"churn_check_ms"`

	// PairedPct is, for each B phase, 100 × (1 − B / mean of the A phases
	// before and after it), per guest second: drift cancels.
	PairedPct       []float64 `json:"paired_slowdown_pct"`
	PairedMeanPct   float64   `json:"paired_slowdown_mean_pct"`
	ASteps          []float64 `json:"a_steps_pct"` // 100 × (A[k+1]/A[k] − 1): how much the guest's speed moves on its own
	RateA           float64   `json:"rate_a"`      // mean over A phases, iterations per guest second
	RateB           float64   `json:"rate_b"`
	SlowdownPct     float64   `json:"slowdown_pct"`      // 100 × (1 − RateB/RateA), guest seconds
	SlowdownHostPct float64   `json:"slowdown_host_pct"` // the same per host second
	ASpreadPct      float64   `json:"a_spread_pct"`      // (max − min)/mean of the A rates: the noise floor
	BSpreadPct      float64   `json:"b_spread_pct"`
	QEMUCoresA      float64   `json:"qemu_cores_a"`
	QEMUCoresB      float64   `json:"qemu_cores_b"`
	HostBusyA       float64   `json:"host_busy_cores_a"`
	HostBusyB       float64   `json:"host_busy_cores_b"`
	// PhaseCPUPerCheckMS is this process's CPU time per check in B phases,
	// less its CPU rate in A phases (console reading, runtime).
	PhaseCPUPerCheckMS float64 `json:"phase_cpu_per_check_ms"`
	PhaseChecks        int     `json:"phase_checks"`
	PhaseCheckMonitor  dist    `json:"phase_check_monitor_ms"`
	PhaseCheckTotal    dist    `json:"phase_check_total_ms"`
	PhaseFindings      int     `json:"phase_findings"`

	// Iterations of the guest loop one by one (guest ms): in A phases; in
	// B phases with no check during them; in B phases with one.
	IterA        moments `json:"iter_a_ms"`
	IterBClean   moments `json:"iter_b_clean_ms"`
	IterBOverlap moments `json:"iter_b_overlap_ms"`
	// OverlapExtraMS is how much longer an iteration with a check took
	// than one without in the same B phases (± its standard error), and
	// OverlapSlowdownPct what that extra time is of all B-phase time: the
	// slowdown seen at the scale of one iteration, where drift cancels.
	OverlapExtraMS       float64 `json:"overlap_extra_ms"`
	OverlapExtraSEMS     float64 `json:"overlap_extra_se_ms"`
	OverlapSlowdownPct   float64 `json:"overlap_slowdown_pct"`
	OverlapSlowdownSEPct float64 `json:"overlap_slowdown_se_pct"`
}

// moments are the count, mean, standard deviation and median of samples.
type moments struct {
	N      int     `json:"n"`
	Mean   float64 `json:"mean"`
	SD     float64 `json:"sd"`
	Median float64 `json:"median"`
}

func momentsOf(xs []float64) moments {
	m := moments{N: len(xs)}
	if m.N == 0 {
		return m
	}
	for _, x := range xs {
		m.Mean += x
	}
	m.Mean /= float64(m.N)
	if m.N > 1 {
		var v float64
		for _, x := range xs {
			v += (x - m.Mean) * (x - m.Mean)
		}
		m.SD = math.Sqrt(v / float64(m.N-1))
	}
	m.Median = summarizeDist(xs).Median
	return m
}

type result struct {
	Date    string        `json:"date"`
	Source  string        `json:"source"`
	Machine machine       `json:"machine"`
	Config  resultConfig  `json:"config"`
	Boot    bootInfo      `json:"boot"`
	Cold    coldResult    `json:"cold"`
	Warm    warmResult    `json:"warm"`
	Phases  []phaseResult `json:"phases"`
	Churn   *churnResult  `json:"churn,omitempty"`
	Summary summary       `json:"summary"`
}

func (r *result) summarize() {
	s := &r.Summary
	c := r.Cold
	s.Derive, s.InfoEmpty, s.InfoFilled = summarizeDist(c.DeriveMS), summarizeDist(c.InfoEmptyMS), summarizeDist(c.InfoFilledMS)
	s.DeriveSave = summarizeDist(c.DeriveSaveMS)
	s.ProfileLoad, s.Map, s.Find = summarizeDist(c.ProfileLoadMS), summarizeDist(c.MapMS), summarizeDist(c.FindMS)
	s.Attach, s.Baseline, s.Regs = summarizeDist(c.AttachMS), summarizeDist(c.BaselineMS), summarizeDist(c.RegsMS)

	w := r.Warm
	s.PSMonitor = field(w.PS, func(c callSample) float64 { return c.MonitorMS })
	s.PSHandle = field(w.PS, func(c callSample) float64 { return c.HandleMS })
	s.PSTotal = field(w.PS, func(c callSample) float64 { return c.TotalMS })
	s.PSRegs = field(w.PS, func(c callSample) float64 { return c.RegsMS })
	s.PSMarshal = field(w.PS, func(c callSample) float64 { return c.MarshalMS })
	s.PSCPU = field(w.PS, func(c callSample) float64 { return c.CPUMS })
	if len(w.PS) > 0 {
		s.PSBytes = w.PS[0].Bytes
	}
	s.CheckMonitor = field(w.Check, func(c callSample) float64 { return c.MonitorMS })
	s.CheckHandle = field(w.Check, func(c callSample) float64 { return c.HandleMS })
	s.CheckTotal = field(w.Check, func(c callSample) float64 { return c.TotalMS })
	s.CheckCPU = field(w.Check, func(c callSample) float64 { return c.CPUMS })
	s.ViewUS = map[string]dist{}
	for k, v := range w.ViewUS {
		s.ViewUS[k] = summarizeDist(v)
	}
	if r.Churn != nil {
		s.ChurnCheck = summarizeDist(r.Churn.CheckMS)
	}
	s.CheckParts = map[string]dist{}
	for k, v := range w.CheckPartsMS {
		s.CheckParts[k] = summarizeDist(v)
	}

	for i := 1; i+1 < len(r.Phases); i++ {
		pa, pb, pc := r.Phases[i-1], r.Phases[i], r.Phases[i+1]
		if pb.Kind != "B" || pa.Kind != "A" || pc.Kind != "A" || pa.RateGuest+pc.RateGuest == 0 {
			continue
		}
		s.PairedPct = append(s.PairedPct, 100*(1-2*pb.RateGuest/(pa.RateGuest+pc.RateGuest)))
	}
	for _, v := range s.PairedPct {
		s.PairedMeanPct += v / float64(len(s.PairedPct))
	}
	var prevA float64
	var a, b []phaseResult
	for _, p := range r.Phases {
		if p.Kind == "A" {
			if prevA > 0 {
				s.ASteps = append(s.ASteps, 100*(p.RateGuest/prevA-1))
			}
			prevA = p.RateGuest
		}
		if p.Kind == "A" {
			a = append(a, p)
		} else {
			b = append(b, p)
		}
	}
	if len(a) == 0 || len(b) == 0 {
		return
	}
	rate := func(ps []phaseResult, f func(phaseResult) float64) (mean, spread float64) {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, p := range ps {
			v := f(p)
			mean += v
			lo, hi = min(lo, v), max(hi, v)
		}
		mean /= float64(len(ps))
		if mean > 0 {
			spread = 100 * (hi - lo) / mean
		}
		return mean, spread
	}
	guestRate := func(p phaseResult) float64 { return p.RateGuest }
	hostRate := func(p phaseResult) float64 { return p.RateHost }
	s.RateA, s.ASpreadPct = rate(a, guestRate)
	s.RateB, s.BSpreadPct = rate(b, guestRate)
	if s.RateA > 0 {
		s.SlowdownPct = 100 * (1 - s.RateB/s.RateA)
	}
	ha, _ := rate(a, hostRate)
	hb, _ := rate(b, hostRate)
	if ha > 0 {
		s.SlowdownHostPct = 100 * (1 - hb/ha)
	}
	s.QEMUCoresA, _ = rate(a, func(p phaseResult) float64 { return p.QEMUCores })
	s.QEMUCoresB, _ = rate(b, func(p phaseResult) float64 { return p.QEMUCores })
	s.HostBusyA, _ = rate(a, func(p phaseResult) float64 { return p.HostBusyCores })
	s.HostBusyB, _ = rate(b, func(p phaseResult) float64 { return p.HostBusyCores })
	var aCPU, aSec, bCPU, bSec float64
	var mon, tot []float64
	for _, p := range a {
		aCPU += p.SelfCPUSeconds
		aSec += p.Seconds
	}
	for _, p := range b {
		bCPU += p.SelfCPUSeconds
		bSec += p.Seconds
		s.PhaseChecks += p.Checks
		s.PhaseFindings += p.Findings
		mon = append(mon, p.CheckMonitorMS...)
		tot = append(tot, p.CheckTotalMS...)
	}
	var ia, ic, io []float64
	for _, p := range a {
		ia = append(ia, p.IterCleanMS...)
	}
	for _, p := range b {
		ic = append(ic, p.IterCleanMS...)
		io = append(io, p.IterOverlapMS...)
	}
	s.IterA, s.IterBClean, s.IterBOverlap = momentsOf(ia), momentsOf(ic), momentsOf(io)
	if c, o := s.IterBClean, s.IterBOverlap; c.N > 1 && o.N > 1 {
		s.OverlapExtraMS = o.Mean - c.Mean
		s.OverlapExtraSEMS = math.Sqrt(c.SD*c.SD/float64(c.N) + o.SD*o.SD/float64(o.N))
		total := c.Mean*float64(c.N) + o.Mean*float64(o.N)
		s.OverlapSlowdownPct = 100 * s.OverlapExtraMS * float64(o.N) / total
		s.OverlapSlowdownSEPct = 100 * s.OverlapExtraSEMS * float64(o.N) / total
	}
	if s.PhaseChecks > 0 && aSec > 0 {
		s.PhaseCPUPerCheckMS = 1000 * (bCPU - aCPU/aSec*bSec) / float64(s.PhaseChecks)
	}
	s.PhaseCheckMonitor, s.PhaseCheckTotal = summarizeDist(mon), summarizeDist(tot)
}

func machineInfo(qemuPath string) machine {
	return machine{NProc: runtime.NumCPU(), Go: runtime.Version(), TSCkHz: hv.HostTSCkHz(), LoadBefore: host.Loadavg(),
		CPUModel: host.CPUModel(), Kernel: host.Kernel(), QEMU: host.QEMU(qemuPath)}
}

func fd(d dist) string {
	if d.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%s / %s / %s", num(d.Median), num(d.P90), num(d.Max))
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// report is the human-readable result (Markdown).
func report(r *result) string {
	var b strings.Builder
	s := r.Summary
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Introspection benchmark\n\n")
	p("%s, %s; %d× %s, Linux %s, %s, %s; load %s before, %s after\n\n", r.Date, r.Source, r.Machine.NProc, r.Machine.CPUModel,
		r.Machine.Kernel, r.Machine.QEMU, r.Machine.Go, r.Machine.LoadBefore, r.Machine.LoadAfter)
	cf := r.Config
	p("Guest: %s, %d vCPU, %d MiB (RAM file in %s), %d background processes, loop of %d steps per line.\n",
		cf.Accel, cf.VCPUs, cf.MemoryMiB, cf.RAMDir, cf.Procs, cf.Spin)
	p("Boot: ready marker %.1f s after QEMU started, processes started at %.1f s (%q).\n\n", r.Boot.ReadyS, r.Boot.ProcsS, r.Boot.ProcsLine)

	if r.Churn != nil {
		churnReport(p, r.Churn, s.ChurnCheck, cf)
	}
	if len(r.Cold.DeriveMS) == 0 {
		return b.String()
	}
	c := r.Cold
	p("## Cold discovery (ms; each repetition in order, the first is this process's first)\n\n")
	p("Kernel %s, build id %s, KASLR slide %s, %d protected pages.\n\n", c.Release, c.BuildID, c.KernelOffset, c.BaselinePages)
	p("| what | ms | median |\n|---|---|---:|\n")
	row := func(what string, xs []float64) {
		p("| %s | %s | %s |\n", what, list(xs), num(summarizeDist(xs).Median))
	}
	row("profile.Derive (no cache)", c.DeriveMS)
	row("profile.LoadOrDerive, empty cache (hash the image, derive, save)", c.DeriveSaveMS)
	row("**first request, fresh engine, empty profile cache** (derive + save + map + find + attach + baseline + the kernel's expected text and gates from the image, the modules' from the initramfs, first verification)", c.InfoEmptyMS)
	row("**first request, fresh engine, filled profile cache**", c.InfoFilledMS)
	row("· profile from the cache (LoadOrDerive: hash the image, read JSON)", c.ProfileLoadMS)
	row("· map the RAM file", c.MapMS)
	row("· find and verify VMCOREINFO", c.FindMS)
	row("· guest.Attach (includes a second find)", c.AttachMS)
	row("· baseline: hash kernel text and rodata", c.BaselineMS)
	row("registers over QMP, before each first request (not in the rows above)", c.RegsMS)
	p("\n")

	if len(r.Warm.PS) == 0 {
		return b.String()
	}
	w := r.Warm
	p("## Warm views (ms, median / p90 / max)\n\n")
	if w.Sleeps < cf.Procs {
		p("**Only %d of the %d sleep processes were listed.**\n\n", w.Sleeps, cf.Procs)
	}
	p("ps listed %d processes (%d sleep, %d kernel threads); JSON %d bytes. check scanned %v, %d findings%s.\n\n",
		w.Processes, w.Sleeps, w.KernelThreads, s.PSBytes, w.Scanned, len(w.Findings), findingsText(w.Findings))
	p("| request | n | monitor's millis | Handle wall | + registers, open, JSON (total) | registers | CPU during Handle |\n|---|---:|---|---|---|---|---|\n")
	p("| ps | %d | %s | %s | %s | %s | %s |\n", s.PSHandle.N, fd(s.PSMonitor), fd(s.PSHandle), fd(s.PSTotal), fd(s.PSRegs), fd(s.PSCPU))
	p("| check | %d | %s | %s | %s | – | %s |\n\n", s.CheckHandle.N, fd(s.CheckMonitor), fd(s.CheckHandle), fd(s.CheckTotal), fd(s.CheckCPU))
	p("Back-to-back checks: %.1f ms of CPU (this process) and %.1f ms wall per check.\n\n", w.CheckLoopCPUPerCheckMS, w.CheckLoopWallPerCheckMS)
	p("Full check with all views: median %s ms, p95 %s ms (monitor's millis, n=%d; goal < 50 ms for 500 tasks and 50 modules); %d modules listed.\n\n",
		num(s.CheckMonitor.Median), num(s.CheckMonitor.P95), s.CheckMonitor.N, w.Modules)
	if len(s.ViewUS) > 0 {
		p("Cost of each view inside a check as the report gives it (µs, median / p95 / max):\n\n| view | µs |\n|---|---|\n")
		keys := make([]string, 0, len(s.ViewUS))
		for k := range s.ViewUS {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			d := s.ViewUS[k]
			p("| %s | %s / %s / %s |\n", k, num(d.Median), num(d.P95), num(d.Max))
		}
		p("\n")
	}
	if len(s.CheckParts) > 0 {
		p("Parts of a check, timed alone (ms, median / p90 / max of 5):\n\n| part | ms |\n|---|---|\n")
		for _, name := range checkPartNames {
			p("| %s | %s |\n", name, fd(s.CheckParts[name]))
		}
		p("\n")
	}

	if len(r.Phases) == 0 {
		return b.String()
	}
	p("## Guest slowdown (A: no scanning, B: a check every %gs)\n\n", cf.IntervalS)
	p("| phase | s | lines | iterations | per guest s | per host s | QEMU cores | host busy cores | other load, cores | checks | check ms (median) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, ph := range r.Phases {
		med := "–"
		if ph.Checks > 0 {
			med = num(summarizeDist(ph.CheckMonitorMS).Median)
		}
		p("| %d%s | %.1f | %d | %d | %.4f | %.4f | %.2f | %.2f | %.2f | %d | %s |\n", ph.Round, ph.Kind, ph.Seconds, ph.Lines, ph.Iterations,
			ph.RateGuest, ph.RateHost, ph.QEMUCores, ph.HostBusyCores, ph.OtherCores, ph.Checks, med)
	}
	p("\n**Slowdown, each B against the mean of the A phases around it: %s %%, mean %.2f %%.** ", pcts(s.PairedPct), s.PairedMeanPct)
	p("The guest's own drift, each A against the previous A: %s %%.\n", pcts(s.ASteps))
	p("Pooled: rate A %.4f, B %.4f iterations per guest second, slowdown %.2f %% (per host second %.2f %%); ", s.RateA, s.RateB, s.SlowdownPct, s.SlowdownHostPct)
	p("spread (max − min)/mean between A phases %.2f %%, between B phases %.2f %%.\n", s.ASpreadPct, s.BSpreadPct)
	p("Iteration by iteration (guest ms, mean ± sd, median, n): A %s; B without a check %s; B with a check %s. ",
		mom(s.IterA), mom(s.IterBClean), mom(s.IterBOverlap))
	p("**An iteration with a check took %+.1f ± %.1f ms more than one without, in the same phases: a slowdown of %.2f ± %.2f %% of B time.**\n",
		s.OverlapExtraMS, s.OverlapExtraSEMS, s.OverlapSlowdownPct, s.OverlapSlowdownSEPct)
	p("Checks in B phases: %d, monitor's millis %s, total %s; this process's CPU per check (less its A-phase rate) %.1f ms, ",
		s.PhaseChecks, fd(s.PhaseCheckMonitor), fd(s.PhaseCheckTotal), s.PhaseCPUPerCheckMS)
	if cf.IntervalS > 0 {
		p("i.e. %.1f %% of one core at one check every %gs; %d findings.\n", s.PhaseCPUPerCheckMS/10/cf.IntervalS, cf.IntervalS, s.PhaseFindings)
	}
	for _, ph := range r.Phases {
		for _, f := range ph.FindingTexts {
			p("- %d%s: %s\n", ph.Round, ph.Kind, f)
		}
	}
	return b.String()
}

func findingsText(f []string) string {
	if len(f) == 0 {
		return ""
	}
	if len(f) > 3 {
		f = append(f[:3:3], fmt.Sprintf("… %d more", len(f)-3))
	}
	return " (" + strings.Join(f, "; ") + ")"
}

func pcts(v []float64) string {
	if len(v) == 0 {
		return "–"
	}
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = fmt.Sprintf("%+.2f", x)
	}
	return strings.Join(out, ", ")
}

func mom(m moments) string {
	return fmt.Sprintf("%.1f ± %.1f, %.1f, %d", m.Mean, m.SD, m.Median, m.N)
}

func list(xs []float64) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = num(x)
	}
	return strings.Join(out, ", ")
}

func churnReport(p func(string, ...any), c *churnResult, check dist, cf resultConfig) {
	p("## Churn run (%.0f s, a check every %gs)\n\n", c.Seconds, cf.ChurnIntervalS)
	mod := "no module cycled (-modules 0)"
	if c.Module != "" {
		mod = fmt.Sprintf("module %s unloaded and loaded %d times (%d failures)", c.Module, c.ModCycles, c.ModFailures)
	}
	ft := "ftrace not available"
	if c.Ftrace {
		ft = fmt.Sprintf("ftrace function tracer switched %d times", c.FtraceFlips)
	}
	p("Guest: %d tasks and %d modules listed at the end; %d short-lived processes, %s, %s.\n\n", c.Tasks, c.Modules, c.Forks, mod, ft)
	total := 0
	kinds := make([]string, 0, len(c.Findings))
	for k, n := range c.Findings {
		total += n
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(kinds)
	p("%d checks (%d failed requests), check %s ms (median / p90 / max); **%d findings on a clean guest (false positives)**%s.\n\n",
		c.Checks, c.CheckErrors, fd(check), total, kindsText(kinds))
	for _, t := range c.Texts {
		p("- %s\n", t)
	}
	if len(c.Texts) > 0 {
		p("\n")
	}
}

func kindsText(kinds []string) string {
	if len(kinds) == 0 {
		return ""
	}
	return ": " + strings.Join(kinds, ", ")
}
