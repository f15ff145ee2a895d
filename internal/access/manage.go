package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bulwark-project/bulwark/internal/auth"
	"github.com/bulwark-project/bulwark/internal/store"
)

// Limits on API tokens.
const (
	DefaultTokenTTL = 30 * 24 * time.Hour
	MaxTokenTTL     = 366 * 24 * time.Hour
)

// ErrInUse: the object is still referred to (HTTP 409).
var ErrInUse = errors.New("in use")

// FieldError names the offending field.
type FieldError struct{ Field, Msg string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func (s *Service) persist(ctx context.Context, create bool, kind, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if create {
		return s.st.CreateObject(ctx, kind, name, b)
	}
	return s.st.UpdateObject(ctx, kind, name, b)
}

// Users lists users.
func (s *Service) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u.public())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ValidUserName checks a user or group name: the rules of VM names (a DNS
// label: 1 to 63 lower-case letters, digits and '-', starting and ending
// with a letter or digit), so that a name is also a valid object path
// segment (/users/NAME) and cannot be "..", "a/b" or "@x".
func ValidUserName(name string) error {
	if _, err := auth.CanonicalPath("/users/" + name); err != nil || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("%q: use 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// CreateUser adds a user with no permissions and no groups; it gives
// nobody anything, so any holder of User.Manage on /users may do it.
func (s *Service) CreateUser(ctx context.Context, name string) (User, error) {
	u := User{Name: name}
	if err := ValidUserName(name); err != nil || name == RootUser {
		return u, &FieldError{Field: "name", Msg: fmt.Sprintf("%q is not a valid user name: %v", name, err)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[name]; ok {
		return u, fmt.Errorf("user %q: %w", name, store.ErrExists)
	}
	next := s.currentLocked()
	next.users[name] = u
	return u, s.applyLocked(ctx, RootUser, next, func(ctx context.Context) error {
		return s.persist(ctx, true, kindUser, name, u)
	})
}

// UpdateUser disables/enables a user or sets their groups. The actor must
// be able to act for the user (actForLocked), may not change their own
// groups, and whatever the change gives the user (enabling them, a group's
// entries) passes the no-escalation gate.
func (s *Service) UpdateUser(ctx context.Context, actor, name string, disabled *bool, groups []string) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[name]
	if !ok {
		return User{Name: name}, fmt.Errorf("user %q: %w", name, store.ErrNotFound)
	}
	if err := s.actForLocked(actor, name); err != nil {
		return u.public(), err
	}
	if groups != nil {
		if actor == name && actor != RootUser {
			return u.public(), fmt.Errorf("%w: you cannot change your own groups", ErrForbidden)
		}
		for i, g := range groups {
			if err := ValidUserName(g); err != nil {
				return u.public(), &FieldError{Field: fmt.Sprintf("groups[%d]", i), Msg: "group name " + err.Error()}
			}
		}
		u.Groups = slices.Clone(groups)
	}
	if disabled != nil {
		u.Disabled = *disabled
	}
	next := s.currentLocked()
	next.users[name] = u
	if err := s.applyLocked(ctx, actor, next, func(ctx context.Context) error {
		return s.persist(ctx, false, kindUser, name, u)
	}); err != nil {
		return s.users[name].public(), err
	}
	return u.public(), nil
}

// DeleteUser removes a user, their tokens and their permission entries.
// The actor must be able to act for the user.
func (s *Service) DeleteUser(ctx context.Context, actor, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[name]; !ok {
		return fmt.Errorf("user %q: %w", name, store.ErrNotFound)
	}
	if err := s.actForLocked(actor, name); err != nil {
		return err
	}
	if actor == name {
		return fmt.Errorf("%w: you cannot delete yourself", ErrForbidden)
	}
	next := s.currentLocked()
	delete(next.users, name)
	var permIDs []string
	for id, p := range next.perms {
		if p.User == name {
			delete(next.perms, id)
			permIDs = append(permIDs, id)
		}
	}
	return s.applyLocked(ctx, actor, next, func(ctx context.Context) error {
		if err := s.st.DeleteObject(ctx, kindUser, name); err != nil {
			return err
		}
		for _, id := range permIDs {
			s.st.DeleteObject(ctx, kindPerm, id)
		}
		for id, t := range s.toks {
			if t.User == name {
				s.st.DeleteObject(ctx, kindToken, id)
				delete(s.toks, id)
			}
		}
		return nil
	})
}

// Roles lists built-in and custom roles.
func (s *Service) Roles() []*auth.Role {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := auth.BuiltInRoles()
	var custom []*auth.Role
	for _, r := range s.roles {
		custom = append(custom, r)
	}
	sort.Slice(custom, func(i, j int) bool { return custom[i].Name < custom[j].Name })
	return append(out, custom...)
}

// CreateRole adds an empty role: a new role holds nothing.
func (s *Service) CreateRole(ctx context.Context, actor, name string) (*auth.Role, error) {
	r := auth.NewRole(name)
	if err := auth.ValidRoleName(name); err != nil {
		return r, &FieldError{Field: "name", Msg: err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range auth.BuiltInRoles() {
		if b.Name == name {
			return r, fmt.Errorf("role %q: %w", name, store.ErrExists)
		}
	}
	if _, ok := s.roles[name]; ok {
		return r, fmt.Errorf("role %q: %w", name, store.ErrExists)
	}
	next := s.currentLocked()
	next.roles[name] = r
	if _, err := s.compileLocked(next.users, next.roles, next.perms); err != nil {
		return r, &FieldError{Field: "name", Msg: err.Error()}
	}
	return r, s.applyLocked(ctx, actor, next, func(ctx context.Context) error {
		return s.persist(ctx, true, kindRole, name, r)
	})
}

// DeleteRole removes a custom role that no permission entry names.
func (s *Service) DeleteRole(ctx context.Context, actor, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.roles[name]; !ok {
		for _, b := range auth.BuiltInRoles() {
			if b.Name == name {
				return fmt.Errorf("%w: role %q", auth.ErrBuiltInRole, name)
			}
		}
		return fmt.Errorf("role %q: %w", name, store.ErrNotFound)
	}
	var users []string
	for _, p := range s.perms {
		if p.Role == name {
			users = append(users, p.ID)
		}
	}
	if len(users) > 0 {
		sort.Strings(users)
		return fmt.Errorf("role %q: %w by %d permission entries (%s); revoke them first", name, ErrInUse, len(users), strings.Join(users, ", "))
	}
	next := s.currentLocked()
	delete(next.roles, name)
	return s.applyLocked(ctx, actor, next, func(ctx context.Context) error {
		return s.st.DeleteObject(ctx, kindRole, name)
	})
}

// EditRole adds or removes one privilege. Adding a privilege needs the actor
// to hold it on "/" themselves, so nobody puts into a role power they lack;
// and what the change gives the holders of existing entries with the role
// passes the no-escalation gate, on those entries' paths.
func (s *Service) EditRole(ctx context.Context, actor, name, priv string, add bool) (*auth.Role, error) {
	p, err := auth.ParsePrivilege(priv)
	if err != nil {
		return nil, &FieldError{Field: "privilege", Msg: err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.roles[name]
	if !ok {
		for _, b := range auth.BuiltInRoles() {
			if b.Name == name {
				return nil, fmt.Errorf("%w: role %q", auth.ErrBuiltInRole, name)
			}
		}
		return nil, fmt.Errorf("role %q: %w", name, store.ErrNotFound)
	}
	if add && !s.Allowed(actor, string(p), "/") {
		return nil, fmt.Errorf("%w: you do not hold %s on / and cannot put it into a role", ErrForbidden, p)
	}
	nr := &auth.Role{Name: r.Name, Privs: r.Privs}
	if add {
		err = nr.Add(p)
	} else {
		err = nr.Remove(p)
	}
	if err != nil {
		return nil, err
	}
	next := s.currentLocked()
	next.roles[name] = nr
	if err := s.applyLocked(ctx, actor, next, func(ctx context.Context) error {
		return s.persist(ctx, false, kindRole, name, nr)
	}); err != nil {
		return nil, err
	}
	return nr, nil
}

// Permissions lists permission entries.
func (s *Service) Permissions() []Permission {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Permission, 0, len(s.perms))
	for _, p := range s.perms {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path+out[i].ID < out[j].Path+out[j].ID })
	return out
}

// Grant adds a permission entry; the actor may grant only what they hold
// there, with Permission.Manage, and never to themselves (auth.CanGrant,
// whose messages say which path falls short), and the change passes the
// no-escalation gate.
func (s *Service) Grant(ctx context.Context, actor string, p Permission) (Permission, error) {
	if (p.User == "") == (p.Group == "") {
		return p, &FieldError{Field: "user", Msg: "exactly one of user and group"}
	}
	if _, err := auth.CanonicalPath(p.Path); err != nil {
		return p, &FieldError{Field: "path", Msg: err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.User != "" {
		if _, ok := s.users[p.User]; !ok {
			return p, &FieldError{Field: "user", Msg: fmt.Sprintf("user %q does not exist", p.User)}
		}
	}
	if p.Group != "" {
		if err := ValidUserName(p.Group); err != nil {
			return p, &FieldError{Field: "group", Msg: "group name " + err.Error()}
		}
	}
	if actor != RootUser {
		if err := s.policy.Load().CanGrant(actor, p.entry()); err != nil {
			return p, err
		}
	}
	p.ID = randomID(6)
	next := s.currentLocked()
	next.perms[p.ID] = p
	if _, err := s.compileLocked(next.users, next.roles, next.perms); err != nil {
		return p, &FieldError{Field: "role", Msg: err.Error()}
	}
	return p, s.applyLocked(ctx, actor, next, func(ctx context.Context) error {
		return s.persist(ctx, true, kindPerm, p.ID, p)
	})
}

// Revoke removes a permission entry; removing can also raise power (a
// NoAccess lifted), so the same no-escalation rules apply.
func (s *Service) Revoke(ctx context.Context, actor, id string) (Permission, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.perms[id]
	if !ok {
		return p, fmt.Errorf("permission %q: %w", id, store.ErrNotFound)
	}
	if actor != RootUser {
		if err := s.policy.Load().CanRevoke(actor, p.entry()); err != nil {
			return p, err
		}
	}
	next := s.currentLocked()
	delete(next.perms, id)
	return p, s.applyLocked(ctx, actor, next, func(ctx context.Context) error {
		return s.st.DeleteObject(ctx, kindPerm, id)
	})
}

// CreateToken issues a token for user and returns it with its secret,
// which is shown this once and never stored.
func (s *Service) CreateToken(ctx context.Context, actor, user string, ttl time.Duration, desc string) (Token, string, error) {
	return s.CreateScopedToken(ctx, actor, user, ttl, desc, nil)
}

// CreateScopedToken issues a token limited to the listed privileges (nil:
// the user's full rights). A token for another user lets the actor act as
// them, so it passes actForLocked.
func (s *Service) CreateScopedToken(ctx context.Context, actor, user string, ttl time.Duration, desc string, scope []string) (Token, string, error) {
	if scope != nil {
		if len(scope) == 0 {
			return Token{}, "", &FieldError{Field: "scope", Msg: "an empty scope would allow nothing; omit it for the user's full rights"}
		}
		for i, p := range scope {
			if _, err := auth.ParsePrivilege(p); err != nil {
				return Token{}, "", &FieldError{Field: fmt.Sprintf("scope[%d]", i), Msg: err.Error()}
			}
		}
	}
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < time.Minute || ttl > MaxTokenTTL {
		return Token{}, "", &FieldError{Field: "ttl", Msg: fmt.Sprintf("%v out of range 1m..%v", ttl, MaxTokenTTL)}
	}
	if len(desc) > 256 {
		return Token{}, "", &FieldError{Field: "description", Msg: "longer than 256 bytes"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[user]; !ok || u.Disabled {
		return Token{}, "", &FieldError{Field: "user", Msg: fmt.Sprintf("user %q does not exist or is disabled", user)}
	}
	if err := s.actForLocked(actor, user); err != nil {
		return Token{}, "", err
	}
	return s.issueLocked(ctx, user, KindAPI, "bwk_", ttl, desc, scope)
}

// issueLocked creates and stores a token of kind for user.
func (s *Service) issueLocked(ctx context.Context, user, kind, prefix string, ttl time.Duration, desc string, scope []string) (Token, string, error) {
	secret := prefix + randomID(32)
	now := s.now().UTC()
	t := Token{ID: randomID(6), User: user, Kind: kind, Hash: hashSecret(secret), Created: now, Expires: now.Add(ttl), Description: desc, Scope: scope}
	if err := s.persist(ctx, true, kindToken, t.ID, t); err != nil {
		return Token{}, "", err
	}
	s.toks[t.ID] = t
	return t, secret, s.recompileLocked()
}

// Tokens lists API and session tokens (without hashes).
func (s *Service) Tokens() []Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Token, 0, len(s.toks))
	for _, t := range s.toks {
		t.Hash = ""
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// Token returns one token (without its hash).
func (s *Service) Token(id string) (Token, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.toks[id]
	t.Hash = ""
	return t, ok
}

// RevokeToken deletes a token or session; requests using it fail from now
// on. Ending another user's tokens needs the right to act for them.
func (s *Service) RevokeToken(ctx context.Context, actor, id string) (Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.toks[id]
	t.Hash = ""
	if !ok {
		return t, fmt.Errorf("token %q: %w", id, store.ErrNotFound)
	}
	if err := s.actForLocked(actor, t.User); err != nil {
		return t, err
	}
	if err := s.st.DeleteObject(ctx, kindToken, id); err != nil {
		return t, err
	}
	delete(s.toks, id)
	return t, s.recompileLocked()
}

// CanActFor reports why actor may not act for user (nil when they may):
// the rule for tokens, passwords and account changes.
func (s *Service) CanActFor(actor, user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[user]; !ok {
		return fmt.Errorf("user %q: %w", user, store.ErrNotFound)
	}
	return s.actForLocked(actor, user)
}

// SetPasswordFor sets another user's password (or the actor's own) after
// the act-for check: a password, like a token, lets its setter act as the
// user.
func (s *Service) SetPasswordFor(ctx context.Context, actor, user, password string) error {
	if err := s.CanActFor(actor, user); err != nil {
		return err
	}
	return s.SetPassword(ctx, user, password)
}

// PermissionPath returns the object path of a permission entry ("" if there
// is no such entry).
func (s *Service) PermissionPath(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perms[id].Path
}
