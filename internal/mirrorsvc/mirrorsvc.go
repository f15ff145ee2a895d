// Package mirrorsvc keeps the traffic mirror sessions in the store and in
// step with the switch's mirror stage (internal/mirror): a session is
// stored only when the stage accepted it, and the stored sessions are
// installed again when the daemon starts.
package mirrorsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/bulwark-project/bulwark/internal/mirror"
	"github.com/bulwark-project/bulwark/internal/store"
)

// ObjectKind is the store kind of mirror sessions.
const ObjectKind = "mirror-session"

// MaxSessions bounds the sessions of a host.
const MaxSessions = 64

// Store is the part of internal/store the service uses.
type Store interface {
	CreateObject(ctx context.Context, kind, name string, spec []byte) error
	ListObjects(ctx context.Context, kind string) ([]*store.Object, error)
	DeleteObject(ctx context.Context, kind, name string) error
}

// InputError is bad input from the caller (a 400).
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// Errors the API maps to status codes.
var (
	ErrExists   = errors.New("already exists")
	ErrNotFound = errors.New("not found")
)

// Service owns the sessions.
type Service struct {
	m   *mirror.Manager
	st  Store
	log *slog.Logger

	mu       sync.Mutex
	sessions map[string]mirror.Session
}

// New installs the stored sessions in m. A stored session the manager
// refuses is reported and left out, never deleted.
func New(ctx context.Context, m *mirror.Manager, st Store, log *slog.Logger) (*Service, error) {
	s := &Service{m: m, st: st, log: log, sessions: map[string]mirror.Session{}}
	if err := store.LoadObjects(ctx, st, ObjectKind, func(x mirror.Session) { s.sessions[x.Name] = x }); err != nil {
		return nil, fmt.Errorf("mirror sessions: %w", err)
	}
	if err := m.Set(s.listLocked()); err != nil {
		log.Error("mirror: stored sessions refused; none installed", "err", err)
		if err := m.Set(nil); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Service) listLocked() []mirror.Session {
	out := make([]mirror.Session, 0, len(s.sessions))
	for _, x := range s.sessions {
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Create validates, installs and stores a session.
func (s *Service) Create(ctx context.Context, x mirror.Session) (mirror.Session, error) {
	x.Normalize()
	if err := x.Validate(); err != nil {
		return mirror.Session{}, &InputError{Msg: err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[x.Name]; ok {
		return mirror.Session{}, fmt.Errorf("mirror session %q: %w", x.Name, ErrExists)
	}
	if len(s.sessions) >= MaxSessions {
		return mirror.Session{}, &InputError{Msg: fmt.Sprintf("already %d mirror sessions", MaxSessions)}
	}
	b, err := json.Marshal(x)
	if err != nil {
		return mirror.Session{}, err
	}
	next := append(s.listLocked(), x)
	if err := s.m.Set(next); err != nil {
		return mirror.Session{}, &InputError{Msg: err.Error()}
	}
	if err := s.st.CreateObject(ctx, ObjectKind, x.Name, b); err != nil {
		// Not stored: take it out of the stage again.
		if rerr := s.m.Set(s.listLocked()); rerr != nil {
			s.log.Error("mirror: rollback failed", "session", x.Name, "err", rerr)
		}
		return mirror.Session{}, err
	}
	s.sessions[x.Name] = x
	s.log.Info("mirror: session created", "session", x.Name, "network", x.Network, "sources", x.Sources, "target", x.Target.Kind)
	return x, nil
}

// Delete removes a session; its pcap files are kept.
func (s *Service) Delete(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[name]; !ok {
		return fmt.Errorf("mirror session %q: %w", name, ErrNotFound)
	}
	if err := s.st.DeleteObject(ctx, ObjectKind, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	delete(s.sessions, name)
	if err := s.m.Set(s.listLocked()); err != nil {
		return err
	}
	s.log.Info("mirror: session deleted", "session", name)
	return nil
}

// Status lists the sessions with their counters.
func (s *Service) Status() []mirror.SessionStatus { return s.m.Status() }
