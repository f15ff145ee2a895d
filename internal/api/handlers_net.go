package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-project/bulwark/internal/consolelog"
	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/netsw/firewall"
)

// SetNetwork connects the switch's control plane to the API.
func (s *Server) SetNetwork(n *netsw.Service, firewallLog string) {
	s.net, s.fwLogPath = n, firewallLog
}

func netObj(r *http.Request) string   { return "/networks/" + r.PathValue("name") }
func sgObj(r *http.Request) string    { return "/security-groups/" + r.PathValue("name") }
func ipsetObj(r *http.Request) string { return "/ip-sets/" + r.PathValue("name") }
func netRoot(*http.Request) string    { return "/networks" }
func sgRoot(*http.Request) string     { return "/security-groups" }
func ipsetRoot(*http.Request) string  { return "/ip-sets" }

// decodeStrict reads exactly one JSON object into v, refusing unknown
// fields, duplicate keys (jsondup.go) and trailing data. At most
// MaxBodyBytes are read.
func decodeStrict(r io.Reader, v any) error {
	data, err := readBody(r)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("", "request body must hold exactly one JSON object")
	}
	return checkDuplicateKeys(data)
}

// needNet wraps the handlers of the switch's routes: without a switch they
// answer 503.
func needNet(h func(s *Server, w http.ResponseWriter, r *http.Request) error) func(s *Server, w http.ResponseWriter, r *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		if s.net == nil {
			return &httpError{code: http.StatusServiceUnavailable, msg: "virtual switch not running"}
		}
		return h(s, w, r)
	}
}

func (s *Server) listNetworks(w http.ResponseWriter, r *http.Request) error {
	see := s.visible(r, PrivNetAudit)
	return writeList(w, filterSlice(s.net.Networks(), see, func(n netsw.Network) string { return "/networks/" + n.Name }))
}

func (s *Server) createNetwork(w http.ResponseWriter, r *http.Request) error {
	var n netsw.Network
	if err := decodeStrict(r.Body, &n); err != nil {
		return err
	}
	n, err := s.net.CreateNetwork(r.Context(), n)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, n)
}

func (s *Server) getNetwork(w http.ResponseWriter, r *http.Request) error {
	n, err := s.net.Network(r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, n)
}

func (s *Server) deleteNetwork(w http.ResponseWriter, r *http.Request) error {
	if err := s.net.DeleteNetwork(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) error {
	see := s.visible(r, PrivFWRead)
	return writeList(w, filterSlice(s.net.Groups(), see, func(g firewall.Group) string { return "/security-groups/" + g.Name }))
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) error {
	var g firewall.Group
	if err := decodeStrict(r.Body, &g); err != nil {
		return err
	}
	g, err := s.net.CreateGroup(r.Context(), g)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, g)
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := s.net.Group(r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, g)
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	if err := s.net.DeleteGroup(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) addRule(w http.ResponseWriter, r *http.Request) error {
	pos := -1
	if p := r.URL.Query().Get("position"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return badRequest("position", "position=%q must be a non-negative integer", p)
		}
		pos = n
	}
	var rule firewall.Rule
	if err := decodeStrict(r.Body, &rule); err != nil {
		return err
	}
	g, err := s.net.AddRule(r.Context(), r.PathValue("name"), rule, pos)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, g)
}

func (s *Server) removeRule(w http.ResponseWriter, r *http.Request) error {
	g, err := s.net.RemoveRule(r.Context(), r.PathValue("name"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, g)
}

func (s *Server) listIPSets(w http.ResponseWriter, r *http.Request) error {
	see := s.visible(r, PrivFWRead)
	return writeList(w, filterSlice(s.net.IPSets(), see, func(x firewall.IPSet) string { return "/ip-sets/" + x.Name }))
}

func (s *Server) createIPSet(w http.ResponseWriter, r *http.Request) error {
	var x firewall.IPSet
	if err := decodeStrict(r.Body, &x); err != nil {
		return err
	}
	x, err := s.net.CreateIPSet(r.Context(), x)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, x)
}

func (s *Server) deleteIPSet(w http.ResponseWriter, r *http.Request) error {
	if err := s.net.DeleteIPSet(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listPorts(w http.ResponseWriter, r *http.Request) error {
	see := s.visible(r, PrivFWRead)
	return writeList(w, filterSlice(s.net.Switch().Ports(), see, func(p netsw.PortStatus) string { return "/networks/" + p.Network }))
}

func (s *Server) ruleHits(w http.ResponseWriter, r *http.Request) error {
	see := s.visible(r, PrivFWRead)
	return writeList(w, filterSlice(s.net.Switch().RuleHits(), see, func(h firewall.RuleHit) string { return "/security-groups/" + h.Group }))
}

func (s *Server) firewallLog(w http.ResponseWriter, r *http.Request) error {
	n, err := bytesParam(r)
	if err != nil {
		return err
	}
	flt, err := fwLogFilter(r)
	if err != nil {
		return err
	}
	data, err := consolelog.Tail(s.fwLogPath, consolelog.DefaultKeep, n)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	data = netsw.FilterLog(data, flt)
	if see := s.visible(r, PrivFWRead); !see("/networks") {
		data = filterLines(data, "network", "/networks/", see)
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	_, err = w.Write(data)
	return err
}

// fwLogFilter reads the firewall log's filters: network and vm (names),
// since and until (RFC 3339 times, inclusive). They select among the lines
// of the tail that bytes asks for.
func fwLogFilter(r *http.Request) (netsw.LogFilter, error) {
	q := r.URL.Query()
	f := netsw.LogFilter{Network: q.Get("network"), VM: q.Get("vm")}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return f, badRequest(p.name, "%s=%q is not an RFC 3339 time", p.name, v)
		}
		*p.t = t
	}
	if len(f.Network) > 63 || len(f.VM) > 253 {
		return f, badRequest("network", "network or vm name too long")
	}
	return f, nil
}
