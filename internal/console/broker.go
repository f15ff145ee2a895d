// Package console is Bulwark's console broker: it serves each running VM's
// serial console to at most a policy's number of users at a time (one by
// default), refuses or queues the rest, lets a holder of
// VM.Console.Takeover take a console over, ends sessions whose user loses
// VM.Console, stops pasted input while the clipboard policy is deny,
// neutralises guest output aimed at the operator's terminal, bounds every
// buffer, and records every session in asciicast v2.
//
// The broker knows nothing of HTTP or access control: the API layer
// authenticates, passes an Authorized callback the broker re-runs, and
// turns Events into audit records. The manager feeds guest output in
// (Output) and takes input out (Input.ConsoleWrite).
package console

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Policy is the console policy of one VM, resolved against the daemon's
// defaults.
type Policy struct {
	MaxSessions int           `json:"max_sessions"`
	Clipboard   bool          `json:"clipboard_allowed"`
	RecordInput bool          `json:"record_input"`
	IdleTimeout time.Duration `json:"idle_timeout_ns"`
	MaxDuration time.Duration `json:"max_duration_ns"`
	Input       InputPolicy   `json:"-"`
}

// DefaultPolicy is the policy of a VM that sets none.
func DefaultPolicy() Policy {
	return Policy{MaxSessions: 1, IdleTimeout: 15 * time.Minute, MaxDuration: 8 * time.Hour,
		Input: InputPolicy{MaxKeys: 8, Burst: 40, Rate: 25}}
}

// PolicyView is the policy as clients see it.
type PolicyView struct {
	MaxSessions  int     `json:"max_sessions"`
	Clipboard    string  `json:"clipboard"`
	RecordInput  bool    `json:"record_input"`
	IdleTimeout  string  `json:"idle_timeout"`
	MaxDuration  string  `json:"max_duration"`
	InputMaxKeys int     `json:"input_max_keys"`
	InputBurst   int     `json:"input_burst"`
	InputRate    float64 `json:"input_rate"`
}

// View returns the policy as clients see it.
func (p Policy) View() PolicyView {
	return PolicyView{MaxSessions: p.MaxSessions, Clipboard: allowDeny(p.Clipboard), RecordInput: p.RecordInput,
		IdleTimeout: p.IdleTimeout.String(), MaxDuration: p.MaxDuration.String(),
		InputMaxKeys: p.Input.MaxKeys, InputBurst: p.Input.Burst, InputRate: p.Input.Rate}
}

// Config is the broker's configuration.
type Config struct {
	RecordDir    string           // asciicast files, one per session
	MaxRecording int64            // bytes per recording (default 64 MiB)
	Retention    time.Duration    // recordings older than this are deleted (0: kept)
	OutQueue     int              // bytes of output queued per client (default 256 KiB)
	Clock        func() time.Time // nil: time.Now (tests set it)
}

// Input delivers keystrokes to a VM's serial line.
type Input interface {
	ConsoleWrite(vm string, p []byte) error
}

// Close codes sent to clients (WebSocket close status).
const (
	CodeNormal    = 1000
	CodeRefused   = 4001
	CodeRevoked   = 4003
	CodeTimeout   = 4008
	CodeTakenOver = 4009
	CodeVMStopped = 4010
)

// Event is something the audit log records.
type Event struct {
	Kind      string // "open", "close", "takeover", "refused"
	Session   string
	VM        string
	User      string
	Source    string
	Recording string // file name in the recording directory, if any
	Detail    string
}

// HeldError refuses a connection because the console is in use.
type HeldError struct {
	VM      string
	Holder  string
	Client  string
	Since   time.Time
	Session string
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("the console of VM %s is held by %s (%s) since %s; wait for it (--wait) or take it over (--force, needs VM.Console.Takeover)",
		e.VM, e.Holder, e.Client, e.Since.UTC().Format(time.RFC3339))
}

// ErrTakeoverDenied refuses --force to a user without VM.Console.Takeover.
var ErrTakeoverDenied = errors.New("taking over a console needs VM.Console.Takeover on the VM")

// MaxWaiting bounds the waiting line of one VM's console.
const MaxWaiting = 16

// ErrLineFull refuses a waiter when MaxWaiting are already waiting.
var ErrLineFull = fmt.Errorf("%d users are already waiting for this console", MaxWaiting)

// ErrClosed is returned once the broker has shut down.
var ErrClosed = errors.New("console broker is shut down")

// OpenRequest asks for a console session.
type OpenRequest struct {
	VM, User, Source, Client string
	Force, CanTakeover       bool
	Wait                     bool
	Policy                   Policy
	Cols, Rows               int
	// Authorized reports whether the user still holds VM.Console on the
	// VM; the broker calls it whenever access changes and every second.
	Authorized func() error
}

type vmState struct {
	holders []*Session
	waiting []*Session
	omu     sync.Mutex // output path: sanitiser and its buffer
	san     Sanitizer
	buf     []byte
}

// Broker multiplexes VM consoles. It is safe for concurrent use.
type Broker struct {
	cfg     Config
	in      Input
	now     func() time.Time
	onEvent func(Event)

	mu     sync.Mutex
	vms    map[string]*vmState
	closed bool

	stop chan struct{}
	done chan struct{}
	poke chan struct{}
}

// New starts a broker. onEvent receives audit events (may be nil).
func New(cfg Config, in Input, onEvent func(Event)) (*Broker, error) {
	if cfg.MaxRecording <= 0 {
		cfg.MaxRecording = 64 << 20
	}
	if cfg.OutQueue <= 0 {
		cfg.OutQueue = 256 << 10
	}
	if cfg.RecordDir == "" {
		return nil, errors.New("console: no recording directory")
	}
	if err := os.MkdirAll(cfg.RecordDir, 0o700); err != nil {
		return nil, err
	}
	if onEvent == nil {
		onEvent = func(Event) {}
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	b := &Broker{cfg: cfg, in: in, now: cfg.Clock, onEvent: onEvent, vms: map[string]*vmState{},
		stop: make(chan struct{}), done: make(chan struct{}), poke: make(chan struct{}, 1)}
	go b.run()
	return b, nil
}

// Session is one client's console session.
type Session struct {
	ID     string
	VM     string
	User   string
	Source string
	Client string
	Opened time.Time

	b      *Broker
	pol    Policy
	auth   func() error
	q      *outQueue
	filter *InputFilter // used by the one reader of the session
	cols   int
	rows   int

	// guarded by b.mu
	holding  bool
	closed   bool
	since    time.Time // holding since
	lastIn   time.Time
	closeMsg string
	code     int

	rmu sync.Mutex
	rec *Recorder
}

func newID(now time.Time) string {
	b := make([]byte, 6)
	rand.Read(b)
	return "cs-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// ValidID reports whether id looks like a session id (safe as a file name).
func ValidID(id string) bool {
	if !strings.HasPrefix(id, "cs-") || len(id) > 64 {
		return false
	}
	for _, c := range id[3:] {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

// Open admits, queues or refuses a session.
func (b *Broker) Open(req OpenRequest) (*Session, error) {
	now := b.now()
	s := &Session{ID: newID(now), VM: req.VM, User: req.User, Source: req.Source, Client: req.Client,
		Opened: now, b: b, pol: req.Policy, auth: req.Authorized, q: newOutQueue(b.cfg.OutQueue),
		filter: NewInputFilter(req.Policy.Input), cols: req.Cols, rows: req.Rows}
	if s.pol.MaxSessions < 1 {
		s.pol.MaxSessions = 1
	}
	var events []Event
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	st := b.vms[req.VM]
	if st == nil {
		st = &vmState{}
		b.vms[req.VM] = st
	}
	if len(st.holders) >= s.pol.MaxSessions {
		h := st.holders[0]
		switch {
		case req.Force && !req.CanTakeover:
			b.mu.Unlock()
			b.onEvent(Event{Kind: "refused", Session: h.ID, VM: req.VM, User: req.User, Source: req.Source,
				Recording: h.ID + ".cast", Detail: "takeover refused: lacks VM.Console.Takeover; held by " + h.User})
			return nil, ErrTakeoverDenied
		case req.Force:
			for len(st.holders) >= s.pol.MaxSessions {
				h := st.holders[0]
				msg := fmt.Sprintf("the console was taken over by %s (VM.Console.Takeover)", req.User)
				events = append(events, b.endLocked(st, h, msg, CodeTakenOver)...)
				events = append(events, Event{Kind: "takeover", Session: s.ID, VM: req.VM, User: req.User, Source: req.Source,
					Recording: h.ID + ".cast", Detail: fmt.Sprintf("took over from %s (session %s)", h.User, h.ID)})
			}
		case req.Wait && len(st.waiting) >= MaxWaiting:
			b.mu.Unlock()
			return nil, ErrLineFull
		case req.Wait:
			st.waiting = append(st.waiting, s)
			b.broadcastLocked(req.VM, st)
			b.mu.Unlock()
			return s, nil
		default:
			err := &HeldError{VM: req.VM, Holder: h.User, Client: h.Client, Since: h.since, Session: h.ID}
			b.mu.Unlock()
			b.onEvent(Event{Kind: "refused", Session: h.ID, VM: req.VM, User: req.User, Source: req.Source,
				Recording: h.ID + ".cast", Detail: err.Error()})
			return nil, err
		}
	}
	ev, err := b.admitLocked(st, s)
	if err != nil {
		b.mu.Unlock()
		b.emit(events)
		return nil, err
	}
	events = append(events, ev)
	b.broadcastLocked(req.VM, st)
	b.mu.Unlock()
	b.emit(events)
	return s, nil
}

func (b *Broker) emit(evs []Event) {
	for _, e := range evs {
		b.onEvent(e)
	}
}

// admitLocked makes s a holder and starts its recording.
func (b *Broker) admitLocked(st *vmState, s *Session) (Event, error) {
	now := b.now()
	info := &RecordingInfo{Session: s.ID, VM: s.VM, User: s.User, Source: s.Source, InputLogged: s.pol.RecordInput}
	rec, err := CreateRecording(filepath.Join(b.cfg.RecordDir, s.ID+".cast"), Header{
		Width: s.cols, Height: s.rows, Title: fmt.Sprintf("%s console, %s", s.VM, s.User),
		Env: map[string]string{"TERM": "xterm-256color"}, Bulwark: info}, now, b.cfg.MaxRecording)
	if err != nil {
		return Event{}, fmt.Errorf("console recording: %w", err)
	}
	s.rec = rec
	s.holding, s.since, s.lastIn = true, now, now
	st.holders = append(st.holders, s)
	return Event{Kind: "open", Session: s.ID, VM: s.VM, User: s.User, Source: s.Source, Recording: s.ID + ".cast",
		Detail: fmt.Sprintf("client %s, clipboard %s, input %s", s.Client, allowDeny(s.pol.Clipboard), recorded(s.pol.RecordInput))}, nil
}

func allowDeny(b bool) string {
	if b {
		return "allow"
	}
	return "deny"
}

func recorded(b bool) string {
	if b {
		return "recorded"
	}
	return "not recorded"
}

// endLocked removes s from its VM, tells it why and closes its recording;
// it promotes waiters into freed places.
func (b *Broker) endLocked(st *vmState, s *Session, msg string, code int) []Event {
	if s.closed {
		return nil
	}
	s.closed, s.closeMsg, s.code = true, msg, code
	wasHolding := s.holding
	s.holding = false
	st.holders = remove(st.holders, s)
	st.waiting = remove(st.waiting, s)
	final, _ := json.Marshal(map[string]any{"type": "closed", "reason": msg, "code": code})
	s.q.pushCtrl(final, true)
	var evs []Event
	if wasHolding {
		s.rmu.Lock()
		s.rec.Event(b.now(), "m", []byte("session ended: "+msg))
		size := s.rec.Size()
		s.rec.Close()
		s.rmu.Unlock()
		evs = append(evs, Event{Kind: "close", Session: s.ID, VM: s.VM, User: s.User, Source: s.Source, Recording: s.ID + ".cast",
			Detail: fmt.Sprintf("%s; held %s; recording %d bytes", msg, b.now().Sub(s.since).Round(time.Second), size)})
	}
	for len(st.waiting) > 0 && len(st.holders) < st.waiting[0].pol.MaxSessions {
		w := st.waiting[0]
		st.waiting = st.waiting[1:]
		ev, err := b.admitLocked(st, w)
		if err != nil {
			w.closed = true
			final, _ := json.Marshal(map[string]any{"type": "closed", "reason": err.Error(), "code": CodeRefused})
			w.q.pushCtrl(final, true)
			continue
		}
		evs = append(evs, ev)
	}
	b.broadcastLocked(s.VM, st)
	return evs
}

func remove(list []*Session, s *Session) []*Session {
	for i, x := range list {
		if x == s {
			return append(list[:i:i], list[i+1:]...)
		}
	}
	return list
}

// Party is a holder or waiter as the status message shows it.
type Party struct {
	User   string    `json:"user"`
	Client string    `json:"client"`
	Since  time.Time `json:"since"`
}

// Status is who holds and who waits for a VM's console.
type Status struct {
	VM      string  `json:"vm"`
	Holders []Party `json:"holders"`
	Waiting []Party `json:"waiting"`
}

func statusLocked(vm string, st *vmState) Status {
	out := Status{VM: vm, Holders: []Party{}, Waiting: []Party{}}
	if st == nil {
		return out
	}
	for _, h := range st.holders {
		out.Holders = append(out.Holders, Party{User: h.User, Client: h.Client, Since: h.since.UTC().Truncate(time.Second)})
	}
	for _, w := range st.waiting {
		out.Waiting = append(out.Waiting, Party{User: w.User, Client: w.Client, Since: w.Opened.UTC().Truncate(time.Second)})
	}
	return out
}

// Status reports a VM's holders and waiters.
func (b *Broker) Status(vm string) Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return statusLocked(vm, b.vms[vm])
}

// broadcastLocked sends every session of the VM the current status.
func (b *Broker) broadcastLocked(vm string, st *vmState) {
	status := statusLocked(vm, st)
	for _, list := range [][]*Session{st.holders, st.waiting} {
		for _, s := range list {
			state := "waiting"
			if s.holding {
				state = "holding"
			}
			msg, _ := json.Marshal(struct {
				Type    string `json:"type"`
				Session string `json:"session"`
				State   string `json:"state"`
				Status
				Policy PolicyView `json:"policy"`
			}{"status", s.ID, state, status, s.pol.View()})
			s.q.pushCtrl(msg, false)
		}
	}
}

// Next returns the next message for the client; io.EOF after the final
// "closed" message.
func (s *Session) Next(ctx context.Context) (Message, error) { return s.q.next(ctx) }

// Holding reports whether the session holds the console (not waiting).
func (s *Session) Holding() bool {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.holding
}

// Input passes keystrokes to the guest after the clipboard policy's checks.
// A refusal is told to the client and returned as *Refusal; the session
// goes on.
func (s *Session) Input(p []byte) error {
	b := s.b
	now := b.now()
	b.mu.Lock()
	if !s.holding {
		b.mu.Unlock()
		if s.closed {
			return ErrClosed
		}
		s.notice("input ignored: you are waiting for the console")
		return &Refusal{Reason: "waiting for the console"}
	}
	s.lastIn = now
	b.mu.Unlock()
	if err := s.filter.Check(p, now); err != nil {
		s.notice(err.Error())
		s.rmu.Lock()
		s.rec.Event(now, "m", []byte(err.Error()))
		s.rmu.Unlock()
		return err
	}
	if s.pol.RecordInput {
		s.rmu.Lock()
		s.rec.Event(now, "i", p)
		s.rmu.Unlock()
	}
	if err := b.in.ConsoleWrite(s.VM, p); err != nil {
		s.notice("input not delivered: " + err.Error())
		return err
	}
	return nil
}

func (s *Session) notice(msg string) {
	b, _ := json.Marshal(map[string]string{"type": "notice", "message": msg})
	s.q.pushCtrl(b, false)
}

// Resize records the client's terminal size (the serial line has none).
func (s *Session) Resize(cols, rows int) {
	if cols <= 0 || rows <= 0 || cols > 1000 || rows > 1000 {
		return
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.rec != nil {
		s.rec.Event(s.b.now(), "r", []byte(fmt.Sprintf("%dx%d", cols, rows)))
	}
}

// Close ends the session (the client left).
func (s *Session) Close(msg string) {
	b := s.b
	b.mu.Lock()
	st := b.vms[s.VM]
	var evs []Event
	if st != nil {
		evs = b.endLocked(st, s, msg, CodeNormal)
	}
	b.mu.Unlock()
	b.emit(evs)
}

// CloseReason is why the session ended and its close code.
func (s *Session) CloseReason() (string, int) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.closeMsg, s.code
}

// Output fans guest output out to the VM's holders and their recordings.
// It never blocks on a client.
func (b *Broker) Output(vm string, p []byte) {
	b.mu.Lock()
	st := b.vms[vm]
	if st == nil || len(st.holders) == 0 {
		b.mu.Unlock()
		return
	}
	holders := append([]*Session(nil), st.holders...)
	b.mu.Unlock()
	st.omu.Lock()
	defer st.omu.Unlock()
	st.buf = st.san.Write(st.buf[:0], p)
	if len(st.buf) == 0 {
		return
	}
	now := b.now()
	for _, s := range holders {
		s.q.pushData(st.buf)
		s.rmu.Lock()
		if s.rec != nil {
			s.rec.Event(now, "o", st.buf)
		}
		s.rmu.Unlock()
	}
}

// VMStopped ends every session of the VM.
func (b *Broker) VMStopped(vm string) {
	b.endAll(vm, "the VM stopped", CodeVMStopped)
}

func (b *Broker) endAll(vm, msg string, code int) {
	b.mu.Lock()
	st := b.vms[vm]
	var evs []Event
	if st != nil {
		for _, s := range append(append([]*Session(nil), st.holders...), st.waiting...) {
			evs = append(evs, b.endLocked(st, s, msg, code)...)
		}
		delete(b.vms, vm)
	}
	b.mu.Unlock()
	b.emit(evs)
}

// Recheck re-runs every session's authorization now (access changed).
func (b *Broker) Recheck() {
	select {
	case b.poke <- struct{}{}:
	default:
	}
}

// Close ends all sessions and stops the broker.
func (b *Broker) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	var vms []string
	for vm := range b.vms {
		vms = append(vms, vm)
	}
	b.mu.Unlock()
	for _, vm := range vms {
		b.endAll(vm, "the daemon is shutting down", 1001)
	}
	close(b.stop)
	<-b.done
}

// run enforces time limits and re-authorizes sessions every second and on
// Recheck, flushes recordings, and sweeps old recordings hourly.
func (b *Broker) run() {
	defer close(b.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	b.sweep()
	lastSweep := b.now()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		case <-b.poke:
		}
		b.enforce()
		if b.now().Sub(lastSweep) > time.Hour {
			b.sweep()
			lastSweep = b.now()
		}
	}
}

type ending struct {
	s    *Session
	msg  string
	code int
}

func (b *Broker) enforce() {
	now := b.now()
	b.mu.Lock()
	var all []*Session
	var ends []ending
	for _, st := range b.vms {
		for _, s := range st.holders {
			all = append(all, s)
			switch {
			case s.pol.IdleTimeout > 0 && now.Sub(s.lastIn) >= s.pol.IdleTimeout:
				ends = append(ends, ending{s, fmt.Sprintf("idle timeout: no input for %s", s.pol.IdleTimeout), CodeTimeout})
			case s.pol.MaxDuration > 0 && now.Sub(s.since) >= s.pol.MaxDuration:
				ends = append(ends, ending{s, fmt.Sprintf("maximum session length of %s reached", s.pol.MaxDuration), CodeTimeout})
			}
		}
		for _, w := range st.waiting {
			all = append(all, w)
			if w.pol.MaxDuration > 0 && now.Sub(w.Opened) >= w.pol.MaxDuration {
				ends = append(ends, ending{w, fmt.Sprintf("waited the maximum session length of %s", w.pol.MaxDuration), CodeTimeout})
			}
		}
	}
	b.mu.Unlock()
	for _, s := range all {
		s.rmu.Lock()
		if s.rec != nil {
			s.rec.Flush()
		}
		s.rmu.Unlock()
		if s.auth != nil {
			if err := s.auth(); err != nil {
				ends = append(ends, ending{s, "access revoked: " + err.Error(), CodeRevoked})
			}
		}
	}
	var evs []Event
	b.mu.Lock()
	for _, e := range ends {
		if st := b.vms[e.s.VM]; st != nil {
			evs = append(evs, b.endLocked(st, e.s, e.msg, e.code)...)
		}
	}
	b.mu.Unlock()
	b.emit(evs)
}

// Recording is one recording file.
type Recording struct {
	ID       string         `json:"id"`
	File     string         `json:"file"`
	Size     int64          `json:"size"`
	Modified time.Time      `json:"modified"`
	Started  time.Time      `json:"started"`
	Active   bool           `json:"active"`
	Info     *RecordingInfo `json:"info,omitempty"`
}

// Recordings lists the recordings, oldest first.
func (b *Broker) Recordings() ([]Recording, error) {
	ents, err := os.ReadDir(b.cfg.RecordDir)
	if err != nil {
		return nil, err
	}
	active := b.activeIDs()
	out := []Recording{}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".cast")
		if !ok || !ValidID(id) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		r := Recording{ID: id, File: e.Name(), Size: fi.Size(), Modified: fi.ModTime().UTC(), Active: active[id]}
		if f, err := os.Open(filepath.Join(b.cfg.RecordDir, e.Name())); err == nil {
			if h, err := ReadHeader(f); err == nil {
				r.Info = h.Bulwark
				r.Started = time.Unix(h.Timestamp, 0).UTC()
			}
			f.Close()
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// RecordingPath is the file of a recording id ("" if the id is invalid).
func (b *Broker) RecordingPath(id string) string {
	if !ValidID(id) {
		return ""
	}
	return filepath.Join(b.cfg.RecordDir, id+".cast")
}

func (b *Broker) activeIDs() map[string]bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := map[string]bool{}
	for _, st := range b.vms {
		for _, s := range st.holders {
			m[s.ID] = true
		}
	}
	return m
}

// sweep deletes recordings older than the retention period.
func (b *Broker) sweep() {
	if b.cfg.Retention <= 0 {
		return
	}
	recs, err := b.Recordings()
	if err != nil {
		return
	}
	cut := b.now().Add(-b.cfg.Retention)
	for _, r := range recs {
		if !r.Active && r.Modified.Before(cut) {
			os.Remove(filepath.Join(b.cfg.RecordDir, r.File))
		}
	}
}
