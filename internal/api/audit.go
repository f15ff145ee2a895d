package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-project/bulwark/internal/audit"
)

// SetAudit makes the server record every mutating request in log.
func (s *Server) SetAudit(log *audit.Log) { s.audit = log }

func auditObj(*http.Request) string { return "/audit" }

// record appends one request to the audit log: who (the socket peer's
// user), what (the operation), the object, the result and the source. It
// runs after the handler, so the result is known; a failure to record is
// logged loudly (the action has happened).
func (s *Server) record(r *http.Request, rt Route, code int, errMsg string) {
	denied := code == http.StatusForbidden || code == http.StatusUnauthorized || code == http.StatusTooManyRequests
	// Reads are not recorded, denied reads are, and so is a memory dump
	// (it carries the tenant's secrets).
	if s.audit == nil || (r.Method == http.MethodGet && !denied && rt.OpID != "vmiDump") {
		return
	}
	caller := CallerFrom(r.Context())
	obj := r.URL.Path
	if rt.Object != nil {
		obj = rt.Object(r)
	}
	result := audit.ResultOK
	switch {
	case denied:
		result = audit.ResultDenied
	case code >= 400:
		result = audit.ResultFailed
	}
	detail := fmt.Sprintf("%s %s -> %d", r.Method, r.URL.RequestURI(), code)
	if errMsg != "" {
		detail += ": " + errMsg
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.audit.Append(ctx, audit.Record{Time: time.Now().UTC(), User: caller.User, Action: rt.OpID,
		Object: obj, Result: result, Source: caller.Source, Detail: detail}); err != nil {
		s.log.Error("AUDIT APPEND FAILED", "op", rt.OpID, "object", obj, "err", err)
	}
}

// setAuditUser names the user a public route acts for, such as the name a
// login claims, so that record puts it in the audit record even when the
// login fails. The request is updated in place because record reads the
// request that wrap handed to the handler.
func setAuditUser(r *http.Request, user string) {
	c := CallerFrom(r.Context())
	c.User = user
	*r = *r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
}

func (s *Server) needAudit() error {
	if s.audit == nil {
		return &httpError{code: http.StatusServiceUnavailable, msg: "audit log not open"}
	}
	return nil
}

func auditFilter(r *http.Request) (audit.Filter, error) {
	q := r.URL.Query()
	f := audit.Filter{User: q.Get("user"), Object: q.Get("object")}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, badRequest(p.name, "%s=%q is not an RFC 3339 time", p.name, v)
			}
			*p.dst = t
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.MaxListLimit {
			return f, badRequest("limit", "limit=%q must be 1..%d", v, audit.MaxListLimit)
		}
		f.Limit = n
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return f, badRequest("after", "after=%q is not a sequence number", v)
		}
		f.After = n
	}
	return f, nil
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	if err := s.needAudit(); err != nil {
		return err
	}
	f, err := auditFilter(r)
	if err != nil {
		return err
	}
	recs, err := s.audit.List(r.Context(), f)
	if err != nil {
		return err
	}
	if recs == nil {
		recs = []audit.Record{}
	}
	return writeJSON(w, http.StatusOK, recs)
}

func (s *Server) exportAudit(w http.ResponseWriter, r *http.Request) error {
	if err := s.needAudit(); err != nil {
		return err
	}
	f, err := auditFilter(r)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	return s.audit.ExportJSONL(r.Context(), w, f)
}

func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) error {
	if err := s.needAudit(); err != nil {
		return err
	}
	rep, err := s.audit.Verify(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"ok": rep.OK(), "records": rep.Records,
		"checkpoints": rep.Checkpoints, "problems": rep.Problems})
}
