package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/bulwark-project/bulwark/internal/auth"
)

type serverKey struct{}

// withServer lets Object functions that need the server's state find it.
func withServer(r *http.Request, s *Server) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), serverKey{}, s))
}

// grantObj is the object a grant is checked on: the path in the request
// body, so that a delegate holding Permission.Manage on /vms may grant
// there. The body is read (bounded) and put back for the handler. A missing
// or invalid path is checked on "/", where the handler reports it.
func grantObj(r *http.Request) string {
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes))
	r.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return "/"
	}
	var in struct {
		Path string `json:"path"`
	}
	if json.Unmarshal(b, &in) != nil {
		return "/"
	}
	if p, err := auth.CanonicalPath(in.Path); err == nil {
		return p
	}
	return "/"
}

// revokeObj is the path of the entry being removed ("/" if unknown).
func revokeObj(r *http.Request) string {
	if s, ok := r.Context().Value(serverKey{}).(*Server); ok && s.access != nil {
		if p := s.access.PermissionPath(r.PathValue("id")); p != "" {
			return p
		}
	}
	return "/"
}
