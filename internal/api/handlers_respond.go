package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/bulwark-project/bulwark/internal/respond"
)

// Automatic response to introspection findings (internal/respond; the
// daemon side is internal/daemon/respond.go): the response policy, and
// lifting a quarantine.

// Responder is the daemon's response service. The response routes are
// served when the Introspector given to SetIntrospection also implements
// Responder: a response acts on what introspection finds, so the daemon's
// gateway carries both.
type Responder interface {
	// ResponsePolicy returns the policy in force (not to be modified).
	ResponsePolicy() *respond.Policy
	// SetResponsePolicy stores p and puts it in force.
	SetResponsePolicy(ctx context.Context, p *respond.Policy) error
	// Quarantined lists the quarantined VMs.
	Quarantined() []string
	// Release lifts a VM's quarantine; false: it was not quarantined.
	Release(ctx context.Context, vm string) (bool, error)
}

func needResponder(h func(*Server, Responder, http.ResponseWriter, *http.Request) error) func(*Server, http.ResponseWriter, *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		rs, ok := s.vmi.(Responder)
		if !ok {
			return &httpError{code: http.StatusServiceUnavailable, msg: "automatic response is not enabled on this daemon"}
		}
		return h(s, rs, w, r)
	}
}

// QuarantineList is the answer of listQuarantine.
type QuarantineList struct {
	VMs []string `json:"vms"`
}

// ReleaseResult is the answer of releaseQuarantine.
type ReleaseResult struct {
	VM          string `json:"vm"`
	Quarantined bool   `json:"was_quarantined"`
}

func getResponsePolicy(s *Server, rs Responder, w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, rs.ResponsePolicy())
}

func setResponsePolicy(s *Server, rs Responder, w http.ResponseWriter, r *http.Request) error {
	data, err := readBody(r.Body)
	if err != nil {
		return err
	}
	p, err := respond.Parse(data)
	var fe *respond.FieldError
	if errors.As(err, &fe) {
		return badRequest(fe.Field, "%s", fe.Error())
	} else if err != nil {
		return err
	}
	auditTarget(r, "/", "response policy: %d VM scopes, %d pool scopes, %d global rules", len(p.VMs), len(p.Pools), len(p.Global))
	if err := rs.SetResponsePolicy(r.Context(), p); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

func listQuarantine(s *Server, rs Responder, w http.ResponseWriter, r *http.Request) error {
	vms := rs.Quarantined()
	if vms == nil {
		vms = []string{}
	}
	return writeJSON(w, http.StatusOK, QuarantineList{VMs: vms})
}

// releaseQuarantine lifts a VM's quarantine (an operator's decision after
// looking at the evidence) and records it as a monitoring event next to
// the response that set it. The VM need not exist any more: a quarantine
// outlives its VM so that a new VM of the same name starts cut off.
func releaseQuarantine(s *Server, rs Responder, w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	was, err := rs.Release(r.Context(), name)
	if err != nil {
		return err
	}
	auditTarget(r, "/vms/"+name, "quarantine lifted (was quarantined: %v)", was)
	if was {
		user := CallerFrom(r.Context()).User
		s.RecordEvent(MonitorEvent{Time: time.Now().UTC(), VM: name, Kind: "quarantine_released",
			Summary: fmt.Sprintf("quarantine of %s lifted by %s", name, user), Evidence: map[string]any{"user": user}, Scan: "operator"})
	}
	return writeJSON(w, http.StatusOK, ReleaseResult{VM: name, Quarantined: was})
}
