package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/bulwark-project/bulwark/internal/access"
	"github.com/bulwark-project/bulwark/internal/auth"
)

// SetAccess turns on authentication and authorization for every route.
// Without it only the local root on the Unix socket is served.
func (s *Server) SetAccess(a *access.Service) { s.access = a }

// authorize authenticates the request and checks the route's privilege on
// its object. It returns the request with the caller's identity attached.
func (s *Server) authorize(r *http.Request, rt Route) (*http.Request, error) {
	caller := CallerFrom(r.Context())
	obj := ""
	if !rt.List && !rt.Self {
		obj = rt.Object(r)
	}
	user, err := s.check(caller.UID, credentials(r), rt.Priv, obj)
	if user != "" {
		caller.User = user
		r = r.WithContext(context.WithValue(r.Context(), callerKey{}, caller))
	}
	return r, err
}

// check authenticates a socket peer uid and credentials and checks priv on
// obj (only the token's scope when obj is empty: list routes filter). It returns the user (once known) and an *httpError: 401 when the
// caller cannot be identified, 403 when they lack the privilege.
func (s *Server) check(uid int, cred, priv, obj string) (string, error) {
	if s.access == nil {
		if uid != 0 {
			return "", &httpError{code: http.StatusUnauthorized, msg: "unauthenticated: only the local root may use this daemon"}
		}
		return access.RootUser, nil
	}
	id, err := s.access.Identify(uid, cred)
	if err != nil {
		return "", &httpError{code: http.StatusUnauthorized, msg: err.Error()}
	}
	if priv != "" && !id.Permits(priv) {
		return id.User, &httpError{code: http.StatusForbidden, msg: fmt.Sprintf("this token's scope does not include %s", priv)}
	}
	if obj == "" {
		return id.User, nil // a list or self route: the handler filters per object
	}
	if !s.access.Allowed(id.User, priv, obj) {
		return id.User, &httpError{code: http.StatusForbidden, msg: fmt.Sprintf("user %q lacks %s on %s", id.User, priv, obj)}
	}
	return id.User, nil
}

// accessError maps the access service's errors to HTTP.
func accessError(err error) (*httpError, bool) {
	var fe *access.FieldError
	switch {
	case errors.As(err, &fe):
		return &httpError{code: http.StatusBadRequest, msg: fe.Error(), field: fe.Field}, true
	case errors.Is(err, auth.ErrForbidden), errors.Is(err, auth.ErrBuiltInRole):
		return &httpError{code: http.StatusForbidden, msg: err.Error()}, true
	case errors.Is(err, access.ErrInUse):
		return &httpError{code: http.StatusConflict, msg: err.Error()}, true
	case errors.Is(err, auth.ErrUnknownPrivilege), errors.Is(err, auth.ErrInvalidPath), errors.Is(err, auth.ErrUnknownRole):
		return &httpError{code: http.StatusBadRequest, msg: err.Error()}, true
	}
	return nil, false
}

// SessionCookie carries a web session (set by POST /api/v1/login).
const SessionCookie = "bulwark_session"

// CSRFHeader must accompany a state-changing request authenticated by the
// session cookie: a cross-site form or script cannot set it without a CORS
// preflight, which the daemon never grants.
const CSRFHeader = "X-Bulwark-CSRF"

// credentials returns the Authorization header, or the session cookie as a
// bearer credential (for changes only together with CSRFHeader).
func credentials(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		return h
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return ""
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get(CSRFHeader) == "" {
		return "" // unauthenticated: 401
	}
	return "Bearer " + c.Value
}

// callerScope returns the privilege scope of the request's token (nil: the
// user's full rights, or the local root).
func (s *Server) callerScope(r *http.Request) []string {
	if s.access == nil {
		return nil
	}
	id, err := s.access.Identify(CallerFrom(r.Context()).UID, credentials(r))
	if err != nil {
		return []string{} // cannot happen after authorize; fail closed
	}
	return id.Scope
}
