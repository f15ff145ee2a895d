package mirror

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/safefs"
)

// MaxSessions bounds the sessions of a manager (each has a writer and up to
// QueueFrames buffered copies).
const MaxSessions = 64

// StageName is the Manager's stage name.
const StageName = "mirror"

// ErrClosed is returned by Set after Close.
var ErrClosed = errors.New("mirror: manager closed")

// Manager runs a switch's mirror sessions. It is the switch's mirror stage
// (install it with sw.SetMirrorStages(m)).
type Manager struct {
	sw  *netsw.Switch
	dir *safefs.Dir
	log *slog.Logger

	// active is the data path's view: the running sessions, nil for none.
	active atomic.Pointer[[]*runner]

	mu      sync.Mutex // serialises Set, Status and Close; guards below
	running map[string]*runner
	closed  bool
}

// NewManager returns a manager with no session. dir holds the pcap files:
// an absolute path, created 0700 if missing; an existing one must be a
// directory (not a symlink) owned by the daemon's uid, and is made 0700.
func NewManager(sw *netsw.Switch, dir string, log *slog.Logger) (*Manager, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("mirror: directory %q is not absolute", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	d, err := safefs.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	if err := checkDir(dir); err != nil {
		d.Close()
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{sw: sw, dir: d, log: log, running: map[string]*runner{}}, nil
}

// checkDir refuses a capture directory someone else owns and takes group
// and other permissions away: captures are the guests' traffic. The path
// is the daemon's (trusted), and OpenDir refused a symlink at its end.
func checkDir(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || !st.IsDir() || int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("mirror: %s must be a directory owned by uid %d", dir, os.Geteuid())
	}
	if st.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
	}
	return nil
}

// Name is the stage's name.
func (m *Manager) Name() string { return StageName }

// Process copies the frame to the sessions that want it. A mirror stage's
// verdict is ignored; it always passes. Without sessions it costs one
// atomic load.
func (m *Manager) Process(c *netsw.FrameContext) netsw.Verdict {
	if l := m.active.Load(); l != nil {
		for _, r := range *l {
			r.observe(c)
		}
	}
	return netsw.Verdict{}
}

// Set replaces all sessions. The list is normalized and validated as a
// whole first, then each new or changed session's target is opened; if
// any fails, nothing changes. A session whose configuration is unchanged
// keeps running (its files, counters and ERSPAN sequence carry on); a
// changed one restarts. Source and target ports need not exist: they
// match once attached (Status lists the missing ones).
func (m *Manager) Set(sessions []Session) error {
	list := make([]Session, len(sessions))
	for i := range sessions {
		list[i] = clone(sessions[i])
		list[i].Normalize()
		if err := list[i].Validate(); err != nil {
			return fmt.Errorf("mirror session %q: %w", list[i].Name, err)
		}
	}
	if err := checkTogether(list); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	next := make(map[string]*runner, len(list))
	var started []*runner
	for _, s := range list {
		if r := m.running[s.Name]; r != nil && reflect.DeepEqual(r.cfg, s) {
			next[s.Name] = r
			continue
		}
		tgt, err := m.openTarget(&s)
		if err != nil {
			for _, r := range started {
				r.tgt.close()
			}
			return fmt.Errorf("mirror session %q: %w", s.Name, err)
		}
		r := newRunner(s, tgt, m.log)
		next[s.Name] = r
		started = append(started, r)
	}

	var monitors []netsw.PortRef
	active := make([]*runner, 0, len(next))
	for _, s := range list {
		r := next[s.Name]
		active = append(active, r)
		if s.Target.Kind == TargetPort {
			monitors = append(monitors, netsw.PortRef{Network: s.Network, Name: s.Target.Port})
		}
	}
	// Monitor ports first: a port becomes a tap before it gets copies.
	m.sw.SetMonitorPorts(monitors)
	for _, r := range started {
		go r.run()
		m.log.Info("mirror: session started", "session", r.cfg.Name, "network", r.cfg.Network,
			"sources", r.cfg.Sources, "direction", r.cfg.Direction, "target", r.cfg.Target.Kind)
	}
	if len(active) == 0 {
		m.active.Store(nil)
	} else {
		m.active.Store(&active)
	}
	for name, r := range m.running {
		if next[name] != r {
			if err := r.shutdown(); err != nil {
				m.log.Error("mirror: session stop", "session", name, "err", err)
			}
			m.log.Info("mirror: session stopped", "session", name, "frames", r.frames.Load(), "dropped", r.dropped())
		}
	}
	m.running = next
	return nil
}

// checkTogether checks what no single session can: unique names, no
// monitor port that is another session's source, no ERSPAN session id
// used twice towards one collector.
func checkTogether(list []Session) error {
	if len(list) > MaxSessions {
		return fmt.Errorf("mirror: %d sessions, at most %d", len(list), MaxSessions)
	}
	names := map[string]bool{}
	monitors := map[netsw.PortRef]string{}
	erspan := map[string]string{}
	for _, s := range list {
		if names[s.Name] {
			return fmt.Errorf("mirror session %q: name used twice", s.Name)
		}
		names[s.Name] = true
		switch s.Target.Kind {
		case TargetPort:
			monitors[netsw.PortRef{Network: s.Network, Name: s.Target.Port}] = s.Name
		case TargetERSPAN:
			k := fmt.Sprintf("%s/%d", s.Target.Remote, s.Target.SessionID)
			if other, ok := erspan[k]; ok {
				return fmt.Errorf("mirror session %q: target.session_id: %d to %s is used by session %q too",
					s.Name, s.Target.SessionID, s.Target.Remote, other)
			}
			erspan[k] = s.Name
		}
	}
	for _, s := range list {
		for i, src := range s.Sources {
			for ref, owner := range monitors {
				monVM, _, _ := strings.Cut(ref.Name, "/")
				if ref.Network == s.Network && (src == ref.Name || src == monVM) {
					return fmt.Errorf("mirror session %q: sources[%d]: %q is the monitor port of session %q: a monitor port cannot be a source",
						s.Name, i, src, owner)
				}
			}
		}
	}
	return nil
}

func (m *Manager) openTarget(s *Session) (target, error) {
	switch s.Target.Kind {
	case TargetPcap:
		return newPcapTarget(m.dir, s)
	case TargetPort:
		return newPortTarget(m.sw, s), nil
	case TargetERSPAN:
		return newERSPANTarget(s)
	}
	return nil, fmt.Errorf("target.kind %q", s.Target.Kind) // validated
}

// clone copies s deeply, so that the caller's slices are not shared.
func clone(s Session) Session {
	s.Sources = append([]string(nil), s.Sources...)
	if s.Filter != nil {
		f := *s.Filter
		s.Filter = &f
	}
	return s
}

// SessionStatus is a session with its counters.
type SessionStatus struct {
	Session
	// Frames and Bytes count the copies written or sent (Bytes as
	// stored, cut to the snap length).
	Frames uint64 `json:"frames"`
	Bytes  uint64 `json:"bytes"`
	// Dropped counts copies lost: queue full, over max_pps, or the target
	// failed (DroppedBy splits them).
	Dropped   uint64            `json:"dropped"`
	DroppedBy map[string]uint64 `json:"dropped_by,omitempty"`
	// Files are the pcap files, oldest first.
	Files     []string `json:"files,omitempty"`
	LastError string   `json:"last_error,omitempty"`
	// Missing lists the sources and the monitor port that have no switch
	// port now (VM stopped or unknown); they are mirrored once attached.
	Missing []string `json:"missing,omitempty"`
}

// Status lists the sessions by name.
func (m *Manager) Status() []SessionStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	type key struct{ network, name string }
	attached := map[key]bool{}
	for _, p := range m.sw.Ports() {
		if p.Kind == netsw.VMPort.String() {
			attached[key{p.Network, p.Name}] = true
			attached[key{p.Network, p.VM}] = true
		}
	}
	out := make([]SessionStatus, 0, len(m.running))
	for _, r := range m.running {
		st := SessionStatus{Session: clone(r.cfg), Frames: r.frames.Load(), Bytes: r.bytes.Load(),
			Dropped: r.dropped(), Files: r.tgt.files(), LastError: r.lastError()}
		for i := range r.drops {
			if n := r.drops[i].Load(); n > 0 {
				if st.DroppedBy == nil {
					st.DroppedBy = map[string]uint64{}
				}
				st.DroppedBy[dropCauseNames[i]] = n
			}
		}
		for _, src := range r.cfg.Sources {
			if !attached[key{r.cfg.Network, src}] {
				st.Missing = append(st.Missing, src)
			}
		}
		if t := r.cfg.Target; t.Kind == TargetPort && !attached[key{r.cfg.Network, t.Port}] {
			st.Missing = append(st.Missing, t.Port)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Close stops every session: what was queued is written, files are
// flushed, synced and closed, sockets closed, and monitor ports become
// ordinary ports. Set fails afterwards; Process does nothing.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.active.Store(nil)
	m.sw.SetMonitorPorts(nil)
	var errs []error
	for _, r := range m.running {
		if err := r.shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("mirror session %q: %w", r.cfg.Name, err))
		}
	}
	m.running = map[string]*runner{}
	errs = append(errs, m.dir.Close())
	return errors.Join(errs...)
}
