package api

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/attest"
)

// scanState keeps the outcome of the latest introspection scan of each VM
// run, for the attestation report: a verifier's per-VM verdict covers the
// running kernel as introspection last saw it.
type scanState struct {
	mu   sync.Mutex
	last map[string]scanEntry // vm name → latest scan
}

type scanEntry struct {
	pid   int
	start uint64 // the VM run the scan saw (PID and its start time)
	res   attest.Introspection
}

// maxScanFindings bounds the findings kept per VM: a guest can make a scan
// report many hidden processes.
const maxScanFindings = 64

func (s *scanState) record(name string, pid int, start uint64, res attest.Introspection) {
	if len(res.Findings) > maxScanFindings {
		n := len(res.Findings) - maxScanFindings
		res.Findings = append(res.Findings[:maxScanFindings:maxScanFindings],
			attest.Finding{Kind: "truncated", Summary: "and " + strconv.Itoa(n) + " more findings"})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = map[string]scanEntry{}
	}
	s.last[name] = scanEntry{pid: pid, start: start, res: res}
}

// recordScan notes a scan's outcome (rep or err) for the VM's current run.
func (s *Server) recordScan(ctx context.Context, name string, rep *ScanReport, err error) {
	v, gerr := s.mgr.Get(ctx, name)
	if gerr != nil || v.Runtime.PID == 0 {
		return
	}
	var res attest.Introspection
	if err != nil {
		res.Error = err.Error()
	} else {
		res.Checked = rep.Time
		for _, f := range rep.Findings {
			res.Findings = append(res.Findings, attest.Finding{Kind: f.Kind, Summary: f.Summary})
		}
	}
	if res.Checked.IsZero() {
		res.Checked = time.Now().UTC()
	}
	s.scans.record(name, v.Runtime.PID, v.Runtime.StartTime, res)
}

// LatestScan returns the latest scan of the VM run identified by pid and
// start, if there was one.
func (s *Server) LatestScan(name string, pid int, start uint64) (attest.Introspection, bool) {
	s.scans.mu.Lock()
	defer s.scans.mu.Unlock()
	e, ok := s.scans.last[name]
	if !ok || e.pid != pid || e.start != start {
		return attest.Introspection{}, false
	}
	return e.res, true
}
