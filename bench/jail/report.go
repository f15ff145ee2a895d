package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/benchrun"

	"github.com/bulwark-project/bulwark/bench/internal/host"
)

// The goals for the jail.
const (
	goalBootOverheadPct = 5.0 // jailed start→ready median at most 5 % slower
	goalExtraMemoryMiB  = 2.0 // jailed QEMU at most 2 MiB larger (VmRSS medians)
)

// contendedShare is the share of one CPU, busy with other work on average
// over a boot, above which the boot counts as contended. On this host a
// quiet boot sees 0.1–0.3 (the daemon, this benchmark's 1 ms console-log
// stat, background), a boot beside another TCG guest 1 or more.
const contendedShare = 0.5

// sample is one timed boot.
type sample struct {
	Index int    `json:"index"` // 1-based; the jailed and unjailed boot of a round share it
	Kind  kind   `json:"kind"`
	Order string `json:"order"` // the round's order, e.g. "jailed→unjailed"
	Name  string `json:"name"`
	PID   int    `json:"pid"`
	Accel string `json:"accel"`
	// StartMS is until POST start returned "running": the jail's set-up
	// (clone, mounts, pivot_root, seccomp, execve) is in it, the guest's
	// boot is not.
	StartMS float64 `json:"start_ms"`
	// ReadyMS is until the guest's ready line was in the console log file.
	ReadyMS float64 `json:"ready_ms"`
	// QEMUCPUMS is the CPU time QEMU had used when the ready line was
	// seen, and OtherCPUMS the rest of the host's busy CPU time over the
	// same start → ready window: the daemon, this benchmark, and anything
	// else running. Both in 10 ms ticks. A jailed QEMU's CPU time includes
	// the jail stage's, which runs in the same process before its execve.
	// More QEMU CPU means the jail made
	// QEMU work harder; more other CPU means the boot competed for the CPUs.
	QEMUCPUMS  float64 `json:"qemu_cpu_ms"`
	OtherCPUMS float64 `json:"other_cpu_ms"`
	// Contended: other work kept on average more than contendedShare of a
	// CPU busy during the boot (another TCG guest keeps a whole one busy).
	Contended      bool `json:"contended"`
	SeccompFilters int  `json:"seccomp_filters"`
	memory
}

// benchrun.Dist summarizes one metric over the timed boots of one kind.

// kindStats summarizes the timed boots of one kind.
type kindStats struct {
	ReadyMS        benchrun.Dist `json:"ready_ms"`
	StartMS        benchrun.Dist `json:"start_ms"`
	AfterStartMS   benchrun.Dist `json:"after_start_ms"` // ReadyMS − StartMS: the guest booting under a running VMM
	QEMUCPUMS      benchrun.Dist `json:"qemu_cpu_ms"`
	OtherCPUMS     benchrun.Dist `json:"other_cpu_ms"`
	RSSMiB         benchrun.Dist `json:"rss_mib"`
	PSSMiB         benchrun.Dist `json:"pss_mib"`
	PSSFileMiB     benchrun.Dist `json:"pss_file_mib"`
	RSSAnonMiB     benchrun.Dist `json:"rss_anon_mib"`
	RSSFileMiB     benchrun.Dist `json:"rss_file_mib"`
	RSSShmemMiB    benchrun.Dist `json:"rss_shmem_mib"`
	SeccompFilters int           `json:"seccomp_filters"` // of the last boot
}

func statsOf(ss []sample) kindStats {
	pick := func(f func(sample) float64) benchrun.Dist {
		var xs []float64
		for _, s := range ss {
			xs = append(xs, f(s))
		}
		return benchrun.Summarize(xs)
	}
	k := kindStats{
		ReadyMS:      pick(func(s sample) float64 { return s.ReadyMS }),
		StartMS:      pick(func(s sample) float64 { return s.StartMS }),
		AfterStartMS: pick(func(s sample) float64 { return s.ReadyMS - s.StartMS }),
		QEMUCPUMS:    pick(func(s sample) float64 { return s.QEMUCPUMS }),
		OtherCPUMS:   pick(func(s sample) float64 { return s.OtherCPUMS }),
		RSSMiB:       pick(func(s sample) float64 { return s.RSSMiB }),
		PSSMiB:       pick(func(s sample) float64 { return s.PSSMiB }),
		PSSFileMiB:   pick(func(s sample) float64 { return s.PSSFileMiB }),
		RSSAnonMiB:   pick(func(s sample) float64 { return s.RSSAnonMiB }),
		RSSFileMiB:   pick(func(s sample) float64 { return s.RSSFileMiB }),
		RSSShmemMiB:  pick(func(s sample) float64 { return s.RSSShmemMiB }),
	}
	if len(ss) > 0 {
		k.SeccompFilters = ss[len(ss)-1].SeccompFilters
	}
	return k
}

// comparison is jailed against unjailed, of the medians unless named
// otherwise.
type comparison struct {
	ReadyRatio       float64 `json:"ready_ratio"`
	ReadyOverheadPct float64 `json:"ready_overhead_pct"`
	ReadyRatioMean   float64 `json:"ready_ratio_mean"`
	// Per-round differences jailed − unjailed of start → ready: the two
	// boots of a round run back to back, so drift in host load over the
	// run cancels out of them.
	PairedDiffMedianMS float64 `json:"paired_diff_median_ms"`
	PairedDiffMeanMS   float64 `json:"paired_diff_mean_ms"`
	PairedDiffSEMS     float64 `json:"paired_diff_stderr_ms"` // standard error of the mean; 0 when n < 3
	// PairedOverheadPct is PairedDiffMeanMS over the unjailed mean.
	PairedOverheadPct float64 `json:"paired_overhead_pct"`
	// Over the rounds where neither boot was contended: how many, the
	// ratio of the medians and the median paired difference.
	QuietRounds           int     `json:"quiet_rounds"`
	QuietReadyRatio       float64 `json:"quiet_ready_ratio"`
	QuietPairedDiffMedian float64 `json:"quiet_paired_diff_median_ms"`
	// The median per-round differences of the two parts of start → ready:
	// the start call (the jail's set-up) and the rest (the guest booting
	// under a jailed or unjailed QEMU).
	PairedStartDiffMS      float64 `json:"paired_start_diff_median_ms"`
	PairedAfterStartDiffMS float64 `json:"paired_after_start_diff_median_ms"`
	// ReadyWithinNoise: the mean paired difference is within two standard
	// errors of zero. Only judged with at least 3 rounds.
	ReadyWithinNoise bool `json:"ready_within_noise"`

	StartRatio  float64 `json:"start_ratio"`
	StartDiffMS float64 `json:"start_diff_ms"`
	RSSDiffMiB  float64 `json:"rss_diff_mib"`
	PSSDiffMiB  float64 `json:"pss_diff_mib"`

	BootGoalMet bool `json:"boot_goal_met"` // ReadyOverheadPct below the goal
	// MemoryGoalMet: RSSDiffMiB below the goal. Pss is not used: its
	// file-backed part moves with the other processes mapping QEMU's
	// libraries at the moment of the reading, which on a shared host is
	// noise larger than the goal.
	MemoryGoalMet       bool    `json:"memory_goal_met"`
	GoalBootOverheadPct float64 `json:"goal_boot_overhead_pct"`
	GoalExtraMemoryMiB  float64 `json:"goal_extra_memory_mib"`
}

type machine struct {
	NProc      int    `json:"nproc"`
	CPUModel   string `json:"cpu_model"`
	Kernel     string `json:"kernel"`
	QEMU       string `json:"qemu"`
	Go         string `json:"go"`
	LoadBefore string `json:"loadavg_before"`
	LoadAfter  string `json:"loadavg_after"`
}

type resultConfig struct {
	N         int     `json:"n"`
	Warmup    int     `json:"warmup"`
	MemoryMiB int     `json:"memory_mib"`
	Accel     string  `json:"accel"` // as asked; each sample has what the daemon chose
	SettleMS  float64 `json:"settle_ms"`
	Marker    string  `json:"marker"`
}

type result struct {
	Date     string        `json:"date"`
	Source   string        `json:"source"`
	Machine  machine       `json:"machine"`
	Config   resultConfig  `json:"config"`
	Runs     []sample      `json:"runs"`
	Jailed   kindStats     `json:"jailed"`
	Unjailed kindStats     `json:"unjailed"`
	Compare  comparison    `json:"compare"`
	Syscalls syscallCounts `json:"syscalls"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// runBoots boots cfg.warmup untimed guests of each kind, then cfg.n timed
// rounds of one jailed and one unjailed boot. The order within a round
// alternates (jailed→unjailed, unjailed→jailed, ...), so drift over the run
// and whatever the previous boot leaves behind fall on both kinds alike.
func runBoots(ctx context.Context, cfg config, ds [2]*daemon, g guest, res *result) error {
	pause := func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(cfg.gap):
			return nil
		}
	}
	for i := range cfg.warmup {
		for _, d := range ds {
			if err := step(fmt.Sprintf("warm-up boot %d, %s (untimed)", i+1, d.kind), func() error {
				if err := pause(); err != nil {
					return err
				}
				_, err := d.boot(ctx, g, fmt.Sprintf("warm-%s-%02d", d.kind, i+1), cfg.settle)
				return err
			}); err != nil {
				return err
			}
		}
	}
	res.Machine.LoadBefore = host.Loadavg()
	defer func() { res.Machine.LoadAfter = host.Loadavg() }()
	for i := range cfg.n {
		order := ds
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		desc := string(order[0].kind) + "→" + string(order[1].kind)
		for _, d := range order {
			if err := pause(); err != nil {
				return err
			}
			s, err := d.boot(ctx, g, fmt.Sprintf("%s-%02d", d.kind, i+1), cfg.settle)
			if err != nil {
				return err
			}
			s.Index, s.Order = i+1, desc
			res.Runs = append(res.Runs, s)
			fmt.Fprintf(os.Stderr, "jail: #%d %-8s start call %6.1f ms, ready %5.0f ms, VmRSS %6.1f MiB, Pss %6.1f MiB, %d seccomp filter(s)\n",
				s.Index, s.Kind, s.StartMS, s.ReadyMS, s.RSSMiB, s.PSSMiB, s.SeccompFilters)
		}
	}
	return nil
}

func (r *result) summarize() {
	var js, us []sample
	byIndex := map[int][2]*sample{}
	for i := range r.Runs {
		s := &r.Runs[i]
		p := byIndex[s.Index]
		if s.Kind == jailed {
			js = append(js, *s)
			p[0] = s
		} else {
			us = append(us, *s)
			p[1] = s
		}
		byIndex[s.Index] = p
	}
	r.Jailed, r.Unjailed = statsOf(js), statsOf(us)
	c := comparison{GoalBootOverheadPct: goalBootOverheadPct, GoalExtraMemoryMiB: goalExtraMemoryMiB}
	var diffs, startDiffs, afterDiffs, quietDiffs, quietJ, quietU []float64
	for _, p := range byIndex {
		if p[0] != nil && p[1] != nil {
			diffs = append(diffs, p[0].ReadyMS-p[1].ReadyMS)
			startDiffs = append(startDiffs, p[0].StartMS-p[1].StartMS)
			afterDiffs = append(afterDiffs, (p[0].ReadyMS-p[0].StartMS)-(p[1].ReadyMS-p[1].StartMS))
			if !p[0].Contended && !p[1].Contended {
				quietDiffs = append(quietDiffs, p[0].ReadyMS-p[1].ReadyMS)
				quietJ, quietU = append(quietJ, p[0].ReadyMS), append(quietU, p[1].ReadyMS)
			}
		}
	}
	c.PairedStartDiffMS, c.PairedAfterStartDiffMS = benchrun.Summarize(startDiffs).Median, benchrun.Summarize(afterDiffs).Median
	if c.QuietRounds = len(quietDiffs); c.QuietRounds > 0 {
		c.QuietReadyRatio = benchrun.Summarize(quietJ).Median / benchrun.Summarize(quietU).Median
		c.QuietPairedDiffMedian = benchrun.Summarize(quietDiffs).Median
	}
	j, u := r.Jailed, r.Unjailed
	if len(diffs) > 0 && u.ReadyMS.Median > 0 {
		pd := benchrun.Summarize(diffs)
		c.PairedDiffMedianMS, c.PairedDiffMeanMS = pd.Median, pd.Mean
		c.PairedOverheadPct = pd.Mean / u.ReadyMS.Mean * 100
		if pd.N >= 3 {
			c.PairedDiffSEMS = pd.Stdev / math.Sqrt(float64(pd.N))
			c.ReadyWithinNoise = math.Abs(pd.Mean) <= 2*c.PairedDiffSEMS
		}
		c.ReadyRatio = j.ReadyMS.Median / u.ReadyMS.Median
		c.ReadyOverheadPct = (c.ReadyRatio - 1) * 100
		c.ReadyRatioMean = j.ReadyMS.Mean / u.ReadyMS.Mean
		c.StartRatio = j.StartMS.Median / u.StartMS.Median
		c.StartDiffMS = j.StartMS.Median - u.StartMS.Median
		c.RSSDiffMiB = j.RSSMiB.Median - u.RSSMiB.Median
		c.PSSDiffMiB = j.PSSMiB.Median - u.PSSMiB.Median
		c.BootGoalMet = c.ReadyOverheadPct < goalBootOverheadPct
		c.MemoryGoalMet = c.RSSDiffMiB < goalExtraMemoryMiB
	}
	r.Compare = c
}

func writeJSON(path string, r *result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// markdown renders the result in the shape docs/benchmarks.md uses.
func markdown(r *result) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	c, m := r.Config, r.Machine
	accel := c.Accel
	if len(r.Runs) > 0 {
		accel = r.Runs[0].Accel
	}
	p("\n## Jail overhead: jailed vs `--unsafe-no-jail`\n\n")
	p("- date: %s; bulwark built from %s\n", r.Date, r.Source)
	p("- machine: %d CPUs (%s), kernel %s, %s, %s\n", m.NProc, m.CPUModel, m.Kernel, m.QEMU, m.Go)
	p("- guests: 1 vCPU, %d MiB, accel %s; memory read %g s after the ready line\n", c.MemoryMiB, accel, c.SettleMS/1000)
	p("- runs: %d timed boots of each kind after %d untimed warm-up of each; order alternating per round; load average before: %s, after: %s\n",
		c.N, c.Warmup, m.LoadBefore, m.LoadAfter)
	if len(r.Runs) > 0 {
		p("\n| # | kind | start call (ms) | start → ready (ms) | QEMU CPU (ms) | other CPU (ms) | VmRSS (MiB) | Pss (MiB) | Pss file | RssAnon | RssFile | RssShmem | seccomp filters |\n")
		p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range r.Runs {
			mark := ""
			if s.Contended {
				mark = " *"
			}
			p("| %d | %s | %.1f | %.0f | %.0f | %.0f%s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %d |\n", s.Index, s.Kind, s.StartMS, s.ReadyMS,
				s.QEMUCPUMS, s.OtherCPUMS, mark, s.RSSMiB, s.PSSMiB, s.PSSFileMiB, s.RSSAnonMiB, s.RSSFileMiB, s.RSSShmemMiB, s.SeccompFilters)
		}
		j, u, cmp := r.Jailed, r.Unjailed, r.Compare
		p("\n| metric | jailed median | mean | p90 | unjailed median | mean | p90 | jailed vs unjailed (medians) |\n")
		p("|---|---:|---:|---:|---:|---:|---:|---:|\n")
		row := func(name string, a, b benchrun.Dist, prec int, cmp string) {
			p("| %s | %.*f | %.*f | %.*f | %.*f | %.*f | %.*f | %s |\n", name,
				prec, a.Median, prec, a.Mean, prec, a.P90, prec, b.Median, prec, b.Mean, prec, b.P90, cmp)
		}
		row("start → ready (ms)", j.ReadyMS, u.ReadyMS, 0, fmt.Sprintf("×%.3f", cmp.ReadyRatio))
		row("start call (ms)", j.StartMS, u.StartMS, 1, fmt.Sprintf("×%.2f (%+.1f ms)", cmp.StartRatio, cmp.StartDiffMS))
		row("start returned → ready (ms)", j.AfterStartMS, u.AfterStartMS, 0, fmt.Sprintf("×%.3f", j.AfterStartMS.Median/u.AfterStartMS.Median))
		row("QEMU CPU to ready (ms)", j.QEMUCPUMS, u.QEMUCPUMS, 0, fmt.Sprintf("×%.3f", j.QEMUCPUMS.Median/u.QEMUCPUMS.Median))
		row("other CPU, same window (ms)", j.OtherCPUMS, u.OtherCPUMS, 0, fmt.Sprintf("%+.0f ms", j.OtherCPUMS.Median-u.OtherCPUMS.Median))
		row("VmRSS (MiB)", j.RSSMiB, u.RSSMiB, 1, fmt.Sprintf("%+.2f MiB", cmp.RSSDiffMiB))
		row("Pss (MiB)", j.PSSMiB, u.PSSMiB, 1, fmt.Sprintf("%+.2f MiB", cmp.PSSDiffMiB))
		row("Pss, file-backed part (MiB)", j.PSSFileMiB, u.PSSFileMiB, 1, fmt.Sprintf("%+.2f MiB", j.PSSFileMiB.Median-u.PSSFileMiB.Median))
		row("RssAnon (MiB)", j.RSSAnonMiB, u.RSSAnonMiB, 1, fmt.Sprintf("%+.2f MiB", j.RSSAnonMiB.Median-u.RSSAnonMiB.Median))
		row("RssFile (MiB)", j.RSSFileMiB, u.RSSFileMiB, 1, fmt.Sprintf("%+.2f MiB", j.RSSFileMiB.Median-u.RSSFileMiB.Median))
		row("RssShmem, guest RAM (MiB)", j.RSSShmemMiB, u.RSSShmemMiB, 1, fmt.Sprintf("%+.2f MiB", j.RSSShmemMiB.Median-u.RSSShmemMiB.Median))
		p("\nBoot overhead of the jail, start → ready (medians): **%+.1f%%** (ratio %.3f; of the means ×%.3f). Goal < %g%%: **%s**.\n",
			cmp.ReadyOverheadPct, cmp.ReadyRatio, cmp.ReadyRatioMean, goalBootOverheadPct, bootVerdict(cmp, j.ReadyMS.N))
		p("Per-round paired difference jailed − unjailed: median %+.0f ms, mean %+.0f ms%s (%+.1f%% of the unjailed mean); %s.\n",
			cmp.PairedDiffMedianMS, cmp.PairedDiffMeanMS, stderrWords(cmp.PairedDiffSEMS), cmp.PairedOverheadPct, noiseWords(cmp, j.ReadyMS.N))
		p("Of that, median per round: the start call (the jail's set-up) %+.1f ms; the rest (the guest booting under the jailed QEMU) %+.0f ms.\n",
			cmp.PairedStartDiffMS, cmp.PairedAfterStartDiffMS)
		if cmp.QuietRounds > 0 {
			p("Rounds where neither boot was contended (other work below %g of a CPU on average; contended boots are marked * above): %d of %d; over them, medians ×%.3f (%+.1f%%), median paired difference %+.0f ms.\n",
				contendedShare, cmp.QuietRounds, j.ReadyMS.N, cmp.QuietReadyRatio, (cmp.QuietReadyRatio-1)*100, cmp.QuietPairedDiffMedian)
		} else {
			p("Every round had a contended boot (other work above %g of a CPU on average, marked * above).\n", contendedShare)
		}
		p("Extra memory of a jailed QEMU (medians): VmRSS %+.2f MiB. Goal < %g MiB: **%s**. (Pss %+.2f MiB, of which file-backed %+.2f MiB: the file-backed part depends on how many other processes map QEMU's libraries at the moment of the reading, so it is shown but not judged.)\n",
			cmp.RSSDiffMiB, goalExtraMemoryMiB, metWords(cmp.MemoryGoalMet), cmp.PSSDiffMiB, j.PSSFileMiB.Median-u.PSSFileMiB.Median)
		p("Seccomp filters stacked on QEMU: jailed %d, unjailed %d (QEMU's own `-sandbox` is one).\n", j.SeccompFilters, u.SeccompFilters)
	}
	p("%s", syscallsMarkdown(r.Syscalls))
	return b.String()
}

func metWords(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

// bootVerdict says whether the boot goal is met, and when it is not but
// the difference cannot be told from noise, says that too.
func bootVerdict(c comparison, n int) string {
	if c.BootGoalMet {
		return "met"
	}
	if n >= 3 && c.ReadyWithinNoise {
		return "not met on the medians, but the difference is within the run's noise"
	}
	return "not met"
}

func stderrWords(se float64) string {
	if se == 0 {
		return ""
	}
	return fmt.Sprintf(" ± %.0f ms standard error", se)
}

func noiseWords(c comparison, n int) string {
	switch {
	case n < 3:
		return "too few rounds to tell it from noise"
	case c.ReadyWithinNoise:
		return "within two standard errors of zero, i.e. not distinguishable from noise"
	default:
		return "more than two standard errors from zero"
	}
}
