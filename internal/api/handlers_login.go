package api

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-project/bulwark/internal/access"
)

// login exchanges a user name and password for a session token. It is a
// public route: the password is the credential. Every answer but success
// is "invalid credentials" (401) or, while the name or the source is
// locked out, 429 with Retry-After.
func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}
	if err := decodeStrict(r.Body, &in); err != nil {
		return err
	}
	setAuditUser(r, in.User)
	if in.User == "" {
		return badRequest("user", "user is required")
	}
	if in.Password == "" {
		return badRequest("password", "password is required")
	}
	tok, secret, err := s.access.Login(r.Context(), in.User, in.Password, loginSource(CallerFrom(r.Context())))
	var le *access.LockedError
	switch {
	case errors.As(err, &le):
		w.Header().Set("Retry-After", strconv.Itoa(int(le.Wait/time.Second)))
		return &httpError{code: http.StatusTooManyRequests, msg: le.Error()}
	case errors.Is(err, access.ErrInvalidCredentials):
		return &httpError{code: http.StatusUnauthorized, msg: access.ErrInvalidCredentials.Error()}
	case err != nil:
		return err
	}
	tok.Hash = ""
	// Browsers keep the session in an HttpOnly cookie scripts cannot read;
	// the CLI uses the secret from the body as a bearer token.
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: secret, Path: "/", Expires: tok.Expires,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	return writeJSON(w, http.StatusOK, map[string]any{"token": tok, "secret": secret})
}

// loginSource is the key logins are throttled by: the remote IP without
// its port (a client picks a new port per connection), or the peer's uid on
// the Unix socket. Forwarding headers are ignored: clients can forge them.
func loginSource(c Caller) string {
	if c.Source == "unix" {
		return "unix:uid=" + strconv.Itoa(c.UID)
	}
	if host, _, err := net.SplitHostPort(c.Source); err == nil {
		return host
	}
	return c.Source
}

func (s *Server) setPassword(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Password string `json:"password"`
	}
	if err := decodeStrict(r.Body, &in); err != nil {
		return err
	}
	if err := s.access.SetPasswordFor(r.Context(), actor(r), r.PathValue("name"), in.Password); err != nil {
		return err
	}
	auditTarget(r, "/users/"+r.PathValue("name"), "password of user %s set", r.PathValue("name"))
	w.WriteHeader(http.StatusNoContent)
	return nil
}
