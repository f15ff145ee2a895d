package api

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-project/bulwark/internal/audit"
)

// SetAudit makes the server record every mutating request in log.
func (s *Server) SetAudit(log *audit.Log) { s.audit = log }

func auditObj(*http.Request) string { return "/audit" }

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
	for _, p := range []struct {
		name string
		dst  *uint64
	}{{"after", &f.After}, {"before", &f.Before}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return f, badRequest(p.name, "%s=%q is not a sequence number", p.name, v)
			}
			*p.dst = n
		}
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
	// Newest first unless asked otherwise: an operator looks for what just
	// happened. Page with before= (desc) or after= (asc).
	switch o := r.URL.Query().Get("order"); o {
	case "", "desc":
		f.Desc = true
	case "asc":
	default:
		return badRequest("order", "order=%q must be asc or desc", o)
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
	// Exports are oldest first, as a verifier reads them.
	switch format := r.URL.Query().Get("format"); format {
	case "", "jsonl":
		w.Header().Set("Content-Type", "application/x-ndjson")
		return s.audit.ExportJSONL(r.Context(), w, f)
	case "syslog":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		return s.audit.ExportSyslog(r.Context(), w, f, s.info.Hostname)
	default:
		return badRequest("format", "format=%q must be jsonl or syslog", format)
	}
}

func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) error {
	if err := s.needAudit(); err != nil {
		return err
	}
	rep, err := s.audit.Verify(r.Context())
	if err != nil {
		return err
	}
	problems := rep.Problems
	if problems == nil {
		problems = []audit.Problem{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"ok": rep.OK(), "records": rep.Records,
		"checkpoints": rep.Checkpoints, "anchor_files": rep.AnchorFiles, "anchors": rep.Anchors,
		"unanchored": rep.Unanchored, "signing": len(s.audit.Damage()) == 0,
		"public_key": hex.EncodeToString(s.audit.PublicKey()), "problems": problems})
}
