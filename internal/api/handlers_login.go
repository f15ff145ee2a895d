package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/bulwark-project/bulwark/internal/access"
)

// login exchanges a user name and password for a session token. It is a
// public route: the password is the credential. Every answer but success
// is "invalid credentials" (401) or, while the name from this address, the
// address or the name is locked out, 429 with Retry-After. Every refusal
// is logged with its reason, the name tried and the throttling address.
func (s *Server) login(w http.ResponseWriter, r *http.Request) (err error) {
	var in struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}
	source := loginSource(CallerFrom(r.Context()))
	defer func() {
		if err != nil {
			s.log.Warn("login refused", "reason", loginRefusal(err), "user", logName(in.User), "address", source)
		}
	}()
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
	tok, secret, err := s.access.Login(r.Context(), in.User, in.Password, source)
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

// loginRefusal is the reason a refused login is logged with.
func loginRefusal(err error) string {
	var he *httpError
	switch {
	case errors.As(err, &he) && he.code == http.StatusTooManyRequests:
		return "locked out: " + he.msg // names the lock (name from address, address, name)
	case errors.As(err, &he) && he.code == http.StatusUnauthorized:
		return "invalid credentials" // wrong password, unknown, disabled or password-less user: one answer
	case errors.As(err, &he) && he.code == http.StatusBadRequest:
		return "bad request: " + he.msg
	}
	return err.Error()
}

// logName is a user name as logged: a request may carry up to a MiB of it.
func logName(name string) string {
	const max = 128
	if len(name) <= max {
		return name
	}
	return name[:max] + "... (" + strconv.Itoa(len(name)) + " bytes)"
}

// loginSource is the address logins are throttled by, together with the
// user name (see access/lockout.go): on the Unix socket the peer's uid
// ("unix:uid=1000"; SO_PEERCRED cannot be forged), over TCP the remote IP
// without its port (a client picks a new port per connection), and for
// IPv6 its /64, which one host commonly holds whole. Forwarding headers are
// ignored: clients can forge them.
func loginSource(c Caller) string {
	if c.Source == "unix" {
		return "unix:uid=" + strconv.Itoa(c.UID)
	}
	host := c.Source
	if h, _, err := net.SplitHostPort(c.Source); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		return netip.PrefixFrom(ip.WithZone(""), 64).Masked().String()
	}
	return ip.String()
}

func (s *Server) setPassword(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Password string `json:"password"`
	}
	if err := decodeStrict(r.Body, &in); err != nil {
		return err
	}
	if sc := s.callerScope(r); sc != nil {
		// A password gives its user's full rights at the next login.
		return &httpError{code: http.StatusForbidden, msg: fmt.Sprintf("a token limited to %v cannot set passwords", sc)}
	}
	if err := s.access.SetPasswordFor(r.Context(), actor(r), r.PathValue("name"), in.Password); err != nil {
		return err
	}
	auditTarget(r, "/users/"+r.PathValue("name"), "password of user %s set", r.PathValue("name"))
	w.WriteHeader(http.StatusNoContent)
	return nil
}
