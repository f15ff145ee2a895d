package access

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/bulwark-project/bulwark/internal/store"
)

// Sessions.
const (
	// SessionTTL is how long a session from Login lasts.
	SessionTTL = 12 * time.Hour
	// MaxSessionsPerUser bounds a user's live sessions; a login past it
	// ends that user's oldest session.
	MaxSessionsPerUser = 16
	// maxConcurrentHashes bounds argon2id runs in flight: each holds
	// argonMemory (64 MiB), so logins cannot be used to exhaust memory.
	maxConcurrentHashes = 4
)

// ErrInvalidCredentials is the one answer to a failed login, whether the
// user does not exist, is disabled, has no password or gave the wrong one.
var ErrInvalidCredentials = errors.New("invalid credentials")

// SetPassword sets user's password (MinPasswordLen..MaxPasswordLen bytes)
// and ends the user's sessions; their API tokens stay.
func (s *Service) SetPassword(ctx context.Context, user, password string) error {
	if err := checkPasswordPolicy(password); err != nil {
		return err
	}
	s.mu.Lock()
	_, ok := s.users[user]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("user %q: %w", user, store.ErrNotFound)
	}
	if err := s.acquireHash(ctx); err != nil {
		return err
	}
	enc := hashPassword(password) // tens of ms: outside s.mu
	<-s.hashSem

	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[user]
	if !ok {
		return fmt.Errorf("user %q: %w", user, store.ErrNotFound)
	}
	u.PasswordHash = enc
	if err := s.persist(ctx, false, kindUser, user, u); err != nil {
		return err
	}
	s.users[user] = u
	for id, t := range s.toks {
		if t.User == user && t.Kind == KindSession {
			s.st.DeleteObject(ctx, kindToken, id)
			delete(s.toks, id)
		}
	}
	return s.recompileLocked()
}

// Login checks user's password and issues a session token, returned with
// its secret (shown this once). source is the client's address for
// throttling: the remote IP without its port, or "unix:uid=N" for a peer
// on the Unix socket. Failures return ErrInvalidCredentials, or a
// *LockedError while the name from this source, the source or the name is
// locked out (see lockout.go), which is checked before the password.
//
// Unknown, disabled and password-less users are checked against a dummy
// hash, so the answer and its timing are the same as for a wrong password.
func (s *Service) Login(ctx context.Context, user, password, source string) (Token, string, error) {
	if err := s.lockout.Check(user, source); err != nil {
		return Token{}, "", err // fast path: no hash slot taken
	}
	if err := s.acquireHash(ctx); err != nil {
		return Token{}, "", err
	}
	// Checked again holding the slot: attempts that queued while the
	// limit was reached are refused too, so at most maxConcurrentHashes
	// guesses can slip past the limit.
	if err := s.lockout.Check(user, source); err != nil {
		<-s.hashSem
		return Token{}, "", err
	}
	s.mu.Lock()
	u, exists := s.users[user]
	s.mu.Unlock()
	enc := dummyHash
	if exists && !u.Disabled && u.PasswordHash != "" {
		enc = u.PasswordHash
	}
	match := verifyPassword(enc, password)
	<-s.hashSem
	if !match || enc == dummyHash {
		s.lockout.Fail(user, source)
		return Token{}, "", ErrInvalidCredentials
	}
	s.lockout.Succeed(user, source)

	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[user]; !ok || u.Disabled || u.PasswordHash != enc {
		return Token{}, "", ErrInvalidCredentials // changed while we hashed
	}
	s.pruneSessionsLocked(ctx, user)
	return s.issueLocked(ctx, user, KindSession, "bws_", SessionTTL, "login from "+source, nil)
}

// pruneSessionsLocked deletes user's expired sessions and, at
// MaxSessionsPerUser, the oldest live ones to make room for one more.
func (s *Service) pruneSessionsLocked(ctx context.Context, user string) {
	now := s.now()
	var live []Token
	for id, t := range s.toks {
		if t.User != user || t.Kind != KindSession {
			continue
		}
		if !now.Before(t.Expires) {
			s.st.DeleteObject(ctx, kindToken, id)
			delete(s.toks, id)
			continue
		}
		live = append(live, t)
	}
	sort.Slice(live, func(i, j int) bool { return live[i].Created.Before(live[j].Created) })
	for len(live) >= MaxSessionsPerUser {
		s.st.DeleteObject(ctx, kindToken, live[0].ID)
		delete(s.toks, live[0].ID)
		live = live[1:]
	}
}

func (s *Service) acquireHash(ctx context.Context) error {
	select {
	case s.hashSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
