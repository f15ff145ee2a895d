package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/measure"
	"github.com/bulwark-project/bulwark/internal/measure/textcheck"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Runtime integrity defaults and limits.
const (
	// maxReportNotes bounds the notes per process in the report.
	maxReportNotes = 8
	// DefaultRuntimeCheckInterval is the mean time between checks.
	DefaultRuntimeCheckInterval = time.Minute
	// runtimeFirstCheck is the mean delay of the first check after start:
	// soon, but after Recover has re-attached running VMs.
	runtimeFirstCheck = 5 * time.Second
	// maxRecordedFindings bounds the distinct findings extended into
	// PCR 13 in one daemon run. Past it, a finding is logged but not
	// extended: PCR 13 already says the host is not intact, and a process
	// that rewrites its code in a loop must not grow the event log without
	// bound.
	maxRecordedFindings = 1024
)

// vmLister is what the checker needs of the manager.
type vmLister interface {
	List(ctx context.Context) ([]*vm.VM, error)
}

// runtimeRecorder records a finding in PCR 13 (*measure.Measurer).
type runtimeRecorder interface {
	RecordRuntimeMismatch(rc attest.RuntimeCheck) error
}

// RuntimeChecker re-measures, at randomised intervals, the code of the
// daemon and of every running VM's QEMU against the files on disk
// (internal/measure/textcheck). A mismatch is logged, recorded once per
// distinct finding in PCR 13, and kept for the attestation report. It is
// safe for concurrent use.
type RuntimeChecker struct {
	chk      *textcheck.Checker
	self     *os.File // the daemon's binary, opened at start through /proc/self/exe
	selfPath string
	qemu     string // the QEMU binary as configured (resolved per round)
	vms      vmLister
	rec      runtimeRecorder // nil: nothing to extend
	log      *slog.Logger
	interval time.Duration // mean; 0 disables the loop
	rand     func(n int64) int64

	round sync.Mutex // one round at a time

	mu       sync.Mutex
	latest   []attest.RuntimeCheck
	recorded map[[32]byte]bool

	stop context.CancelFunc
	done chan struct{}
}

// newRuntimeChecker opens the daemon's own binary and prepares the
// checker; meas may be nil.
func newRuntimeChecker(qemu string, interval time.Duration, vms vmLister, meas *measure.Measurer, log *slog.Logger) (*RuntimeChecker, error) {
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("runtime integrity: own binary: %w", err)
	}
	path, err := os.Readlink("/proc/self/exe")
	if err != nil {
		path = "/proc/self/exe"
	}
	r := &RuntimeChecker{chk: textcheck.NewChecker(), self: self, selfPath: path, qemu: qemu, vms: vms,
		log: log, interval: interval, rand: rand.Int64N, recorded: map[[32]byte]bool{}}
	if meas != nil {
		r.rec = meas
	}
	return r, nil
}

// startRuntimeChecker builds the checker and starts its loop (none when
// the interval is 0). Stop ends it.
func startRuntimeChecker(ctx context.Context, cfg Config, vms vmLister, meas *measure.Measurer, log *slog.Logger) (*RuntimeChecker, error) {
	r, err := newRuntimeChecker(cfg.QEMU, cfg.RuntimeCheckInterval, vms, meas, log)
	if err != nil {
		return nil, err
	}
	r.Start(ctx)
	return r, nil
}

// Start runs the loop until ctx ends or Stop is called.
func (r *RuntimeChecker) Start(ctx context.Context) {
	ctx, r.stop = context.WithCancel(ctx)
	r.done = make(chan struct{})
	if r.interval <= 0 {
		r.log.Warn("runtime integrity checks are OFF (--runtime-check-interval 0): the daemon's and QEMU's code are not re-measured")
		close(r.done)
		return
	}
	go func() {
		defer close(r.done)
		t := time.NewTimer(jitter(min(runtimeFirstCheck, r.interval), r.rand))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			r.CheckNow(ctx)
			t.Reset(jitter(r.interval, r.rand))
		}
	}()
}

// Stop ends the loop and closes the daemon's binary.
func (r *RuntimeChecker) Stop() {
	if r.stop != nil {
		r.stop()
		<-r.done
	}
	r.self.Close()
}

// jitter draws a delay uniformly from [mean/2, 3·mean/2): a process that
// wants to restore its code between checks cannot know when the next one
// comes.
func jitter(mean time.Duration, rnd func(n int64) int64) time.Duration {
	if mean <= 1 {
		return mean
	}
	return mean/2 + time.Duration(rnd(int64(mean)))
}

// Latest returns the latest check of each process (the daemon first, then
// VMs by name), as the attestation report carries them.
func (r *RuntimeChecker) Latest() []attest.RuntimeCheck {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]attest.RuntimeCheck(nil), r.latest...)
}

// CheckNow checks the daemon and every running VM's QEMU now, handles the
// findings and returns the checks (which also become Latest).
func (r *RuntimeChecker) CheckNow(ctx context.Context) []attest.RuntimeCheck {
	r.round.Lock()
	defer r.round.Unlock()
	targets := []textcheck.Target{{Process: "daemon", PID: os.Getpid(), Binary: r.selfPath, File: r.self}}
	vms, err := r.vms.List(ctx)
	if err != nil {
		r.log.Warn("runtime integrity: cannot list VMs", "err", err)
	}
	qemu, qerr := resolveQEMU(r.qemu)
	for _, v := range vms {
		if v.State != vm.Running || v.Runtime.PID <= 0 {
			continue
		}
		targets = append(targets, textcheck.Target{Process: "qemu", VM: v.Spec.Name, PID: v.Runtime.PID,
			StartTime: v.Runtime.StartTime, Binary: qemu})
	}
	var out []attest.RuntimeCheck
	for _, t := range targets {
		if ctx.Err() != nil {
			break
		}
		var res textcheck.Result
		if t.Process == "qemu" && qerr != nil {
			res.RuntimeCheck = attest.RuntimeCheck{Process: t.Process, VM: t.VM, PID: t.PID, Binary: r.qemu,
				Checked: time.Now().UTC(), Error: qerr.Error()}
		} else {
			res, err = r.chk.Check(t)
			if errors.Is(err, textcheck.ErrProcessGone) && t.Process == "qemu" {
				// The VM stopped since the list: nothing runs to report.
				r.log.Debug("runtime integrity: VM stopped during the check", "vm", t.VM, "err", err)
				continue
			}
		}
		r.handle(res)
		rc := res.RuntimeCheck
		rc.Omitted = res.Omitted
		for i, n := range res.Notes {
			if i == maxReportNotes {
				rc.Notes = append(rc.Notes, fmt.Sprintf("and %d more", len(res.Notes)-i))
				break
			}
			rc.Notes = append(rc.Notes, fmt.Sprintf("%s %x-%x %s %s", n.Kind, n.Start, n.End, n.Perms, n.Name))
		}
		out = append(out, rc)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Process == "daemon") != (out[j].Process == "daemon") {
			return out[i].Process == "daemon"
		}
		return out[i].VM < out[j].VM
	})
	r.mu.Lock()
	r.latest = out
	r.mu.Unlock()
	return append([]attest.RuntimeCheck(nil), out...)
}

// resolveQEMU finds the binary the backend runs (the same lookup).
func resolveQEMU(name string) (string, error) {
	bin, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("QEMU binary %s: %w", name, err)
	}
	return filepath.Abs(bin)
}

// handle logs one check and records a new finding in PCR 13.
func (r *RuntimeChecker) handle(res textcheck.Result) {
	rc := res.RuntimeCheck
	subject := []any{"process", rc.Process, "pid", rc.PID}
	if rc.VM != "" {
		subject = append(subject, "vm", rc.VM)
	}
	for _, n := range res.Notes {
		r.log.Debug("runtime integrity: executable memory not backed by a file", append(subject, "kind", n.Kind,
			"range", fmt.Sprintf("%#x-%#x", n.Start, n.End), "perms", n.Perms, "name", n.Name)...)
	}
	switch {
	case rc.Error != "":
		r.log.Warn("runtime integrity: check failed", append(subject, "binary", rc.Binary, "err", rc.Error)...)
		return
	case len(rc.Mismatches) == 0:
		r.log.Debug("runtime integrity: code intact", append(subject, "binary", rc.Binary, "bytes", rc.Bytes, "objects", res.Objects)...)
		return
	}
	m := rc.Mismatches[0]
	r.log.Error("RUNTIME INTEGRITY: running code differs from the file on disk", append(subject,
		"reason", mismatchReason(m), "binary", rc.Binary, "object", m.Object, "offset", fmt.Sprintf("%#x", m.Offset),
		"length", m.Length, "symbol", m.Symbol, "expected", m.Expected, "found", m.Found,
		"mismatches", res.Total())...)
	d, _, _ := measure.RuntimeMismatchEvent(rc)
	if !r.firstSighting(d) || r.rec == nil {
		return
	}
	if err := r.rec.RecordRuntimeMismatch(rc); err != nil {
		r.log.Error("runtime integrity: finding NOT recorded in PCR 13", append(subject, "err", err)...)
	}
}

// firstSighting reports whether digest is a finding not recorded before
// in this daemon run (and remembers it), within maxRecordedFindings.
func (r *RuntimeChecker) firstSighting(digest [32]byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.recorded[digest] {
		return false
	}
	if len(r.recorded) >= maxRecordedFindings {
		r.log.Error("runtime integrity: too many distinct findings; this one is logged but not extended into PCR 13", "limit", maxRecordedFindings)
		return false
	}
	r.recorded[digest] = true
	return true
}

// mismatchReason names a mismatch for the log.
func mismatchReason(m attest.TextMismatch) string {
	if m.Length == 0 {
		return "identity: " + m.Symbol
	}
	return "code bytes differ"
}
