package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/bulwark-project/bulwark/internal/access"
	"github.com/bulwark-project/bulwark/internal/audit"
)

// The audit trail of API requests fails closed: a change whose record
// cannot be written is not made. wrap records the intent of every request
// that may change something (every method but GET and HEAD, and a memory
// dump) before its handler runs, and answers 503 without running it when
// that append fails; after the handler it records the outcome, naming the
// object acted on (auditTarget). A failed outcome append is logged loudly:
// the intent is already in the log, so the change is not unrecorded.

// ResultIntent marks the record written before a change is attempted; the
// outcome follows in a second record with the same action.
const ResultIntent = "intent"

// auditNote is what a handler tells the audit trail about the object it
// acted on; wrap hands every request a fresh one.
type auditNote struct {
	object string
	detail string
}

type auditNoteKey struct{}

// auditTarget names what the request acted on: the object's path and a
// description (who a token is for, which role was granted on which path to
// whom). The outcome record carries both.
func auditTarget(r *http.Request, object, format string, args ...any) {
	if n, ok := r.Context().Value(auditNoteKey{}).(*auditNote); ok {
		n.object = object
		n.detail = fmt.Sprintf(format, args...)
	}
}

func withAuditNote(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), auditNoteKey{}, &auditNote{}))
}

// describePerm names a permission entry for an audit record.
func describePerm(p access.Permission) string {
	subj := "user " + p.User
	if p.Group != "" {
		subj = "group " + p.Group
	}
	prop := "this path only"
	if p.Propagate {
		prop = "propagating"
	}
	return fmt.Sprintf("entry %s: role %s on %s to %s (%s)", p.ID, p.Role, p.Path, subj, prop)
}

// changes reports whether a request to rt may change state, so that its
// intent must be recorded first. A memory dump changes nothing but
// carries the tenant's secrets, so it is treated as one.
func changes(r *http.Request, rt Route) bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead || rt.OpID == "vmiDump" || rt.OpID == "exportVolume"
}

// recordIntent appends the intent record of a request that may change
// state. An error means the change must not be made.
func (s *Server) recordIntent(r *http.Request, rt Route) error {
	if s.audit == nil {
		return nil
	}
	caller := CallerFrom(r.Context())
	obj := r.URL.Path
	if rt.Object != nil {
		obj = rt.Object(r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.audit.Append(ctx, audit.Record{Time: time.Now().UTC(), User: caller.User, Action: rt.OpID,
		Object: obj, Result: ResultIntent, Source: caller.Source,
		Detail: fmt.Sprintf("%s %s", r.Method, r.URL.RequestURI())})
	if err != nil {
		s.log.Error("AUDIT APPEND FAILED: change refused", "op", rt.OpID, "user", caller.User, "object", obj, "err", err)
		return &httpError{code: http.StatusServiceUnavailable,
			msg: "the audit log cannot record this change, so it was not made: " + err.Error()}
	}
	return nil
}

// record appends the outcome of one request to the audit log: who (the
// caller), what (the operation), the object acted on, the result and the
// source. Reads are not recorded; denied reads are, and so is a memory
// dump. It runs after the handler, so the result is known; a failure to
// record is logged loudly (the intent record is already there).
func (s *Server) record(r *http.Request, rt Route, code int, errMsg string) {
	denied := code == http.StatusForbidden || code == http.StatusUnauthorized || code == http.StatusTooManyRequests
	if s.audit == nil || (!changes(r, rt) && !denied) {
		return
	}
	caller := CallerFrom(r.Context())
	obj := r.URL.Path
	if rt.Object != nil {
		obj = rt.Object(r)
	}
	detail := fmt.Sprintf("%s %s -> %d", r.Method, r.URL.RequestURI(), code)
	if n, ok := r.Context().Value(auditNoteKey{}).(*auditNote); ok && n.object != "" {
		obj = n.object
		detail = n.detail + "; " + detail
	}
	result := audit.ResultOK
	switch {
	case denied:
		result = audit.ResultDenied
	case code >= 400:
		result = audit.ResultFailed
	}
	if errMsg != "" {
		detail += ": " + errMsg
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.audit.Append(ctx, audit.Record{Time: time.Now().UTC(), User: caller.User, Action: rt.OpID,
		Object: obj, Result: result, Source: caller.Source, Detail: detail}); err != nil {
		s.log.Error("AUDIT APPEND FAILED", "op", rt.OpID, "user", caller.User, "object", obj, "result", result, "err", err)
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
