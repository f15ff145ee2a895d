package api

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/bulwark-project/bulwark/internal/consolelog"
	"github.com/bulwark-project/bulwark/internal/ipssvc"
	"github.com/bulwark-project/bulwark/internal/mirror"
	"github.com/bulwark-project/bulwark/internal/mirrorsvc"
)

// The IPS (issue 15): rule files, the inspection policy, counters and the
// EVE alert log; traffic mirror sessions; VEPA and service chains of the
// switch.

// MaxRuleFileBody bounds an uploaded rule file (ipssvc.MaxFileBytes).
const MaxRuleFileBody = ipssvc.MaxFileBytes

// IPS is the IPS control plane and where its EVE log lives.
type IPS struct {
	Svc     *ipssvc.Service
	EVEPath string
}

// SetIPS enables the IPS routes.
func (s *Server) SetIPS(i *IPS) { s.ips = i }

// SetMirror enables the mirror routes.
func (s *Server) SetMirror(m *mirrorsvc.Service) { s.mirror = m }

func ipsObj(*http.Request) string     { return "/ips" }
func mirrorsObj(*http.Request) string { return "/mirrors" }

func needIPS(h func(s *Server, w http.ResponseWriter, r *http.Request) error) func(s *Server, w http.ResponseWriter, r *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		if s.ips == nil {
			return &httpError{code: http.StatusServiceUnavailable, msg: "the IPS is not enabled on this daemon"}
		}
		return ipsError(h(s, w, r))
	}
}

func ipsError(err error) error {
	var ie *ipssvc.InputError
	var me *mirrorsvc.InputError
	switch {
	case errors.As(err, &ie):
		return badRequest("", "%s", ie.Msg)
	case errors.As(err, &me):
		return badRequest("", "%s", me.Msg)
	case errors.Is(err, ipssvc.ErrNotFound), errors.Is(err, mirrorsvc.ErrNotFound):
		return &httpError{code: http.StatusNotFound, msg: err.Error()}
	case errors.Is(err, mirrorsvc.ErrExists):
		return &httpError{code: http.StatusConflict, msg: err.Error()}
	}
	return err
}

func (s *Server) ipsStatus(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, s.ips.Svc.Status())
}

func (s *Server) ipsRules(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var sid uint64
	if v := q.Get("sid"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return badRequest("sid", "sid must be a rule's signature id")
		}
		sid = n
	}
	limit := 1000
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100000 {
			return badRequest("limit", "limit must be 1-100000")
		}
		limit = n
	}
	rs := s.ips.Svc.Rules(uint32(sid), q.Get("hits") == "1" || q.Get("hits") == "true", limit)
	if rs == nil {
		rs = []ipssvc.Rule{}
	}
	return writeJSON(w, http.StatusOK, rs)
}

func (s *Server) putRuleFile(w http.ResponseWriter, r *http.Request) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	deferCompile := r.URL.Query().Get("compile") == "0"
	rep, err := s.ips.Svc.PutFile(r.PathValue("name"), data, deferCompile)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (s *Server) deleteRuleFile(w http.ResponseWriter, r *http.Request) error {
	if err := s.ips.Svc.RemoveFile(r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) setIPSMode(w http.ResponseWriter, r *http.Request) error {
	var c ipssvc.ModeChange
	if err := decodeStrict(r.Body, &c); err != nil {
		return err
	}
	p, err := s.ips.Svc.SetMode(r.Context(), c)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

// ipsAlerts returns the last bytes of the EVE alert log (JSON lines).
func (s *Server) ipsAlerts(w http.ResponseWriter, r *http.Request) error {
	n, err := bytesParam(r)
	if err != nil {
		return err
	}
	data, err := consolelog.Tail(s.ips.EVEPath, consolelog.DefaultKeep, n)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	_, err = w.Write(data)
	return err
}

func needMirror(h func(s *Server, w http.ResponseWriter, r *http.Request) error) func(s *Server, w http.ResponseWriter, r *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		if s.mirror == nil {
			return &httpError{code: http.StatusServiceUnavailable, msg: "traffic mirroring is not enabled on this daemon"}
		}
		return ipsError(h(s, w, r))
	}
}

func (s *Server) listMirrors(w http.ResponseWriter, r *http.Request) error {
	st := s.mirror.Status()
	if st == nil {
		st = []mirror.SessionStatus{}
	}
	return writeJSON(w, http.StatusOK, st)
}

func (s *Server) createMirror(w http.ResponseWriter, r *http.Request) error {
	var x mirror.Session
	if err := decodeStrict(r.Body, &x); err != nil {
		return err
	}
	x, err := s.mirror.Create(r.Context(), x)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, x)
}

func (s *Server) deleteMirror(w http.ResponseWriter, r *http.Request) error {
	if err := s.mirror.Delete(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
