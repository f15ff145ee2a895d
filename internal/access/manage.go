package access

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/bulwark-project/bulwark/internal/auth"
	"github.com/bulwark-project/bulwark/internal/store"
)

// Limits on API tokens.
const (
	DefaultTokenTTL = 30 * 24 * time.Hour
	MaxTokenTTL     = 366 * 24 * time.Hour
)

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

// CreateUser adds a user with no permissions.
func (s *Service) CreateUser(ctx context.Context, name string) (User, error) {
	u := User{Name: name}
	if err := auth.ValidSubjectName(name); err != nil || name == RootUser {
		return u, &FieldError{Field: "name", Msg: fmt.Sprintf("%q is not a valid user name", name)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[name]; ok {
		return u, fmt.Errorf("user %q: %w", name, store.ErrExists)
	}
	if err := s.persist(ctx, true, kindUser, name, u); err != nil {
		return u, err
	}
	s.users[name] = u
	return u, s.recompileLocked()
}

// UpdateUser disables/enables a user or sets their groups. An actor may not
// change their own groups (that would be editing their own power).
func (s *Service) UpdateUser(ctx context.Context, actor, name string, disabled *bool, groups []string) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[name]
	if !ok {
		return User{Name: name}, fmt.Errorf("user %q: %w", name, store.ErrNotFound)
	}
	if groups != nil {
		if actor == name && actor != RootUser {
			return u.public(), fmt.Errorf("%w: you cannot change your own groups", ErrForbidden)
		}
		for i, g := range groups {
			if err := auth.ValidSubjectName(g); err != nil {
				return u.public(), &FieldError{Field: fmt.Sprintf("groups[%d]", i), Msg: err.Error()}
			}
		}
		u.Groups = slices.Clone(groups)
	}
	if disabled != nil {
		u.Disabled = *disabled
	}
	old := s.users[name]
	s.users[name] = u
	if err := s.recompileLocked(); err != nil {
		s.users[name] = old
		return old.public(), err
	}
	if err := s.persist(ctx, false, kindUser, name, u); err != nil {
		s.users[name] = old
		s.recompileLocked()
		return old.public(), err
	}
	return u.public(), nil
}

// DeleteUser removes a user, their tokens and their permission entries.
func (s *Service) DeleteUser(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[name]; !ok {
		return fmt.Errorf("user %q: %w", name, store.ErrNotFound)
	}
	for id, t := range s.toks {
		if t.User == name {
			s.st.DeleteObject(ctx, kindToken, id)
			delete(s.toks, id)
		}
	}
	for id, p := range s.perms {
		if p.User == name {
			s.st.DeleteObject(ctx, kindPerm, id)
			delete(s.perms, id)
		}
	}
	if err := s.st.DeleteObject(ctx, kindUser, name); err != nil {
		return err
	}
	delete(s.users, name)
	return s.recompileLocked()
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
func (s *Service) CreateRole(ctx context.Context, name string) (*auth.Role, error) {
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
	roles := cloneRoles(s.roles)
	roles[name] = r
	if _, err := s.compileLocked(roles, s.perms); err != nil {
		return r, &FieldError{Field: "name", Msg: err.Error()}
	}
	if err := s.persist(ctx, true, kindRole, name, r); err != nil {
		return r, err
	}
	s.roles = roles
	return r, s.recompileLocked()
}

// EditRole adds or removes one privilege. Adding a privilege needs the actor
// to hold it on "/" themselves, so nobody hands out power they lack.
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
	roles := cloneRoles(s.roles)
	roles[name] = nr
	if err := s.persist(ctx, false, kindRole, name, nr); err != nil {
		return nil, err
	}
	s.roles = roles
	return nr, s.recompileLocked()
}

func cloneRoles(m map[string]*auth.Role) map[string]*auth.Role {
	out := make(map[string]*auth.Role, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
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
// there, with Permission.Manage, and never to themselves.
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
	if actor != RootUser {
		if err := s.policy.Load().CanGrant(actor, p.entry()); err != nil {
			return p, err
		}
	}
	p.ID = randomID(6)
	perms := make(map[string]Permission, len(s.perms)+1)
	for k, v := range s.perms {
		perms[k] = v
	}
	perms[p.ID] = p
	if _, err := s.compileLocked(s.roles, perms); err != nil {
		return p, &FieldError{Field: "role", Msg: err.Error()}
	}
	if err := s.persist(ctx, true, kindPerm, p.ID, p); err != nil {
		return p, err
	}
	s.perms = perms
	return p, s.recompileLocked()
}

// Revoke removes a permission entry; removing can also raise power (a
// NoAccess lifted), so the same no-escalation rules apply.
func (s *Service) Revoke(ctx context.Context, actor, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.perms[id]
	if !ok {
		return fmt.Errorf("permission %q: %w", id, store.ErrNotFound)
	}
	if actor != RootUser {
		if err := s.policy.Load().CanRevoke(actor, p.entry()); err != nil {
			return err
		}
	}
	if err := s.st.DeleteObject(ctx, kindPerm, id); err != nil {
		return err
	}
	delete(s.perms, id)
	return s.recompileLocked()
}

// CreateToken issues a token for user and returns it with its secret,
// which is shown this once and never stored.
func (s *Service) CreateToken(ctx context.Context, user string, ttl time.Duration, desc string) (Token, string, error) {
	return s.CreateScopedToken(ctx, user, ttl, desc, nil)
}

// CreateScopedToken issues a token limited to the listed privileges (nil:
// the user's full rights).
func (s *Service) CreateScopedToken(ctx context.Context, user string, ttl time.Duration, desc string, scope []string) (Token, string, error) {
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

// RevokeToken deletes a token or session; requests using it fail from now on.
func (s *Service) RevokeToken(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.toks[id]; !ok {
		return fmt.Errorf("token %q: %w", id, store.ErrNotFound)
	}
	if err := s.st.DeleteObject(ctx, kindToken, id); err != nil {
		return err
	}
	delete(s.toks, id)
	return s.recompileLocked()
}

// PermissionPath returns the object path of a permission entry ("" if there
// is no such entry).
func (s *Service) PermissionPath(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perms[id].Path
}
