package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/consolelog"
	"github.com/bulwark-project/bulwark/internal/manager"
	"github.com/bulwark-project/bulwark/internal/vmi/lime"
	"github.com/bulwark-project/bulwark/internal/vmi/mem"
)

// Introspector runs an introspection operation on a VM in the monitor
// process (monitor.Gateway).
type Introspector interface {
	Query(ctx context.Context, vm, op string, out any) error
}

// MonitorEvent is a monitoring event: one finding of a scan.
type MonitorEvent struct {
	Time     time.Time      `json:"time"`
	VM       string         `json:"vm"`
	Kind     string         `json:"kind"`
	Summary  string         `json:"summary"`
	Evidence map[string]any `json:"evidence,omitempty"`
	Scan     string         `json:"scan"` // periodic or on-demand
}

// Events records monitoring events (a rotating JSON-lines log) and keeps
// each VM's last findings so that a finding is raised once, when it
// appears.
type Events struct {
	Path string
	mu   sync.Mutex
	w    io.Writer
	last map[string]map[string]bool // vm → finding keys
}

// NewEvents appends events to w; path is the same log for reading.
func NewEvents(w io.Writer, path string) *Events {
	return &Events{Path: path, w: w, last: map[string]map[string]bool{}}
}

// Report records the findings of one scan and returns the new ones.
func (e *Events) Report(vm, scan string, r *ScanReport) []MonitorEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := map[string]bool{}
	var out []MonitorEvent
	for _, f := range r.Findings {
		key := f.Kind + "\x00" + f.Summary
		seen[key] = true
		if e.last[vm][key] {
			continue
		}
		ev := MonitorEvent{Time: r.Time, VM: vm, Kind: f.Kind, Summary: f.Summary, Evidence: f.Evidence, Scan: scan}
		b, _ := json.Marshal(ev)
		e.w.Write(append(b, '\n'))
		out = append(out, ev)
	}
	e.last[vm] = seen
	return out
}

// Record appends one event that is not a scan's finding (an IPS alert's
// notice, for instance).
func (e *Events) Record(ev MonitorEvent) {
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.w.Write(append(b, '\n'))
}

// ScanFinding is one finding of a scan.
type ScanFinding struct {
	Kind     string         `json:"kind"`
	Summary  string         `json:"summary"`
	Evidence map[string]any `json:"evidence,omitempty"`
}

// ScanReport mirrors the monitor's check report.
type ScanReport struct {
	Time     time.Time      `json:"time"`
	Millis   float64        `json:"millis"`
	Findings []ScanFinding  `json:"findings"`
	Scanned  map[string]int `json:"scanned"`
	// TextBaseline says what kernel text is compared with: "image" (the
	// booted kernel image, relocated) or "first-attach" (hashes taken when
	// the monitor first looked), with the reason for the fallback.
	TextBaseline       string `json:"text_baseline,omitempty"`
	TextBaselineReason string `json:"text_baseline_reason,omitempty"`
	// New lists the findings raised as events by this scan.
	New []MonitorEvent `json:"new_events"`
}

// RecordEvent appends ev to the monitoring events when they are enabled.
func (s *Server) RecordEvent(ev MonitorEvent) {
	if s.events != nil {
		s.events.Record(ev)
	}
}

// SetIntrospection enables the vmi routes.
func (s *Server) SetIntrospection(i Introspector, ev *Events) {
	s.vmi, s.events = i, ev
}

func needVMI(h func(*Server, http.ResponseWriter, *http.Request) error) func(*Server, http.ResponseWriter, *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		if s.vmi == nil {
			return &httpError{code: http.StatusServiceUnavailable, msg: "introspection is not enabled"}
		}
		return h(s, w, r)
	}
}

func vmiErr(err error) error {
	if errors.Is(err, manager.ErrNotRunning) {
		return &httpError{code: http.StatusConflict, msg: err.Error()}
	}
	return err
}

func vmiView(op string) func(*Server, http.ResponseWriter, *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		var out json.RawMessage
		if err := s.vmi.Query(r.Context(), r.PathValue("name"), op, &out); err != nil {
			return vmiErr(err)
		}
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(out)
		return err
	}
}

// Scan runs a check of a VM and records its new findings as events.
func (s *Server) Scan(ctx context.Context, vm, kind string) (*ScanReport, error) {
	var rep ScanReport
	if err := s.vmi.Query(ctx, vm, "check", &rep); err != nil {
		s.recordScan(ctx, vm, nil, err)
		return nil, vmiErr(err)
	}
	s.recordScan(ctx, vm, &rep, nil)
	if s.events != nil {
		rep.New = s.events.Report(vm, kind, &rep)
	}
	return &rep, nil
}

func (s *Server) vmiCheck(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.Scan(r.Context(), r.PathValue("name"), "on-demand")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) error {
	if s.events == nil {
		return &httpError{code: http.StatusServiceUnavailable, msg: "introspection is not enabled"}
	}
	n, err := bytesParam(r)
	if err != nil {
		return err
	}
	data, err := consolelog.Tail(s.events.Path, consolelog.DefaultKeep, n)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if see := s.visible(r, PrivMonitor); !see("/") {
		data = filterLines(data, "vm", "/vms/", see)
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	_, err = w.Write(data)
	return err
}

// vmiDump streams the VM's guest-physical memory as a LiME image, which
// Volatility 3 opens. It holds the tenant's secrets: it needs
// Monitor.Respond and is audited.
func (s *Server) vmiDump(w http.ResponseWriter, r *http.Request) error {
	f, size, err := s.mgr.OpenMemory(r.Context(), r.PathValue("name"))
	if err != nil {
		return vmiErr(err)
	}
	defer f.Close()
	layout := mem.MicrovmLayout(size)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", r.PathValue("name")+".lime"))
	for _, rg := range layout.Ranges {
		if rg.Size == 0 {
			continue
		}
		src := io.NewSectionReader(f, int64(rg.Offset), int64(rg.Size))
		if err := lime.WriteRange(w, lime.Range{Start: rg.GPA, End: rg.GPA + rg.Size - 1}, src); err != nil {
			return err
		}
	}
	return nil
}
