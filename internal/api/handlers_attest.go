package api

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-project/bulwark/internal/attest"
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

// Agent is the remote-attestation side of the daemon (internal/daemon's
// attestation agent): its keys, the credential challenge, quotes with their
// evidence, and the verdicts a verifier pushes. Methods may block on the
// TPM.
type Agent interface {
	Keys() (attest.Keys, error)
	Activate(attest.Challenge) ([]byte, error)
	Quote(ctx context.Context, nonce []byte) (attest.Evidence, error)
	// SetVerdict records a verifier's verdict on this host; who is the
	// pushing user, for the log.
	SetVerdict(v attest.Verdict, who string) error
	AgentStatus(ctx context.Context) AgentStatus
}

// AgentStatus is GET /api/v1/attestation/status.
type AgentStatus struct {
	TPM            string `json:"tpm"`
	HardwareRooted bool   `json:"hardware_rooted"`
	// Quotes is false when there is no TPM to quote with (the no-TPM
	// mode): a verifier can then only ever say unknown.
	Quotes bool `json:"quotes"`
	// Enforce says whether VM starts are refused while the latest verdict
	// is untrusted.
	Enforce bool `json:"enforce"`
	// Verdict is the latest verdict a verifier pushed, if any.
	Verdict         *attest.Verdict `json:"verdict,omitempty"`
	VerdictReceived *time.Time      `json:"verdict_received,omitempty"`
	VerdictFrom     string          `json:"verdict_from,omitempty"`
	// Runtime is the latest runtime re-measurement of each process.
	Runtime []attest.RuntimeCheck `json:"runtime"`
}

// SetAgent enables the remote-attestation routes.
func (s *Server) SetAgent(a Agent) { s.agent = a }

func (s *Server) needAgent() error {
	if s.agent == nil {
		return &httpError{code: http.StatusServiceUnavailable, msg: "remote attestation is not running on this daemon"}
	}
	return nil
}

func (s *Server) attestStatus(w http.ResponseWriter, r *http.Request) error {
	if err := s.needAgent(); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.agent.AgentStatus(r.Context()))
}

func (s *Server) attestKeys(w http.ResponseWriter, r *http.Request) error {
	if err := s.needAgent(); err != nil {
		return err
	}
	k, err := s.agent.Keys()
	if err != nil {
		return attestErr(err)
	}
	return writeJSON(w, http.StatusOK, k)
}

func (s *Server) attestActivate(w http.ResponseWriter, r *http.Request) error {
	if err := s.needAgent(); err != nil {
		return err
	}
	var ch attest.Challenge
	if err := decodeStrict(r.Body, &ch); err != nil {
		return err
	}
	if len(ch.Credential) == 0 || len(ch.Secret) == 0 {
		return badRequest("credential", "credential and secret are both required")
	}
	secret, err := s.agent.Activate(ch)
	if err != nil {
		return attestErr(err)
	}
	return writeJSON(w, http.StatusOK, attest.ChallengeResponse{Secret: secret})
}

// attestQuote is a GET with the nonce in the query, so that a verifier
// polling every 2 s does not write an audit record per poll.
func (s *Server) attestQuote(w http.ResponseWriter, r *http.Request) error {
	if err := s.needAgent(); err != nil {
		return err
	}
	nonce, err := hex.DecodeString(r.URL.Query().Get("nonce"))
	if err != nil || len(nonce) != attest.NonceSize {
		return badRequest("nonce", "nonce must be %d bytes in hex", attest.NonceSize)
	}
	ev, err := s.agent.Quote(r.Context(), nonce)
	if err != nil {
		return attestErr(err)
	}
	return writeJSON(w, http.StatusOK, ev)
}

func (s *Server) attestSetVerdict(w http.ResponseWriter, r *http.Request) error {
	if err := s.needAgent(); err != nil {
		return err
	}
	var v attest.Verdict
	if err := decodeStrict(r.Body, &v); err != nil {
		return err
	}
	switch v.Status {
	case attest.Trusted, attest.Untrusted, attest.Unknown:
	default:
		return badRequest("status", "status must be trusted, untrusted or unknown")
	}
	auditTarget(r, "/attestation", "verdict %s from policy %d (%d host reasons)", v.Status, v.PolicyVersion, len(v.Reasons))
	if err := s.agent.SetVerdict(v, actor(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// attestErr maps a TPM that is missing or gone to 503.
func attestErr(err error) error {
	if errors.Is(err, tpm.ErrNoTPM) {
		return &httpError{code: http.StatusServiceUnavailable, msg: err.Error()}
	}
	return err
}
