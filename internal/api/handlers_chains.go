package api

import (
	"net/http"

	"github.com/bulwark-project/bulwark/internal/netsw"
)

// VEPA and service insertion: redirection of inter-VM traffic to external
// appliances (issue 15, item 7).

// NetworkPatch is the body of PATCH /networks/{name}: the settings that
// can change on a live network.
type NetworkPatch struct {
	VEPA *bool `json:"vepa,omitempty"`
}

func (s *Server) patchNetwork(w http.ResponseWriter, r *http.Request) error {
	var p NetworkPatch
	if err := decodeStrict(r.Body, &p); err != nil {
		return err
	}
	if p.VEPA == nil {
		return badRequest("", "nothing to change (settable: vepa)")
	}
	n, err := s.net.SetVEPA(r.Context(), r.PathValue("name"), *p.VEPA)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, n)
}

func chainsRoot(*http.Request) string { return "/networks" }

func (s *Server) listChains(w http.ResponseWriter, r *http.Request) error {
	cs := s.net.Chains()
	if cs == nil {
		cs = []netsw.ServiceChain{}
	}
	return writeJSON(w, http.StatusOK, cs)
}

func (s *Server) createChain(w http.ResponseWriter, r *http.Request) error {
	var c netsw.ServiceChain
	if err := decodeStrict(r.Body, &c); err != nil {
		return err
	}
	c, err := s.net.CreateChain(r.Context(), c)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, c)
}

func (s *Server) deleteChain(w http.ResponseWriter, r *http.Request) error {
	if err := s.net.DeleteChain(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
