package api

import (
	"encoding/hex"
	"net/http"
	"strconv"

	"github.com/bulwark-project/bulwark/internal/measure"
	"github.com/bulwark-project/bulwark/internal/tpm"
)

// Attestation is the measured-launch state the attestation routes serve
// (a *measure.Measurer). Both methods may block on the TPM.
type Attestation interface {
	EventLog() ([]byte, error)
	Status() (measure.Status, error)
}

// SetAttestation serves a's event log and PCRs.
func (s *Server) SetAttestation(a Attestation) { s.attest = a }

func attestObj(*http.Request) string { return "/attestation" }

func (s *Server) needAttest() error {
	if s.attest == nil {
		return &httpError{code: http.StatusServiceUnavailable, msg: "measured launch is not running on this daemon"}
	}
	return nil
}

// attestEventLog serves the raw TCG event log.
func (s *Server) attestEventLog(w http.ResponseWriter, r *http.Request) error {
	if err := s.needAttest(); err != nil {
		return err
	}
	raw, err := s.attest.EventLog()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(raw)
	return err
}

// PCRsResponse is GET /api/v1/attestation/pcrs. PCR values are hex.
type PCRsResponse struct {
	TPM            string `json:"tpm"`
	Kind           string `json:"kind"`
	HardwareRooted bool   `json:"hardware_rooted"`
	// PCRs are the TPM's values; absent without a TPM.
	PCRs map[string]string `json:"pcrs,omitempty"`
	// Replayed are the values the event log replays to.
	Replayed map[string]string `json:"replayed"`
	Agree    bool              `json:"agree"`
	Mismatch string            `json:"mismatch,omitempty"`
}

func hexPCRs(m map[int][32]byte) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for i, v := range m {
		out[strconv.Itoa(i)] = hex.EncodeToString(v[:])
	}
	return out
}

func (s *Server) attestPCRs(w http.ResponseWriter, r *http.Request) error {
	if err := s.needAttest(); err != nil {
		return err
	}
	st, err := s.attest.Status()
	if err != nil {
		return err
	}
	kind := "none"
	switch st.TPM.Kind {
	case tpm.KindDevice:
		kind = "device"
	case tpm.KindSwtpm:
		kind = "swtpm"
	}
	return writeJSON(w, http.StatusOK, PCRsResponse{TPM: st.TPM.String(), Kind: kind, HardwareRooted: st.HardwareRooted,
		PCRs: hexPCRs(st.PCRs), Replayed: hexPCRs(st.Replayed), Agree: st.Agree, Mismatch: st.Mismatch})
}
