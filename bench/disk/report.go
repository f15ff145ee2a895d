package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/benchrun"
	"github.com/bulwark-project/bulwark/bench/internal/host"

	"github.com/bulwark-project/bulwark/internal/hv"
)

type result struct {
	Date    string   `json:"date"`
	Source  string   `json:"source"`
	Command string   `json:"command"`
	Machine machine  `json:"machine"`
	Accel   string   `json:"accel"`
	Reason  string   `json:"accel_reason"`
	SizeMiB int      `json:"size_mib"`
	N       int      `json:"n"`
	MemMiB  int      `json:"memory_mib"`
	VCPUs   int      `json:"vcpus"`
	FS      string   `json:"fs"`
	Pool    string   `json:"pool"`
	Samples []sample `json:"samples"`
	// Clock compares the guest's clock with the host's over each boot's
	// script (start line to done line; the host's side is seen by polling
	// the console log every 50 ms).
	Clock []clockCheck `json:"clock"`
	Rows  []row        `json:"rows"`
}

type machine struct {
	NProc    int    `json:"nproc"`
	CPUModel string `json:"cpu_model"`
	Kernel   string `json:"kernel"`
	QEMU     string `json:"qemu"`
	Go       string `json:"go"`
	// Load averages (1, 5, 15 min) when the run started and ended: the
	// host may be shared.
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
}

type clockCheck struct {
	Boot         int     `json:"boot"`
	GuestSeconds float64 `json:"guest_seconds"`
	HostSeconds  float64 `json:"host_seconds"`
}

// row is one op's throughput per case, in MB/s (10^6 bytes per second).
type row struct {
	Op    string                   `json:"op"`
	Cases map[string]benchrun.Dist `json:"mb_per_s"`
}

// opWriteFirst is rep 0's write, reported apart: it allocates.
const opWriteFirst = "write-first"

func newResult(cfg config, accel hv.Accel) *result {
	return &result{Date: time.Now().UTC().Format(time.RFC3339), Source: "prebuilt " + cfg.bin,
		Command: "go run ./bench/disk " + strings.Join(osArgs(), " "),
		Machine: machine{NProc: runtime.NumCPU(), CPUModel: host.CPUModel(), Kernel: host.Kernel(),
			QEMU: host.QEMU("qemu-system-x86_64"), Go: runtime.Version(), LoadBefore: host.Loadavg()},
		Accel: accel.Name, Reason: accel.Reason, SizeMiB: cfg.sizeMiB, N: cfg.n, MemMiB: cfg.memMiB, VCPUs: cfg.vcpus}
}

func (r *result) add(s sample) {
	if s.Op == opWrite && s.Boot == 0 {
		s.Op = opWriteFirst
	}
	r.Samples = append(r.Samples, s)
}

func (r *result) mbps(s sample) float64 { return float64(r.SizeMiB) * (1 << 20) / 1e6 / s.Seconds }

func (r *result) summarize() {
	r.Machine.LoadAfter = host.Loadavg()
	r.Rows = nil
	for _, op := range []string{opWriteFirst, opWrite, opReadCold, opReadWarm} {
		rw := row{Op: op, Cases: map[string]benchrun.Dist{}}
		for _, c := range []string{caseHost, caseRaw, caseQcow2} {
			var xs []float64
			for _, s := range r.Samples {
				if s.Op == op && s.Case == c {
					xs = append(xs, r.mbps(s))
				}
			}
			if len(xs) > 0 {
				rw.Cases[c] = benchrun.Summarize(xs)
			}
		}
		if len(rw.Cases) > 0 {
			r.Rows = append(r.Rows, rw)
		}
	}
}

var opTitle = map[string]string{
	opWriteFirst: "write, first (allocates)",
	opWrite:      "write (rewrite)",
	opReadCold:   "read, caches dropped",
	opReadWarm:   "read, host cache warm",
}

func (r *result) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	m := r.Machine
	p("\n### Disk throughput in the guest vs the host (MB/s = 10^6 B/s)\n\n")
	p("- date: %s; bulwark built from %s\n", r.Date, r.Source)
	p("- command: `%s`\n", r.Command)
	p("- machine: %d CPUs (%s), kernel %s, %s, %s; load average %s before, %s after\n", m.NProc, m.CPUModel, m.Kernel, m.QEMU, m.Go, m.LoadBefore, m.LoadAfter)
	p("- guest: %d vCPU, %d MiB, accel %s (%s); pool and peer file on %s (%s)\n", r.VCPUs, r.MemMiB, r.Accel, r.Reason, r.FS, r.Pool)
	p("- each dd moves %d MiB, bs=1M; n = %d (write-first: 1); write `%s`, read `%s`\n\n", r.SizeMiB, r.N, ddWrite("T", r.SizeMiB), ddRead("T", r.SizeMiB))
	if r.Accel == "tcg" {
		p("Under TCG every guest instruction is emulated: the guest figures are low and measure QEMU's emulation as much as the I/O path.\n\n")
	}
	p("| op | host median | host min | raw median | raw min | qcow2 median | qcow2 min | raw / host | qcow2 / host | qcow2 / raw |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, rw := range r.Rows {
		h, raw, q := rw.Cases[caseHost], rw.Cases[caseRaw], rw.Cases[caseQcow2]
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", opTitle[rw.Op],
			num(h.Median), num(h.Min), num(raw.Median), num(raw.Min), num(q.Median), num(q.Min),
			ratio(raw.Median, h.Median), ratio(q.Median, h.Median), ratio(q.Median, raw.Median))
	}
	p("\n(read, host cache warm: guest only, so its ratios to the host's cold read are left out.)\n")
	var g, hs float64
	for _, c := range r.Clock {
		if c.HostSeconds > 0 {
			g += c.GuestSeconds
			hs += c.HostSeconds
		}
	}
	if hs > 0 {
		p("\nGuest clock over the scripts: %.2f s against %.2f s on the host (×%.3f; the host's side is ±50 ms per boot from polling).\n", g, hs, g/hs)
	}
	return b.String()
}

func num(x float64) string {
	if x == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", x)
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}
