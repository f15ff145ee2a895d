// Package ipssvc is the IPS's control plane in the daemon: it keeps the
// operator's Suricata rule files (a root-only directory of the state
// directory), compiles them into one engine (internal/ips/engine) and
// installs it in the switch's inspection stage (internal/ipsstage), keeps
// the inspection policy (where the IPS runs, alert or block, fail-open or
// fail-closed) in the store, and turns the stage's events into the EVE
// log, monitoring events and metrics.
//
// Decisions are the stage's and the engine's; this package does the I/O
// around them and serialises changes.
package ipssvc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/ips/engine"
	"github.com/bulwark-project/bulwark/internal/ips/rules"
	"github.com/bulwark-project/bulwark/internal/ipsstage"
	"github.com/bulwark-project/bulwark/internal/safefs"
	"github.com/bulwark-project/bulwark/internal/store"
)

// Store kinds and names.
const (
	policyKind = "ips-policy"
	policyName = "default"
)

// Bounds on what an operator may load.
const (
	// MaxFileBytes bounds one rule file (ET Open's largest is ~5 MiB).
	MaxFileBytes = 64 << 20
	// MaxFiles bounds the rule files kept.
	MaxFiles = 256
	// ClassificationFile is the name of the classification.config kept
	// next to the rule files (alert.category).
	ClassificationFile = "classification.config"
)

var fileNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// ErrNotFound says a rule file does not exist.
var ErrNotFound = errors.New("not found")

// InputError is bad input from the caller (a 400).
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// Store is the part of internal/store the service uses.
type Store interface {
	CreateObject(ctx context.Context, kind, name string, spec []byte) error
	UpdateObject(ctx context.Context, kind, name string, spec []byte) error
	GetObject(ctx context.Context, kind, name string) (*store.Object, error)
}

// FileReport is what loading one rule file gave.
type FileReport struct {
	Name    string         `json:"name"`
	Bytes   int64          `json:"bytes"`
	Rules   int            `json:"rules"` // rule texts seen
	Loaded  int            `json:"loaded"`
	Skipped map[string]int `json:"skipped,omitempty"` // unsupported, by reason
	Errors  map[string]int `json:"errors,omitempty"`  // malformed, by reason
	// Warnings are the loader's first messages for this file (each names
	// the line and the keyword).
	Warnings []string  `json:"warnings,omitempty"`
	Modified time.Time `json:"modified"`
}

// Status is the IPS's state: what is loaded, the policy and the counters.
type Status struct {
	Files      []FileReport    `json:"files"`
	Loaded     int             `json:"loaded"`
	Skipped    map[string]int  `json:"skipped,omitempty"`
	Errors     map[string]int  `json:"errors,omitempty"`
	Duplicates int             `json:"duplicates,omitempty"`
	Compiled   time.Time       `json:"compiled,omitzero"`
	CompileMs  float64         `json:"compile_ms"`
	Policy     ipsstage.Policy `json:"policy"`
	Stats      ipsstage.Stats  `json:"stats"`
	// LastError is the last failed compile (the previous engine stays).
	LastError string `json:"last_error,omitempty"`
	// Pending lists files uploaded with compilation deferred and not yet
	// in the running rule set.
	Pending []string `json:"pending,omitempty"`
}

// Service owns the rule files and the policy.
type Service struct {
	stage *ipsstage.Stage
	st    Store
	dir   *safefs.Dir
	log   *slog.Logger

	mu       sync.Mutex // serialises changes; fields below
	files    []FileReport
	total    rules.Stats
	compiled time.Time
	took     time.Duration
	policy   ipsstage.Policy
	lastErr  string
	engine   *engine.Engine
	// pending lists files stored with deferred compilation, not yet in
	// the engine.
	pending []string
}

// New opens the rule directory dir (created 0700, root's), loads the
// stored policy and compiles the rule files found there into stage.
// A rule directory that fails to compile does not stop the daemon: the
// stage inspects nothing and Status says why.
func New(ctx context.Context, stage *ipsstage.Stage, st Store, dir string, log *slog.Logger) (*Service, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ips: %w", err)
	}
	d, err := safefs.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("ips: %w", err)
	}
	s := &Service{stage: stage, st: st, dir: d, log: log}
	o, err := st.GetObject(ctx, policyKind, policyName)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		d.Close()
		return nil, fmt.Errorf("ips policy: %w", err)
	default:
		if err := json.Unmarshal(o.Spec, &s.policy); err != nil {
			d.Close()
			return nil, fmt.Errorf("stored ips policy is corrupt: %w", err)
		}
	}
	if err := stage.SetPolicy(s.policy); err != nil {
		log.Error("ips: stored policy refused; nothing is inspected", "err", err)
		s.policy = ipsstage.Policy{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.recompileLocked(); err != nil {
		s.lastErr = err.Error()
		log.Error("ips: rules not compiled; nothing is inspected", "err", err)
	}
	return s, nil
}

// Close releases the rule directory.
func (s *Service) Close() error { return s.dir.Close() }

// ruleFileNames lists the rule files, sorted.
func (s *Service) ruleFileNames() ([]string, error) {
	// The directory is root's (0700 in the state directory): no guest
	// can place names in it.
	ents, err := os.ReadDir(s.dir.Path())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); e.Type().IsRegular() && n != ClassificationFile && fileNameRE.MatchString(n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (s *Service) readFile(name string) ([]byte, os.FileInfo, error) {
	f, err := s.dir.Open(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, nil, err
	}
	if len(b) > MaxFileBytes {
		return nil, nil, fmt.Errorf("%s: larger than %d bytes", name, MaxFileBytes)
	}
	return b, fi, nil
}

// compile loads every rule file with the classifications and builds an
// engine; it changes nothing.
func (s *Service) compile(extra map[string][]byte) (*engine.Engine, []FileReport, rules.Stats, error) {
	var classes rules.Classifications
	cb, ok := extra[ClassificationFile]
	if !ok {
		var err error
		cb, _, err = s.readFile(ClassificationFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, rules.Stats{}, err
		}
	}
	if cb != nil {
		c, err := rules.ParseClassifications(cb)
		if err != nil {
			return nil, nil, rules.Stats{}, fmt.Errorf("%s: %w", ClassificationFile, err)
		}
		classes = c
	}
	names, err := s.ruleFileNames()
	if err != nil {
		return nil, nil, rules.Stats{}, err
	}
	for n := range extra {
		if n != ClassificationFile && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) > MaxFiles {
		return nil, nil, rules.Stats{}, &InputError{Msg: fmt.Sprintf("more than %d rule files", MaxFiles)}
	}
	l := rules.NewLoader(&rules.Options{Classes: classes, Disabled: engine.Disabled})
	var reports []FileReport
	var prev rules.Stats
	for _, n := range names {
		b, ok := extra[n]
		var mod time.Time
		if b == nil && ok {
			continue // being removed
		}
		if !ok {
			var fi os.FileInfo
			b, fi, err = s.readFile(n)
			if err != nil {
				return nil, nil, rules.Stats{}, err
			}
			mod = fi.ModTime()
		} else {
			mod = time.Now()
		}
		if err := l.Add(bytes.NewReader(b), n); err != nil {
			return nil, nil, rules.Stats{}, fmt.Errorf("%s: %w", n, err)
		}
		cur := l.Stats()
		reports = append(reports, diffReport(n, int64(len(b)), mod, prev, cur))
		prev = cur
	}
	set, st := l.Finish()
	if st.Limit != "" {
		return nil, nil, st, &InputError{Msg: "rules: " + st.Limit}
	}
	e, err := engine.New(set, classes, nil)
	if err != nil {
		return nil, nil, st, err
	}
	return e, reports, st, nil
}

// diffReport is one file's share of the loader's running totals.
func diffReport(name string, size int64, mod time.Time, prev, cur rules.Stats) FileReport {
	r := FileReport{Name: name, Bytes: size, Modified: mod.UTC(),
		Rules: cur.Rules - prev.Rules, Loaded: cur.Loaded - prev.Loaded,
		Skipped: diffMap(prev.Skipped, cur.Skipped), Errors: diffMap(prev.Errors, cur.Errors)}
	if len(cur.Warnings) > len(prev.Warnings) {
		w := cur.Warnings[len(prev.Warnings):]
		if len(w) > 20 {
			w = w[:20]
		}
		r.Warnings = append([]string(nil), w...)
	}
	return r
}

func diffMap(a, b map[string]int) map[string]int {
	var out map[string]int
	for k, v := range b {
		if d := v - a[k]; d > 0 {
			if out == nil {
				out = map[string]int{}
			}
			out[k] = d
		}
	}
	return out
}

func (s *Service) install(e *engine.Engine, reports []FileReport, st rules.Stats, took time.Duration) {
	s.stage.SetEngine(e)
	s.engine = e
	s.pending = nil
	s.files, s.total, s.compiled, s.took, s.lastErr = reports, st, time.Now().UTC(), took, ""
}

func (s *Service) recompileLocked() error {
	start := time.Now()
	e, reports, st, err := s.compile(nil)
	if err != nil {
		return err
	}
	if len(reports) == 0 {
		s.stage.SetEngine(nil)
		s.engine = nil
		s.files, s.total, s.compiled = nil, rules.Stats{}, time.Time{}
		return nil
	}
	s.install(e, reports, st, time.Since(start))
	s.log.Info("ips: rules compiled", "files", len(reports), "loaded", st.Loaded,
		"skipped", st.SkippedTotal(), "malformed", st.ErrorTotal(), "ms", time.Since(start).Milliseconds())
	return nil
}

// PutFile stores a rule file (or the classification.config) under name
// and recompiles; the file is kept only when the whole set compiles. It
// returns the report of that file. With defer set (an upload of several
// files, all but the last), the file is checked alone and kept, and the
// running engine is left as it is until the next compile (Status lists
// such files as pending).
func (s *Service) PutFile(name string, data []byte, deferCompile ...bool) (FileReport, error) {
	if !fileNameRE.MatchString(name) {
		return FileReport{}, &InputError{Msg: fmt.Sprintf("rule file name %q: 1-100 letters, digits, '.', '_' and '-', starting with a letter or digit", name)}
	}
	if len(data) > MaxFileBytes {
		return FileReport{}, &InputError{Msg: fmt.Sprintf("rule file %q: larger than %d bytes", name, MaxFileBytes)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if name != ClassificationFile {
		names, err := s.ruleFileNames()
		if err != nil {
			return FileReport{}, err
		}
		if !slices.Contains(names, name) && len(names) >= MaxFiles {
			return FileReport{}, &InputError{Msg: fmt.Sprintf("already %d rule files", MaxFiles)}
		}
	}
	if len(deferCompile) > 0 && deferCompile[0] && name != ClassificationFile {
		l := rules.NewLoader(&rules.Options{Disabled: engine.Disabled})
		if err := l.Add(bytes.NewReader(data), name); err != nil {
			return FileReport{}, &InputError{Msg: fmt.Sprintf("rule file %q not kept: %v", name, err)}
		}
		_, st := l.Finish()
		if st.Limit != "" {
			return FileReport{}, &InputError{Msg: fmt.Sprintf("rule file %q not kept: %s", name, st.Limit)}
		}
		if err := s.writeFile(name, data); err != nil {
			return FileReport{}, err
		}
		if !slices.Contains(s.pending, name) {
			s.pending = append(s.pending, name)
		}
		return diffReport(name, int64(len(data)), time.Now(), rules.Stats{}, st), nil
	}
	start := time.Now()
	e, reports, st, err := s.compile(map[string][]byte{name: data})
	if err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			return FileReport{}, err
		}
		return FileReport{}, &InputError{Msg: fmt.Sprintf("rule file %q not kept: %v", name, err)}
	}
	if err := s.writeFile(name, data); err != nil {
		return FileReport{}, err
	}
	s.install(e, reports, st, time.Since(start))
	s.log.Info("ips: rule file loaded", "file", name, "loaded", st.Loaded, "skipped", st.SkippedTotal(),
		"malformed", st.ErrorTotal(), "ms", time.Since(start).Milliseconds())
	for _, r := range reports {
		if r.Name == name {
			return r, nil
		}
	}
	return FileReport{Name: name, Bytes: int64(len(data)), Modified: time.Now().UTC()}, nil
}

// writeFile replaces name atomically (a temporary file renamed over it).
func (s *Service) writeFile(name string, data []byte) error {
	tmp := ".tmp-" + name
	_ = s.dir.Remove(tmp)
	f, err := s.dir.Open(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
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
	return s.dir.Rename(tmp, name)
}

// RemoveFile deletes a rule file and recompiles without it.
func (s *Service) RemoveFile(name string) error {
	if !fileNameRE.MatchString(name) {
		return &InputError{Msg: fmt.Sprintf("rule file name %q is not valid", name)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.dir.Remove(name); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rule file %q: %w", name, ErrNotFound)
		}
		return err
	}
	if err := s.recompileLocked(); err != nil {
		s.lastErr = err.Error()
		return err
	}
	return nil
}

// Rule is one loaded rule as listed.
type Rule struct {
	SID     uint32    `json:"sid"`
	Rev     uint32    `json:"rev"`
	Action  string    `json:"action"`
	Msg     string    `json:"msg"`
	Hits    uint64    `json:"hits"`
	LastHit time.Time `json:"last_hit,omitzero"`
}

// Policy returns the inspection policy.
func (s *Service) Policy() ipsstage.Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clonePolicy(s.policy)
}

func clonePolicy(p ipsstage.Policy) ipsstage.Policy {
	out := ipsstage.Policy{}
	if len(p.Networks) > 0 {
		out.Networks = map[string]ipsstage.NetPolicy{}
		for k, v := range p.Networks {
			out.Networks[k] = v
		}
	}
	if len(p.Groups) > 0 {
		out.Groups = map[string]ipsstage.Mode{}
		for k, v := range p.Groups {
			out.Groups[k] = v
		}
	}
	return out
}

// ModeChange is one change of the policy: a network's mode (and
// overload behaviour), or a security group's override ("" mode removes
// it; for a network, mode "off" removes it).
type ModeChange struct {
	Network  string            `json:"network,omitempty"`
	Group    string            `json:"group,omitempty"`
	Mode     ipsstage.Mode     `json:"mode"`
	Overload ipsstage.Overload `json:"overload,omitempty"`
}

// SetMode applies one change, validates the whole policy, stores it and
// installs it in the stage.
func (s *Service) SetMode(ctx context.Context, c ModeChange) (ipsstage.Policy, error) {
	if (c.Network == "") == (c.Group == "") {
		return ipsstage.Policy{}, &InputError{Msg: "give exactly one of network and group"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := clonePolicy(s.policy)
	if c.Network != "" {
		if c.Mode == ipsstage.ModeOff || c.Mode == "" {
			delete(p.Networks, c.Network)
		} else {
			if p.Networks == nil {
				p.Networks = map[string]ipsstage.NetPolicy{}
			}
			np := p.Networks[c.Network]
			np.Mode = c.Mode
			if c.Overload != "" {
				np.Overload = c.Overload
			}
			if np.Overload == "" {
				np.Overload = ipsstage.FailClosed
			}
			p.Networks[c.Network] = np
		}
	} else {
		if c.Overload != "" {
			return ipsstage.Policy{}, &InputError{Msg: "overload is set per network"}
		}
		if c.Mode == "" {
			delete(p.Groups, c.Group)
		} else {
			if p.Groups == nil {
				p.Groups = map[string]ipsstage.Mode{}
			}
			p.Groups[c.Group] = c.Mode
		}
	}
	if err := p.Validate(); err != nil {
		return ipsstage.Policy{}, &InputError{Msg: err.Error()}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return ipsstage.Policy{}, err
	}
	err = s.st.UpdateObject(ctx, policyKind, policyName, b)
	if errors.Is(err, store.ErrNotFound) {
		err = s.st.CreateObject(ctx, policyKind, policyName, b)
	}
	if err != nil {
		return ipsstage.Policy{}, err
	}
	if err := s.stage.SetPolicy(p); err != nil {
		return ipsstage.Policy{}, err
	}
	s.policy = p
	s.log.Info("ips: policy changed", "network", c.Network, "group", c.Group, "mode", c.Mode, "overload", c.Overload)
	return clonePolicy(p), nil
}

// Status reports the files, totals, policy and counters.
func (s *Service) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{Files: append([]FileReport(nil), s.files...), Loaded: s.total.Loaded,
		Skipped: s.total.Skipped, Errors: s.total.Errors, Duplicates: s.total.Duplicates,
		Compiled: s.compiled, CompileMs: float64(s.took.Microseconds()) / 1000,
		Policy: clonePolicy(s.policy), Stats: s.stage.Stats(), LastError: s.lastErr,
		Pending: append([]string(nil), s.pending...)}
}

// Rules lists the loaded rules with their hit counts; sid 0 lists all,
// hitOnly only rules that matched.
func (s *Service) Rules(sid uint32, hitOnly bool, limit int) []Rule {
	hits := map[uint32]ipsstage.RuleHit{}
	for _, h := range s.stage.RuleHits() {
		hits[h.SID] = h
	}
	s.mu.Lock()
	e := s.engine
	s.mu.Unlock()
	if e == nil {
		return nil
	}
	var out []Rule
	for _, r := range e.Rules() {
		if sid != 0 && r.SID != sid {
			continue
		}
		h := hits[r.SID]
		if hitOnly && h.Hits == 0 {
			continue
		}
		out = append(out, Rule{SID: r.SID, Rev: r.Rev, Action: r.Action.String(), Msg: r.Msg, Hits: h.Hits, LastHit: h.LastHit})
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out
}
