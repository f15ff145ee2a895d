// Package attest holds what the daemon's attestation agent and the verifier
// exchange: the host's keys, the credential challenge that binds its
// attestation key to its endorsement key, quotes with the evidence around
// them, and the verdicts the verifier reaches. Both ends import it; it does
// no I/O.
package attest

import (
	"crypto/sha256"
	"errors"
	"time"
)

// ErrHostUntrusted is returned (wrapped) when a daemon refuses an operation,
// such as a VM start, because a verifier marked its host untrusted.
var ErrHostUntrusted = errors.New("host untrusted")

// PCRs Bulwark quotes: 11 the hypervisor layer, 12 VM launches, 13 runtime
// integrity findings (see internal/measure).
const (
	PCRHost    = 11
	PCRLaunch  = 12
	PCRRuntime = 13
)

// QuotedPCRs is the selection every quote covers, ascending.
var QuotedPCRs = []int{PCRHost, PCRLaunch, PCRRuntime}

// NonceSize is the size of a verifier's nonce.
const NonceSize = 32

// Keys is what a host presents at registration.
type Keys struct {
	// TPM describes the TPM ("swtpm at unix:/...", "TPM device /dev/tpmrm0").
	TPM            string `json:"tpm"`
	HardwareRooted bool   `json:"hardware_rooted"`
	// EKPublic is the endorsement key's public key, PKIX DER.
	EKPublic []byte `json:"ek_public"`
	// EKCertificate is the manufacturer's EK certificate (DER), when the
	// TPM holds one in NV; swtpm set up without swtpm_setup has none.
	EKCertificate []byte `json:"ek_certificate,omitempty"`
	// AK describes the attestation key.
	AK AKParams `json:"ak"`
}

// AKParams are the attestation key's public area and the TPM's creation
// evidence for it (go-attestation's AttestationParameters): the verifier
// checks from them that the key is a restricted signing key created inside a
// TPM.
type AKParams struct {
	Public            []byte `json:"public"`             // TPM2B_PUBLIC contents (TPMT_PUBLIC)
	CreateData        []byte `json:"create_data"`        // TPMS_CREATION_DATA
	CreateAttestation []byte `json:"create_attestation"` // TPMS_ATTEST of the creation
	CreateSignature   []byte `json:"create_signature"`   // TPMT_SIGNATURE over it
}

// Challenge is a credential the verifier encrypted to the host's EK for the
// AK's name (TPM2_MakeCredential done in software). Only the TPM holding
// that EK, with an object of exactly that name loaded, can recover Secret.
type Challenge struct {
	Credential []byte `json:"credential"` // TPM2B_ID_OBJECT
	Secret     []byte `json:"secret"`     // TPM2B_ENCRYPTED_SECRET
}

// ChallengeResponse carries the secret TPM2_ActivateCredential recovered.
type ChallengeResponse struct {
	Secret []byte `json:"secret"`
}

// QuoteRequest asks a host for evidence over a fresh nonce.
type QuoteRequest struct {
	Nonce []byte `json:"nonce"`
}

// Evidence is a host's answer to a QuoteRequest.
type Evidence struct {
	// Quote is the TPMS_ATTEST the AK signed; its extraData is
	// QuoteData(nonce, Report).
	Quote []byte `json:"quote"`
	// Signature is the TPMT_SIGNATURE over Quote.
	Signature []byte `json:"signature"`
	// PCRs are the SHA-256 values of QuotedPCRs, read in the same
	// critical section as the quote: keys are PCR indices.
	PCRs map[int][]byte `json:"pcrs"`
	// EventLog is the TCG crypto-agile log explaining those PCRs, read in
	// the same critical section.
	EventLog []byte `json:"event_log"`
	// Report is the JSON of a Report. Its SHA-256 is bound into the quote,
	// so the TPM's signature covers it.
	Report []byte `json:"report"`
}

// quoteDomain separates Bulwark's quote data from any other use of a nonce.
const quoteDomain = "bulwark-quote-v1\x00"

// QuoteData is the extraData a quote carries: SHA-256 over a domain string,
// the verifier's nonce and the SHA-256 of the report bytes. Binding the
// report this way lets the TPM's signature cover what the daemon says about
// runtime integrity and introspection, not only the PCRs.
func QuoteData(nonce, report []byte) []byte {
	rh := sha256.Sum256(report)
	h := sha256.New()
	h.Write([]byte(quoteDomain))
	h.Write(nonce)
	h.Write(rh[:])
	return h.Sum(nil)
}

// Report is what the daemon says about the state of its host at quote time,
// beyond what PCRs can hold.
type Report struct {
	Host string    `json:"host"`
	Time time.Time `json:"time"`
	// Runtime is the latest re-measurement of each process's code.
	Runtime []RuntimeCheck `json:"runtime"`
	// VMs lists the VMs defined on the host.
	VMs []VMReport `json:"vms"`
}

// RuntimeCheck is one re-measurement of a running process's code against
// its executable on disk.
type RuntimeCheck struct {
	// Process is "daemon" or "qemu"; VM names the VM of a QEMU process.
	Process string    `json:"process"`
	VM      string    `json:"vm,omitempty"`
	PID     int       `json:"pid"`
	Binary  string    `json:"binary"`
	Checked time.Time `json:"checked"`
	// Bytes is how many bytes of code were compared.
	Bytes int64 `json:"bytes"`
	// Mismatches are the differing regions; empty when the code is intact.
	Mismatches []TextMismatch `json:"mismatches,omitempty"`
	// Omitted counts mismatches beyond those listed.
	Omitted int `json:"omitted,omitempty"`
	// Notes describe executable memory no file backs (TCG's code buffer,
	// memfds), which cannot be compared: information, not a mismatch.
	Notes []string `json:"notes,omitempty"`
	// Error is set when the check could not be done.
	Error string `json:"error,omitempty"`
}

// TextMismatch is a run of differing code bytes.
type TextMismatch struct {
	// Object is the file the mapping belongs to (the binary or a library).
	Object string `json:"object"`
	// Offset is the file offset of the first differing byte.
	Offset uint64 `json:"offset"`
	// Length is the number of bytes in the run.
	Length int `json:"length"`
	// Symbol is the enclosing function ("name+0xOFF") where known.
	Symbol   string `json:"symbol,omitempty"`
	Expected string `json:"expected"` // hex of the file's bytes (at most 32)
	Found    string `json:"found"`    // hex of memory's bytes (at most 32)
}

// VMReport is one VM as the daemon sees it.
type VMReport struct {
	Name    string `json:"name"`
	Running bool   `json:"running"`
	// Introspection is the latest scan of a running VM's kernel, if any.
	Introspection *Introspection `json:"introspection,omitempty"`
}

// Introspection is the outcome of a scan of a guest kernel.
type Introspection struct {
	Checked  time.Time `json:"checked"`
	Findings []Finding `json:"findings,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// Finding is one introspection finding (internal/vmi/engine's kinds:
// hidden_process, syscall_hook, idt_hook, kernel_text_modified, ...).
type Finding struct {
	Kind    string `json:"kind"`
	Summary string `json:"summary"`
}

// Status is a verdict's outcome.
type Status string

const (
	// Trusted: every check passed against the policy.
	Trusted Status = "trusted"
	// Untrusted: a check failed; Reasons say which.
	Untrusted Status = "untrusted"
	// Unknown: the verifier could not decide (host unreachable, no policy,
	// evidence missing). Never treated as trusted.
	Unknown Status = "unknown"
)

// Reason explains one failed or undecided check.
type Reason struct {
	// Component names what was checked: "qemu-binary",
	// "seccomp-filter/vmm", "vm-initrd", "quote", "event-log",
	// "runtime/qemu", "introspection/kernel_text_modified", ...
	Component string `json:"component"`
	// VM is set for a per-VM reason.
	VM string `json:"vm,omitempty"`
	// Expected lists the allowed values (digests in hex), Found the value
	// seen; both may be empty for reasons that are not about a digest.
	Expected []string `json:"expected,omitempty"`
	Found    string   `json:"found,omitempty"`
	Message  string   `json:"message"`
}

// VMVerdict is the verdict on one VM: its boot artefacts as measured at
// its latest launch, and its running kernel as introspection reports it.
type VMVerdict struct {
	Name    string   `json:"name"`
	Status  Status   `json:"status"`
	Reasons []Reason `json:"reasons,omitempty"`
}

// Verdict is the verifier's answer for one host at one time.
type Verdict struct {
	Host          string    `json:"host"`
	Status        Status    `json:"status"`
	Time          time.Time `json:"time"`
	PolicyVersion int       `json:"policy_version"`
	// Reasons concern the host itself (its measured launch, quote, log
	// and runtime integrity).
	Reasons []Reason    `json:"reasons,omitempty"`
	VMs     []VMVerdict `json:"vms,omitempty"`
}
