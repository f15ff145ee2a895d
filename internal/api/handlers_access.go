package api

import (
	"net/http"
	"time"

	"github.com/bulwark-project/bulwark/internal/access"
	"github.com/bulwark-project/bulwark/internal/auth"
)

func usersRoot(*http.Request) string { return "/users" }
func userObj(r *http.Request) string { return "/users/" + r.PathValue("name") }
func rolesRoot(*http.Request) string { return "/roles" }
func roleObj(r *http.Request) string { return "/roles/" + r.PathValue("name") }

// needAccess wraps the access-management handlers: without an access
// service there is nothing to manage.
func needAccess(h func(s *Server, w http.ResponseWriter, r *http.Request) error) func(s *Server, w http.ResponseWriter, r *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		if s.access == nil {
			return &httpError{code: http.StatusServiceUnavailable, msg: "access control not configured"}
		}
		return h(s, w, r)
	}
}

func actor(r *http.Request) string { return CallerFrom(r.Context()).User }

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	see := s.visible(r, PrivUserManage)
	return writeList(w, filterSlice(s.access.Users(), see, func(u access.User) string { return "/users/" + u.Name }))
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name string `json:"name"`
	}
	if err := decodeStrict(r.Body, &in); err != nil {
		return err
	}
	u, err := s.access.CreateUser(r.Context(), in.Name)
	if err != nil {
		return err
	}
	auditTarget(r, "/users/"+u.Name, "created user %s", u.Name)
	return writeJSON(w, http.StatusCreated, u)
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Disabled *bool    `json:"disabled"`
		Groups   []string `json:"groups"`
	}
	if err := decodeStrict(r.Body, &in); err != nil {
		return err
	}
	u, err := s.access.UpdateUser(r.Context(), actor(r), r.PathValue("name"), in.Disabled, in.Groups)
	if err != nil {
		return err
	}
	auditTarget(r, "/users/"+u.Name, "user %s now disabled=%t groups=%v", u.Name, u.Disabled, u.Groups)
	return writeJSON(w, http.StatusOK, u)
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	if err := s.access.DeleteUser(r.Context(), actor(r), r.PathValue("name")); err != nil {
		return err
	}
	auditTarget(r, "/users/"+r.PathValue("name"), "deleted user %s with their tokens and entries", r.PathValue("name"))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listPrivileges(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, auth.Catalogue())
}

func (s *Server) listRoles(w http.ResponseWriter, r *http.Request) error {
	see := s.visible(r, PrivRoleManage)
	all := see("/roles")
	return writeList(w, filterSlice(s.access.Roles(), func(obj string) bool { return all || see(obj) },
		func(role *auth.Role) string { return "/roles/" + role.Name }))
}

func (s *Server) createRole(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name string `json:"name"`
	}
	if err := decodeStrict(r.Body, &in); err != nil {
		return err
	}
	role, err := s.access.CreateRole(r.Context(), actor(r), in.Name)
	if err != nil {
		return err
	}
	auditTarget(r, "/roles/"+role.Name, "created role %s (empty)", role.Name)
	return writeJSON(w, http.StatusCreated, role)
}

func (s *Server) deleteRole(w http.ResponseWriter, r *http.Request) error {
	if err := s.access.DeleteRole(r.Context(), actor(r), r.PathValue("name")); err != nil {
		return err
	}
	auditTarget(r, "/roles/"+r.PathValue("name"), "deleted role %s", r.PathValue("name"))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) addRolePriv(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Privilege string `json:"privilege"`
	}
	if err := decodeStrict(r.Body, &in); err != nil {
		return err
	}
	role, err := s.access.EditRole(r.Context(), actor(r), r.PathValue("name"), in.Privilege, true)
	if err != nil {
		return err
	}
	auditTarget(r, "/roles/"+role.Name, "added %s to role %s, now %s", in.Privilege, role.Name, role.Privs)
	return writeJSON(w, http.StatusOK, role)
}

func (s *Server) removeRolePriv(w http.ResponseWriter, r *http.Request) error {
	role, err := s.access.EditRole(r.Context(), actor(r), r.PathValue("name"), r.PathValue("priv"), false)
	if err != nil {
		return err
	}
	auditTarget(r, "/roles/"+role.Name, "removed %s from role %s, now %s", r.PathValue("priv"), role.Name, role.Privs)
	return writeJSON(w, http.StatusOK, role)
}

func (s *Server) listPerms(w http.ResponseWriter, r *http.Request) error {
	see := s.visible(r, PrivPermManage)
	return writeList(w, filterSlice(s.access.Permissions(), see, func(p access.Permission) string { return p.Path }))
}

func (s *Server) grantPerm(w http.ResponseWriter, r *http.Request) error {
	var p access.Permission
	if err := decodeStrict(r.Body, &p); err != nil {
		return err
	}
	if p.ID != "" {
		return badRequest("id", "the id is assigned by the daemon")
	}
	p, err := s.access.Grant(r.Context(), actor(r), p)
	if err != nil {
		return err
	}
	auditTarget(r, p.Path, "granted %s", describePerm(p))
	return writeJSON(w, http.StatusCreated, p)
}

func (s *Server) revokePerm(w http.ResponseWriter, r *http.Request) error {
	p, err := s.access.Revoke(r.Context(), actor(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	auditTarget(r, p.Path, "revoked %s", describePerm(p))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	see, me := s.visible(r, PrivUserManage), actor(r)
	return writeList(w, filterSlice(s.access.Tokens(), func(owner string) bool { return owner == me || see("/users/"+owner) },
		func(t access.Token) string { return t.User }))
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		User        string   `json:"user"`
		TTLSeconds  int64    `json:"ttl_seconds"`
		Description string   `json:"description"`
		Scope       []string `json:"scope"`
	}
	if err := decodeStrict(r.Body, &in); err != nil {
		return err
	}
	scope, err := access.NarrowScope(s.callerScope(r), in.Scope)
	if err != nil {
		return err
	}
	in.Scope = scope
	t, secret, err := s.access.CreateScopedToken(r.Context(), actor(r), in.User, time.Duration(in.TTLSeconds)*time.Second, in.Description, in.Scope)
	if err != nil {
		return err
	}
	t.Hash = ""
	auditTarget(r, "/users/"+t.User, "created API token %s for user %s, expires %s, scope %v", t.ID, t.User, t.Expires.Format(time.RFC3339), t.Scope)
	return writeJSON(w, http.StatusCreated, map[string]any{"token": t, "secret": secret})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	t, err := s.access.RevokeToken(r.Context(), actor(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	auditTarget(r, "/users/"+t.User, "revoked %s token %s of user %s", t.Kind, t.ID, t.User)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// whoami describes the caller: identity, groups, the token's scope and the
// effective privileges on a path (?path=, default /).
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) error {
	path := r.URL.Query().Get("path")
	if path == "" {
		path = "/"
	}
	if _, err := auth.CanonicalPath(path); err != nil {
		return badRequest("path", "%v", err)
	}
	c := CallerFrom(r.Context())
	out := map[string]any{"user": c.User, "source": c.Source, "path": path, "groups": []string{}}
	if s.access == nil {
		out["privileges"] = auth.AllPrivileges().Privileges()
		return writeJSON(w, http.StatusOK, out)
	}
	id, err := s.access.Identify(c.UID, credentials(r))
	if err != nil {
		return &httpError{code: http.StatusUnauthorized, msg: err.Error()}
	}
	privs := s.access.Privileges(id.User, path)
	if id.Scope != nil {
		scoped, _ := auth.NewPrivSet(toPrivs(id.Scope)...)
		privs = privs.Minus(privs.Minus(scoped))
		out["token_scope"] = id.Scope
	}
	if g := s.access.Groups(id.User); g != nil {
		out["groups"] = g
	}
	out["privileges"] = privs.Privileges()
	return writeJSON(w, http.StatusOK, out)
}

func toPrivs(names []string) []auth.Privilege {
	out := make([]auth.Privilege, 0, len(names))
	for _, n := range names {
		if p, err := auth.ParsePrivilege(n); err == nil {
			out = append(out, p)
		}
	}
	return out
}
