// Package access is Bulwark's access-control service: it authenticates API
// callers (the local root over the Unix socket, or a bearer token), keeps
// users, groups, roles and permission entries in the store, compiles them
// into an auth.Policy (swapped atomically on every change) and answers
// "may this user do this on that object" for every API route.
//
// Decisions are made per request against the current policy and token
// table, so disabling a user, revoking a token or a permission takes effect
// on the very next request.
//
// Bootstrap: there is no "admin init". The local root on the Unix socket
// (mode 0600, uid checked with SO_PEERCRED) is the bootstrap administrator:
// it creates users, grants them roles and sets their passwords
// (bulwark user create / perm grant / user passwd). Users then log in
// (bulwark login), which exchanges the password for a session token (see
// login.go; hashing in password.go, throttling in lockout.go).
package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-project/bulwark/internal/auth"
	"github.com/bulwark-project/bulwark/internal/store"
)

// RootUser is the identity of uid 0 on the Unix socket: the bootstrap
// administrator, who holds every privilege everywhere. The socket is mode
// 0600 and owned by root, so only root can connect to it at all.
const RootUser = "root"

// Object kinds in the store.
const (
	kindUser  = "user"
	kindRole  = "role"
	kindPerm  = "permission"
	kindToken = "token"
)

// Errors callers branch on.
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = auth.ErrForbidden
)

// ObjectStore is the part of the store the service persists to.
type ObjectStore interface {
	CreateObject(ctx context.Context, kind, name string, spec []byte) error
	UpdateObject(ctx context.Context, kind, name string, spec []byte) error
	ListObjects(ctx context.Context, kind string) ([]*store.Object, error)
	DeleteObject(ctx context.Context, kind, name string) error
}

// User is a Bulwark user: authenticates with API tokens, or with a
// password that Login exchanges for a session token.
type User struct {
	Name     string   `json:"name"`
	Disabled bool     `json:"disabled"`
	Groups   []string `json:"groups,omitempty"`
	// PasswordHash is the argon2id hash (password.go), persisted with the
	// user. Every method that hands a User out clears it (see public).
	PasswordHash string `json:"password_hash,omitempty"`
}

// public is u as shown to API callers: without the password hash.
func (u User) public() User {
	u.PasswordHash = ""
	return u
}

// Permission is one access-control entry.
type Permission struct {
	ID        string `json:"id"`
	User      string `json:"user,omitempty"`
	Group     string `json:"group,omitempty"`
	Role      string `json:"role"`
	Path      string `json:"path"`
	Propagate bool   `json:"propagate"`
}

// Token kinds: an API token is issued by an administrator and lives up to
// MaxTokenTTL; a session is issued by Login and lives SessionTTL. Both are
// checked the same way and end at once when revoked or the user disabled.
const (
	KindAPI     = "api"
	KindSession = "session"
)

// Token is an API or session token; only the SHA-256 of its secret is
// stored.
type Token struct {
	ID          string    `json:"id"`
	User        string    `json:"user"`
	Kind        string    `json:"kind"`
	Hash        string    `json:"hash,omitempty"`
	Expires     time.Time `json:"expires"`
	Created     time.Time `json:"created"`
	Description string    `json:"description,omitempty"`
	// Scope, if set, narrows an API token to these privileges: the token
	// can do no more than its user and no more than this list.
	Scope []string `json:"scope,omitempty"`
}

// Identity is an authenticated caller.
type Identity struct {
	User  string
	Scope []string // nil: the user's full rights
}

// Permits reports whether the identity's token scope admits priv.
func (id Identity) Permits(priv string) bool {
	return id.Scope == nil || slices.Contains(id.Scope, priv)
}

// Service is the access-control service. It is safe for concurrent use.
type Service struct {
	st  ObjectStore
	now func() time.Time

	policy atomic.Pointer[auth.Policy]
	tokens atomic.Pointer[map[string]Token] // by hash

	mu    sync.Mutex // serialises changes; fields below
	users map[string]User
	roles map[string]*auth.Role
	perms map[string]Permission
	toks  map[string]Token // by id
	// inherit is each object's extra parents (a VM's resource pool and
	// its ancestors): auth.Policy.WithInherit.
	inherit map[string][]string

	lockout *Lockout
	hashSem chan struct{} // bounds concurrent argon2id hashes (memory)

	subMu sync.Mutex
	subs  []chan struct{}
}

// Subscribe returns a channel that receives a value after every change to
// users, groups, roles, permissions or tokens (coalesced: one pending
// value at most). Long-lived sessions re-check their rights on it.
func (s *Service) Subscribe() <-chan struct{} {
	c := make(chan struct{}, 1)
	s.subMu.Lock()
	s.subs = append(s.subs, c)
	s.subMu.Unlock()
	return c
}

func (s *Service) notify() {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for _, c := range s.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// New loads the stored configuration.
func New(ctx context.Context, st ObjectStore) (*Service, error) {
	s := &Service{st: st, now: time.Now, users: map[string]User{}, roles: map[string]*auth.Role{},
		perms: map[string]Permission{}, toks: map[string]Token{}, hashSem: make(chan struct{}, maxConcurrentHashes)}
	s.lockout = NewLockout(func() time.Time { return s.now() }, MaxLockoutKeys)
	if err := store.LoadObjects(ctx, st, kindUser, func(u User) { s.users[u.Name] = u }); err != nil {
		return nil, err
	}
	if err := store.LoadObjects(ctx, st, kindRole, func(r auth.Role) { s.roles[r.Name] = &r }); err != nil {
		return nil, err
	}
	if err := store.LoadObjects(ctx, st, kindPerm, func(p Permission) { s.perms[p.ID] = p }); err != nil {
		return nil, err
	}
	if err := store.LoadObjects(ctx, st, kindToken, func(t Token) {
		if t.Kind == "" {
			t.Kind = KindAPI // stored before sessions existed
		}
		s.toks[t.ID] = t
	}); err != nil {
		return nil, err
	}
	if err := s.recompileLocked(); err != nil {
		return nil, fmt.Errorf("stored access configuration: %w", err)
	}
	return s, nil
}

// recompileLocked builds the policy and the token index from the maps.
func (s *Service) recompileLocked() error {
	pol, err := s.compileLocked(s.users, s.roles, s.perms)
	if err != nil {
		return err
	}
	s.installLocked(pol)
	return nil
}

// installLocked makes pol current, re-indexes the tokens and tells
// subscribers.
func (s *Service) installLocked(pol *auth.Policy) {
	s.policy.Store(pol)
	idx := make(map[string]Token, len(s.toks))
	for _, t := range s.toks {
		idx[t.Hash] = t
	}
	s.tokens.Store(&idx)
	s.notify()
}

func (s *Service) compileLocked(users map[string]User, roles map[string]*auth.Role, perms map[string]Permission) (*auth.Policy, error) {
	var rs []*auth.Role
	for _, r := range roles {
		rs = append(rs, r)
	}
	var es []auth.Entry
	for _, p := range perms {
		es = append(es, p.entry())
	}
	groups := map[string][]string{}
	disabled := map[string]bool{}
	for _, u := range users {
		groups[u.Name] = u.Groups
		disabled[u.Name] = u.Disabled
	}
	pol, err := auth.Compile(rs, es, groups, disabled)
	if err != nil || len(s.inherit) == 0 {
		return pol, err
	}
	return pol.WithInherit(s.inherit)
}

func (p Permission) entry() auth.Entry {
	return auth.Entry{Subject: auth.Subject{User: p.User, Group: p.Group}, Role: p.Role, Path: p.Path, Propagate: p.Propagate}
}

// Authenticate names the caller of a request. uid is the Unix socket
// peer's uid (-1 for other transports); authz is the Authorization header.
func (s *Service) Authenticate(uid int, authz string) (string, error) {
	id, err := s.Identify(uid, authz)
	return id.User, err
}

// Identify is Authenticate with the token's scope.
func (s *Service) Identify(uid int, authz string) (Identity, error) {
	if authz != "" {
		scheme, secret, ok := strings.Cut(authz, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" || len(secret) > 256 {
			return Identity{}, fmt.Errorf("%w: malformed Authorization header (want \"Bearer TOKEN\")", ErrUnauthenticated)
		}
		h := hashSecret(secret)
		t, ok := (*s.tokens.Load())[h]
		if !ok || subtle.ConstantTimeCompare([]byte(t.Hash), []byte(h)) != 1 {
			return Identity{}, fmt.Errorf("%w: unknown or revoked token", ErrUnauthenticated)
		}
		if !s.now().Before(t.Expires) {
			return Identity{}, fmt.Errorf("%w: token %s expired at %s", ErrUnauthenticated, t.ID, t.Expires.Format(time.RFC3339))
		}
		s.mu.Lock()
		u, exists := s.users[t.User]
		s.mu.Unlock()
		if !exists || u.Disabled {
			return Identity{}, fmt.Errorf("%w: user %q is disabled or gone", ErrUnauthenticated, t.User)
		}
		return Identity{User: t.User, Scope: t.Scope}, nil
	}
	if uid == 0 {
		return Identity{User: RootUser}, nil
	}
	return Identity{}, fmt.Errorf("%w: no credentials", ErrUnauthenticated)
}

// Allowed reports whether user holds priv on path.
func (s *Service) Allowed(user, priv, path string) bool {
	if user == RootUser {
		return true
	}
	return s.policy.Load().Allowed(user, auth.Privilege(priv), path)
}

// Privileges returns user's effective privileges on path (everything for
// the local root).
func (s *Service) Privileges(user, path string) auth.PrivSet {
	if user == RootUser {
		return auth.AllPrivileges()
	}
	return s.policy.Load().Privileges(user, path)
}

// Groups returns the groups user belongs to.
func (s *Service) Groups(user string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.users[user].Groups)
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func randomID(n int) string {
	b := make([]byte, n)
	randomBytes(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func randomBytes(b []byte) {
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
}
