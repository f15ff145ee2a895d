package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/internal/api"
	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/manager"
	"github.com/bulwark-project/bulwark/internal/measure"
	"github.com/bulwark-project/bulwark/internal/tpm"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// quoter is the TPM side of remote attestation (tpm.Attester).
type quoter interface {
	Keys() (attest.Keys, error)
	Activate(attest.Challenge) ([]byte, error)
	// Quote signs the given PCRs' SHA-256 values and extraData with the AK
	// and returns the values it read in the same TPM session.
	Quote(extraData []byte, pcrs []int) (quote, sig []byte, vals map[int][32]byte, err error)
}

// maxVerdictFile bounds the persisted verdict read back at start.
const maxVerdictFile = 1 << 20

// verdictFile is the latest verdict, kept across daemon restarts so that an
// untrusted host stays refused until a verifier says otherwise.
const verdictFile = "verdict.json"

// attestAgent is the daemon's remote-attestation agent: it answers a
// verifier's quote requests with evidence (quote, PCRs, event log and a
// report bound into the quote) and records the verdicts the verifier
// pushes; with enforce on, an untrusted verdict stops VM starts.
type attestAgent struct {
	host    string
	m       *measure.Measurer
	q       quoter // nil when the TPM cannot quote (no-TPM mode)
	qerr    error  // why q is nil
	runtime func() []attest.RuntimeCheck
	vms     func(ctx context.Context) []attest.VMReport
	enforce bool
	dir     string
	log     *slog.Logger

	quoteSem chan struct{} // one quote at a time

	mu       sync.Mutex
	verdict  *attest.Verdict
	received time.Time
	from     string
}

type storedVerdict struct {
	Verdict  attest.Verdict `json:"verdict"`
	Received time.Time      `json:"received"`
	From     string         `json:"from"`
}

// init prepares a filled-in agent: its directory and the stored verdict.
func (ag *attestAgent) init() error {
	ag.quoteSem = make(chan struct{}, 1)
	if err := os.MkdirAll(ag.dir, 0o700); err != nil {
		return fmt.Errorf("attestation: %w", err)
	}
	raw, err := readRootFile(filepath.Join(ag.dir, verdictFile), maxVerdictFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("attestation: read stored verdict: %w", err)
	default:
		var sv storedVerdict
		if err := json.Unmarshal(raw, &sv); err != nil {
			// Fail closed: a damaged verdict file reads as untrusted
			// until a verifier pushes a new verdict.
			ag.log.Error("attestation: stored verdict unreadable; treating the host as untrusted until a verifier reports", "file", filepath.Join(ag.dir, verdictFile), "err", err)
			sv = storedVerdict{Verdict: attest.Verdict{Status: attest.Untrusted, Reasons: []attest.Reason{{Component: "verdict-file", Message: "stored verdict unreadable: " + err.Error()}}}, Received: time.Now().UTC(), From: "daemon"}
		}
		ag.verdict, ag.received, ag.from = &sv.Verdict, sv.Received, sv.From
	}
	return nil
}

// readRootFile reads a file in a root-only directory, refusing symlinks
// and anything over max bytes.
func readRootFile(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > max {
		return nil, fmt.Errorf("%s: not a regular file of at most %d bytes", path, max)
	}
	buf := make([]byte, fi.Size())
	_, err = f.ReadAt(buf, 0)
	return buf, err
}

func (a *attestAgent) Keys() (attest.Keys, error) {
	if a.q == nil {
		return attest.Keys{}, a.qerr
	}
	return a.q.Keys()
}

func (a *attestAgent) Activate(ch attest.Challenge) ([]byte, error) {
	if a.q == nil {
		return nil, a.qerr
	}
	secret, err := a.q.Activate(ch)
	if err != nil {
		a.log.Warn("attestation: credential activation failed", "err", err)
	} else {
		a.log.Info("attestation: credential activated for a verifier")
	}
	return secret, err
}

// Quote builds the report, binds it and the nonce into a TPM quote, and
// reads PCRs and the event log under the measurement lock, so that the
// three agree.
func (a *attestAgent) Quote(ctx context.Context, nonce []byte) (attest.Evidence, error) {
	if a.q == nil {
		return attest.Evidence{}, a.qerr
	}
	select {
	case a.quoteSem <- struct{}{}:
		defer func() { <-a.quoteSem }()
	case <-ctx.Done():
		return attest.Evidence{}, ctx.Err()
	}
	rep := attest.Report{Host: a.host, Time: time.Now().UTC(), Runtime: a.runtime(), VMs: a.vms(ctx)}
	repJSON, err := json.Marshal(rep)
	if err != nil {
		return attest.Evidence{}, err
	}
	ev := attest.Evidence{Report: repJSON, PCRs: map[int][]byte{}}
	err = a.m.Snapshot(func(log []byte) error {
		q, sig, vals, err := a.q.Quote(attest.QuoteData(nonce, repJSON), attest.QuotedPCRs)
		if err != nil {
			return err
		}
		ev.Quote, ev.Signature, ev.EventLog = q, sig, log
		for i, v := range vals {
			ev.PCRs[i] = v[:]
		}
		return nil
	})
	if err != nil {
		return attest.Evidence{}, fmt.Errorf("attestation: quote: %w", err)
	}
	return ev, nil
}

func (a *attestAgent) SetVerdict(v attest.Verdict, who string) error {
	now := time.Now().UTC()
	sv := storedVerdict{Verdict: v, Received: now, From: who}
	data, err := json.Marshal(sv)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(a.dir, verdictFile), data); err != nil {
		return fmt.Errorf("attestation: store verdict: %w", err)
	}
	a.mu.Lock()
	prev := a.verdict
	a.verdict, a.received, a.from = &v, now, who
	a.mu.Unlock()
	attrs := []any{"status", v.Status, "verifier", who, "policy_version", v.PolicyVersion, "reasons", summarizeReasons(v.Reasons, 5)}
	switch {
	case v.Status == attest.Untrusted:
		a.log.Error("attestation: verifier marked this host UNTRUSTED", attrs...)
	case prev == nil || prev.Status != v.Status:
		a.log.Info("attestation: verdict", attrs...)
	}
	for _, vv := range v.VMs {
		if vv.Status == attest.Untrusted {
			a.log.Warn("attestation: verifier marked a VM untrusted", "vm", vv.Name, "reasons", summarizeReasons(vv.Reasons, 5))
		}
	}
	return nil
}

// summarizeReasons is reasons as one line for a log record.
func summarizeReasons(rs []attest.Reason, max int) string {
	var parts []string
	for i, r := range rs {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(rs)-max))
			break
		}
		s := r.Component + ": " + r.Message
		if r.VM != "" {
			s = "vm " + r.VM + " " + s
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func (a *attestAgent) AgentStatus(ctx context.Context) api.AgentStatus {
	info := tpm.InfoOf(a.m.TPM())
	st := api.AgentStatus{TPM: info.String(), HardwareRooted: info.HardwareRooted(), Quotes: a.q != nil,
		Enforce: a.enforce, Runtime: a.runtime()}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.verdict != nil {
		v, t := *a.verdict, a.received
		st.Verdict, st.VerdictReceived, st.VerdictFrom = &v, &t, a.from
	}
	return st
}

// allowStart is the manager's start gate: with enforce on, no VM starts
// while the latest verdict says the host is untrusted.
func (a *attestAgent) allowStart(name string) error {
	if !a.enforce {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.verdict == nil || a.verdict.Status != attest.Untrusted {
		return nil
	}
	err := fmt.Errorf("%w: verifier %s marked this host untrusted at %s (policy version %d): %s",
		attest.ErrHostUntrusted, a.from, a.received.Format(time.RFC3339), a.verdict.PolicyVersion, summarizeReasons(a.verdict.Reasons, 3))
	a.log.Warn("vm start refused: host untrusted", "vm", name, "reason", err)
	return err
}

// vmReports lists the VMs for a report, with the latest introspection scan
// of each running VM's current run.
func vmReports(mgr *manager.Manager, srv *api.Server) func(ctx context.Context) []attest.VMReport {
	return func(ctx context.Context) []attest.VMReport {
		vms, err := mgr.List(ctx)
		if err != nil {
			return nil
		}
		out := make([]attest.VMReport, 0, len(vms))
		for _, v := range vms {
			r := attest.VMReport{Name: v.Spec.Name, Running: v.State == vm.Running}
			if r.Running {
				if in, ok := srv.LatestScan(v.Spec.Name, v.Runtime.PID, v.Runtime.StartTime); ok {
					r.Introspection = &in
				}
			}
			out = append(out, r)
		}
		return out
	}
}

// writeFileAtomic writes data to path (0600) through a temporary file in
// the same root-only directory and a rename.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// startAttestAgent readies remote attestation: with a TPM, the AK (kept in
// STATE/attest/ak.blob) and quotes; in the no-TPM mode the agent still
// reports status, and quote requests fail with a clear error. VM starts
// pass its gate from here on.
func startAttestAgent(cfg Config, meas *measure.Measurer, mgr *manager.Manager, srv *api.Server,
	runtime func() []attest.RuntimeCheck, log *slog.Logger) (func(), error) {
	host, _ := os.Hostname()
	dir := filepath.Join(cfg.StateDir, "attest")
	ag := &attestAgent{host: host, m: meas, runtime: runtime, vms: vmReports(mgr, srv),
		enforce: !cfg.AttestNoEnforce, dir: dir, log: log}
	if err := ag.init(); err != nil {
		return nil, err
	}
	closer := func() {}
	info := tpm.InfoOf(meas.TPM())
	if info.Kind == tpm.KindNone {
		ag.qerr = fmt.Errorf("this daemon runs without a TPM (%w): start it with --tpm device or --tpm swtpm:SOCKET to answer quotes", tpm.ErrNoTPM)
		log.Warn("remote attestation: no TPM, so no quotes: a verifier can only report this host as unknown")
	} else {
		att, status, err := tpm.NewAttester(meas.TPM(), filepath.Join(dir, "ak.blob"), log)
		if err != nil {
			return nil, fmt.Errorf("remote attestation: %w", err)
		}
		closer = func() { att.Close() }
		ag.q = att
		if status.MustRegister() {
			log.Warn("remote attestation: attestation key "+status.String()+": register this host with the verifier (again) before its quotes verify", "tpm", info.String())
		} else {
			log.Info("remote attestation: attestation key loaded", "tpm", info.String())
		}
	}
	srv.SetAgent(ag)
	mgr.SetStartGate(ag.allowStart)
	if ag.verdict != nil && ag.verdict.Status == attest.Untrusted && ag.enforce {
		log.Error("remote attestation: the stored verdict says this host is UNTRUSTED: VM starts are refused until a verifier reports it trusted",
			"since", ag.received, "reasons", summarizeReasons(ag.verdict.Reasons, 3))
	}
	return closer, nil
}
