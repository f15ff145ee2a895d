package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/benchrun"

	"github.com/bulwark-project/bulwark/bench/internal/host"
	"github.com/bulwark-project/bulwark/internal/hv"
)

// sample is one timed boot.
type sample struct {
	Total    time.Duration // start to ready line seen
	StartAPI time.Duration // Bulwark only: until POST .../start returned
}

type bootRun struct {
	Index             int     `json:"index"`
	Round             int     `json:"round"`
	Order             string  `json:"order"`
	RawMS             float64 `json:"raw_ms"`
	BulwarkMS         float64 `json:"bulwark_ms"`
	BulwarkStartAPIMS float64 `json:"bulwark_start_api_ms"`
}

type stats struct {
	N        int     `json:"n"`
	MedianMS float64 `json:"median_ms"`
	MeanMS   float64 `json:"mean_ms"`
	MinMS    float64 `json:"min_ms"`
	MaxMS    float64 `json:"max_ms"`
	StdevMS  float64 `json:"stdev_ms"`
}

type rssReading struct {
	State string  `json:"state"`
	MiB   float64 `json:"mib"`
}

type machine struct {
	NProc       int    `json:"nproc"`
	CPUModel    string `json:"cpu_model"`
	Kernel      string `json:"kernel"`
	QEMU        string `json:"qemu"`
	Go          string `json:"go"`
	TSCkHz      int    `json:"tsc_khz"`
	Load1Before string `json:"loadavg_before"`
	Load1After  string `json:"loadavg_after"`
}

type resultConfig struct {
	N           int     `json:"n"`
	Parallel    int     `json:"parallel"`
	Warmup      int     `json:"warmup"`
	VCPUs       int     `json:"vcpus"`
	MemoryMiB   int     `json:"memory_mib"`
	Accel       string  `json:"accel"`
	AccelReason string  `json:"accel_reason"`
	Detect      string  `json:"detect"`
	PollMS      float64 `json:"poll_ms"`
	Marker      string  `json:"marker"`
	RawUID      int     `json:"raw_uid"`
	ServeArgs   string  `json:"serve_args,omitempty"`
}

type result struct {
	Date    string       `json:"date"`
	Source  string       `json:"source"`
	Machine machine      `json:"machine"`
	Config  resultConfig `json:"config"`
	Runs    []bootRun    `json:"runs"`

	Raw             stats `json:"raw"`
	Bulwark         stats `json:"bulwark"`
	BulwarkStartAPI stats `json:"bulwark_start_api"`
	// Ratio and overhead of the medians (the headline) and of the means.
	RatioMedian       float64 `json:"ratio_median"`
	OverheadPctMedian float64 `json:"overhead_pct_median"`
	RatioMean         float64 `json:"ratio_mean"`
	OverheadPctMean   float64 `json:"overhead_pct_mean"`
	// Of the minimums: host noise only ever adds time, so on a busy host the
	// fastest boot of each kind is the least disturbed one.
	OverheadPctMin float64 `json:"overhead_pct_min"`
	// Median of the per-index differences bulwark - raw.
	PairedDiffMedianMS float64 `json:"paired_diff_median_ms"`

	RSS []rssReading `json:"daemon_rss"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r *result) summarize() {
	var raw, bw, api, diff []float64
	for _, x := range r.Runs {
		raw, bw, api = append(raw, x.RawMS), append(bw, x.BulwarkMS), append(api, x.BulwarkStartAPIMS)
		diff = append(diff, x.BulwarkMS-x.RawMS)
	}
	r.Raw, r.Bulwark, r.BulwarkStartAPI = summary(raw), summary(bw), summary(api)
	r.PairedDiffMedianMS = summary(diff).MedianMS
	if r.Raw.MedianMS > 0 {
		r.RatioMedian = r.Bulwark.MedianMS / r.Raw.MedianMS
		r.OverheadPctMedian = (r.RatioMedian - 1) * 100
	}
	if r.Raw.MeanMS > 0 {
		r.RatioMean = r.Bulwark.MeanMS / r.Raw.MeanMS
		r.OverheadPctMean = (r.RatioMean - 1) * 100
	}
	if r.Raw.MinMS > 0 {
		r.OverheadPctMin = (r.Bulwark.MinMS/r.Raw.MinMS - 1) * 100
	}
}

func summary(xs []float64) stats {
	d := benchrun.Summarize(xs)
	return stats{N: d.N, MedianMS: d.Median, MeanMS: d.Mean, MinMS: d.Min, MaxMS: d.Max, StdevMS: d.Stdev}
}

// booter is one kind of boot.
type booter interface {
	boot(ctx context.Context, name string) (sample, error)
}

// runBoots runs the warm-up boots, then cfg.n timed boots of each kind in
// rounds of cfg.parallel concurrent guests, alternating which kind goes
// first (raw,bulwark then bulwark,raw, ...) so drift and order effects fall
// on both kinds alike.
func runBoots(ctx context.Context, cfg config, raw *rawRunner, bw *bulwarkRunner, res *result) error {
	res.Machine.Load1Before = host.Loadavg()
	for i := range cfg.warmup {
		if err := step(fmt.Sprintf("warm-up boot %d (raw, then bulwark; untimed)", i+1), func() error {
			if _, err := raw.boot(ctx, fmt.Sprintf("warm-raw-%02d", i+1)); err != nil {
				return err
			}
			name := fmt.Sprintf("warm-bwk-%02d", i+1)
			if err := bw.d.create(ctx, bw.g, name); err != nil {
				return err
			}
			_, err := bw.boot(ctx, name)
			return err
		}); err != nil {
			return err
		}
	}
	defer func() { res.Machine.Load1After = host.Loadavg() }()
	p := cfg.parallel
	for round := 0; round*p < cfg.n; round++ {
		lo, hi := round*p, min(cfg.n, (round+1)*p)
		kinds := []string{"raw", "bulwark"}
		if round%2 == 1 {
			kinds[0], kinds[1] = kinds[1], kinds[0]
		}
		got := map[string][]sample{}
		for _, k := range kinds {
			settle(ctx)
			var b booter = raw
			prefix := "raw"
			if k == "bulwark" {
				b, prefix = bw, "bwk"
				for i := lo; i < hi; i++ {
					if err := bw.d.create(ctx, bw.g, fmt.Sprintf("%s-%02d", prefix, i+1)); err != nil {
						return err
					}
				}
			}
			ss, err := batch(ctx, b, prefix, lo, hi)
			if err != nil {
				return err
			}
			got[k] = ss
		}
		for j := range hi - lo {
			x := bootRun{Index: lo + j + 1, Round: round + 1, Order: kinds[0] + "→" + kinds[1],
				RawMS: ms(got["raw"][j].Total), BulwarkMS: ms(got["bulwark"][j].Total), BulwarkStartAPIMS: ms(got["bulwark"][j].StartAPI)}
			res.Runs = append(res.Runs, x)
			fmt.Fprintf(os.Stderr, "boot: #%d (%s): raw %.0f ms, bulwark %.0f ms (start API returned at %.1f ms)\n",
				x.Index, x.Order, x.RawMS, x.BulwarkMS, x.BulwarkStartAPIMS)
		}
	}
	return nil
}

// batch boots guests lo..hi-1 of one kind concurrently.
func batch(ctx context.Context, b booter, prefix string, lo, hi int) ([]sample, error) {
	out := make([]sample, hi-lo)
	errs := make([]error, hi-lo)
	var wg sync.WaitGroup
	for j := range hi - lo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[j], errs[j] = b.boot(ctx, fmt.Sprintf("%s-%02d", prefix, lo+j+1))
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// settle gives the previous boot's teardown (process exit, RAM file
// removal) a moment so it does not overlap the next timed boot.
func settle(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(300 * time.Millisecond):
	}
}

func machineInfo(qemuPath string) machine {
	return machine{NProc: runtime.NumCPU(), Go: runtime.Version(), TSCkHz: hv.HostTSCkHz(),
		CPUModel: host.CPUModel(), Kernel: host.Kernel(), QEMU: host.QEMU(qemuPath)}
}

func writeJSON(path string, r *result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// markdown renders the result as the tables docs/benchmarks.md uses.
func markdown(r *result) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	c, m := r.Config, r.Machine
	mode := "sequential"
	if c.Parallel > 1 {
		mode = fmt.Sprintf("%d at a time", c.Parallel)
	}
	p("\n## Boot to `%s`: Bulwark vs raw QEMU\n\n", c.Marker)
	p("- date: %s; bulwark built from %s\n", r.Date, r.Source)
	p("- machine: %d CPUs (%s), kernel %s, %s, %s\n", m.NProc, m.CPUModel, m.Kernel, m.QEMU, m.Go)
	p("- guests: %d vCPU, %d MiB, accel %s (%s), TSC %d kHz\n", c.VCPUs, c.MemoryMiB, c.Accel, c.AccelReason, m.TSCkHz)
	p("- runs: %d timed boots of each kind, %s, %d untimed warm-up of each, order alternating per round; load average before: %s, after: %s\n",
		c.N, mode, c.Warmup, m.Load1Before, m.Load1After)
	if c.Detect == "file" {
		p("- Bulwark side: ready line detected in the daemon's console log file (stat every 1 ms), not through the API\n")
	} else {
		p("- Bulwark side: ready line detected by polling `GET /api/v1/vms/NAME/console/log?bytes=4096` every %g ms\n", c.PollMS)
	}
	if c.RawUID >= 0 || c.ServeArgs != "" {
		p("- variations: raw QEMU uid %d (-1 = root); extra serve args %q\n", c.RawUID, c.ServeArgs)
	}
	p("\n")
	if len(r.Runs) > 0 {
		p("| # | order | raw QEMU (ms) | Bulwark (ms) | Bulwark − raw (ms) | Bulwark start API returned (ms) |\n")
		p("|---|---|---:|---:|---:|---:|\n")
		for _, x := range r.Runs {
			p("| %d | %s | %.0f | %.0f | %+.0f | %.1f |\n", x.Index, x.Order, x.RawMS, x.BulwarkMS, x.BulwarkMS-x.RawMS, x.BulwarkStartAPIMS)
		}
		p("\n| statistic | raw QEMU (ms) | Bulwark (ms) | Bulwark / raw |\n|---|---:|---:|---:|\n")
		row := func(name string, a, b float64) { p("| %s | %.0f | %.0f | %s |\n", name, a, b, ratio(b, a)) }
		row("median", r.Raw.MedianMS, r.Bulwark.MedianMS)
		row("mean", r.Raw.MeanMS, r.Bulwark.MeanMS)
		row("min", r.Raw.MinMS, r.Bulwark.MinMS)
		row("max", r.Raw.MaxMS, r.Bulwark.MaxMS)
		p("| stdev | %.0f | %.0f | |\n", r.Raw.StdevMS, r.Bulwark.StdevMS)
		verdict := "met"
		if r.OverheadPctMedian >= 10 {
			verdict = "not met"
		}
		p("\nBulwark overhead over raw QEMU (medians): **%+.1f%%** (ratio %.3f; target < 10%%: %s).\n", r.OverheadPctMedian, r.RatioMedian, verdict)
		p("Of the means: %+.1f%%. Of the minimums (the least disturbed boots): %+.1f%%. Median paired difference: %+.0f ms. Median time for POST start to return: %.1f ms.\n",
			r.OverheadPctMean, r.OverheadPctMin, r.PairedDiffMedianMS, r.BulwarkStartAPI.MedianMS)
	}
	if len(r.RSS) > 0 {
		p("\n## Daemon memory (VmRSS of `bulwark serve`)\n\n| state | VmRSS (MiB) |\n|---|---:|\n")
		for _, x := range r.RSS {
			p("| %s | %.1f |\n", x.State, x.MiB)
		}
	}
	return b.String()
}

func ratio(b, a float64) string {
	if a <= 0 || b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f", b/a)
}
