package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
)

// The goals for the noisy-neighbour experiment.
const (
	goalVictimShare    = 0.9 // of its reservation, beside the limited attacker
	goalAttackerErrPct = 5.0 // attacker's CPU within 5 % of its pool's limit
)

type machine struct {
	NProc         int    `json:"nproc"`
	CPUModel      string `json:"cpu_model"`
	Kernel        string `json:"kernel"`
	QEMU          string `json:"qemu"`
	Go            string `json:"go"`
	LoadavgBefore string `json:"loadavg_before"`
	LoadavgAfter  string `json:"loadavg_after"`
}

type resultConfig struct {
	PhaseS           float64 `json:"phase_s"`
	WarmupS          float64 `json:"warmup_s"`
	ReservationMilli int64   `json:"victim_reservation_millicores"`
	AttackerVCPUs    int     `json:"attacker_vcpus"`
	LimitMilli       int64   `json:"noisy_limit_millicores"`
	Chunk            int     `json:"chunk"`
	MemoryMiB        int     `json:"memory_mib"`
	// RootCapacityMilli is the root pool's CPU (the host's less its
	// reserve); AttackerOwnLimitMilli the attacker's own limit in phase 2
	// (see runPhases).
	RootCapacityMilli     int64 `json:"root_capacity_millicores"`
	AttackerOwnLimitMilli int64 `json:"attacker_own_limit_millicores"`
	// BaseShares is -base-shares (0: the kernel's default was kept).
	BaseShares int64 `json:"base_shares,omitempty"`
}

type result struct {
	Date    string       `json:"date"`
	Source  string       `json:"source"`
	Machine machine      `json:"machine"`
	Config  resultConfig `json:"config"`
	Phases  []phase      `json:"phases"`
	// Goals, filled by summarize when phase 3 ran.
	VictimShareMet  *bool `json:"victim_share_met,omitempty"`
	AttackerLimitOK *bool `json:"attacker_within_limit,omitempty"`
}

// summarize fills the ratios and the goals.
func (r *result) summarize() {
	if len(r.Phases) == 0 {
		return
	}
	base := r.Phases[0]
	for i := range r.Phases {
		p := &r.Phases[i]
		p.IPSRatio = ratio(p.VictimIPS, base.VictimIPS)
		p.CPURatio = ratio(p.VictimMilli, base.VictimMilli)
		p.ShareOfReservation = ratio(p.VictimMilli, float64(r.Config.ReservationMilli))
		if p.AttackerLimitMilli > 0 {
			p.AttackerVsLimit = ratio(p.AttackerMilli, float64(p.AttackerLimitMilli))
		}
	}
	if len(r.Phases) == 3 {
		p := r.Phases[2]
		share := p.ShareOfReservation >= goalVictimShare
		lim := math.Abs(p.AttackerVsLimit-1)*100 <= goalAttackerErrPct
		r.VictimShareMet, r.AttackerLimitOK = &share, &lim
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func yesNo(b *bool) string {
	switch {
	case b == nil:
		return "not measured"
	case *b:
		return "met"
	default:
		return "not met"
	}
}

func markdown(r *result) string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "## Noisy neighbour (bench/pools)\n\n")
	fmt.Fprintf(&b, "%s, %s; %d CPUs (%s), kernel %s, %s, %s; load average %s before, %s after.\n\n",
		r.Date, r.Source, r.Machine.NProc, r.Machine.CPUModel, r.Machine.Kernel, r.Machine.QEMU, r.Machine.Go,
		r.Machine.LoadavgBefore, r.Machine.LoadavgAfter)
	fmt.Fprintf(&b, "Victim: 1 vCPU, CPU reservation %dm, normal shares, a shell loop counting in chunks of %d. "+
		"Attacker: %d vCPUs spinning, normal shares, its own limit %dm (the root pool, which caps all VMs together, has %dm); "+
		"in phase 3 moved live into pool %q with a CPU limit of %dm (its own limit lowered to match). "+
		"Each phase: %.0fs warm-up, %.0fs measured. CPU from the VMs' cgroup accounting; the rest of the host from /proc/stat.\n\n",
		c.ReservationMilli, c.Chunk, c.AttackerVCPUs, c.AttackerOwnLimitMilli, c.RootCapacityMilli, noisyPool, c.LimitMilli, c.WarmupS, c.PhaseS)
	if c.BaseShares != 0 {
		fmt.Fprintf(&b, "The daemon's cgroup base had cpu.shares %d against the rest of the host (-base-shares).\n\n", c.BaseShares)
	} else {
		fmt.Fprintf(&b, "The daemon's cgroup base kept the kernel's default weight against the rest of the host.\n\n")
	}
	fmt.Fprintln(&b, "| phase | victim loop (iterations/s) | × phase 1 | victim CPU | × phase 1 | of its reservation | victim CPU per-second min–max | attacker CPU | rest of the host |")
	fmt.Fprintln(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, p := range r.Phases {
		att := "–"
		if p.AttackerPool != "" {
			att = fmt.Sprintf("%.0fm", p.AttackerMilli)
			if p.AttackerLimitMilli > 0 {
				att += fmt.Sprintf(" (limit %dm: ×%.3f)", p.AttackerLimitMilli, p.AttackerVsLimit)
			}
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.2f | %.0fm | %.2f | %.2f | %.0f–%.0fm | %s | %.0fm |\n",
			p.Name, p.VictimIPS, p.IPSRatio, p.VictimMilli, p.CPURatio, p.ShareOfReservation,
			p.VictimMilliSamples.Min, p.VictimMilliSamples.Max, att, p.OtherMilli)
	}
	fmt.Fprintf(&b, "\nGoals (issue 14), phase 3: victim keeps ≥ %.1f of its reserved CPU: %s; attacker within %.0f %% of its limit: %s.\n",
		goalVictimShare, yesNo(r.VictimShareMet), goalAttackerErrPct, yesNo(r.AttackerLimitOK))
	return b.String()
}

func writeJSON(path string, r *result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
