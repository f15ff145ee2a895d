// Package quote is the verifier's half of the TPM key exchange: it checks
// that a host's attestation key (AK) is a restricted signing key bound to
// its endorsement key (EK), by a credential challenge only that TPM can
// answer, and it verifies the quotes that AK signs. It is pure: no TPM, no
// I/O; inputs are the wire types of internal/attest.
//
// A quote verifies when, in this order:
//
//  1. every input is within its size bound (MaxQuote, MaxSignature, ...);
//  2. the AK public is an RSA 2048..4096-bit restricted, fixedTPM signing
//     key with RSASSA and SHA-256 (the only kind internal/tpm creates);
//  3. the signature is an RSASSA-PKCS1-v1_5 SHA-256 signature by that AK
//     over the quote bytes (ErrBadSignature);
//  4. the quote is a TPMS_ATTEST with TPM_GENERATED_VALUE and type
//     TPM_ST_ATTEST_QUOTE, parsed to its last byte (ErrNotQuote,
//     ErrMalformed);
//  5. its extraData is attest.QuoteData(nonce, evidence.Report)
//     (ErrNonceMismatch);
//  6. it selects exactly attest.QuotedPCRs in the SHA-256 bank
//     (ErrSelectionMismatch);
//  7. its PCR digest is the SHA-256 of the evidence's PCR values in
//     ascending index order (ErrPCRDigestMismatch).
//
// The signature is checked before the quote is parsed: the parser only
// ever sees bytes the host's TPM produced.
package quote

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/bulwark-project/bulwark/internal/attest"
)

// Size bounds on what a host sends. A quote over three SHA-256 PCRs is
// about 150 bytes and an RSA-4096 signature 518; the bounds leave room and
// stop a hostile host from making the verifier parse or hash at will.
const (
	MaxQuote     = 1024
	MaxSignature = 1024
	MaxAKPublic  = 2048
	// MaxEKPublic bounds the EK's PKIX DER (RSA-4096 is about 550 bytes).
	MaxEKPublic = 2048
	// MaxEKCertificate bounds the EK certificate (DER).
	MaxEKCertificate = 16 << 10
	// MaxCreation bounds each of the AK's creation data, attestation and
	// signature.
	MaxCreation = 2048
)

// Errors a caller can branch on; the returned errors wrap one of them with
// the detail.
var (
	// ErrMalformed: a structure does not parse, has bytes left over, or
	// is outside its size bound.
	ErrMalformed = errors.New("malformed")
	// ErrUnsupportedKey: the AK (or EK) is not a key this verifier
	// accepts: see the package doc for what an AK must be.
	ErrUnsupportedKey = errors.New("unsupported key")
	// ErrBadSignature: the signature does not verify with the AK: the
	// quote was altered, or signed by another key (an AK swapped after
	// registration).
	ErrBadSignature = errors.New("signature does not verify with the host's AK")
	// ErrNotQuote: the signed structure is not a TPM-generated quote.
	ErrNotQuote = errors.New("not a TPM quote")
	// ErrNonceMismatch: the quote's extraData is not QuoteData(nonce,
	// report): a quote made for another nonce (replayed), or a report
	// other than the one the quote binds.
	ErrNonceMismatch = errors.New("quote is not for this nonce and report")
	// ErrSelectionMismatch: the quote does not cover exactly
	// attest.QuotedPCRs in the SHA-256 bank.
	ErrSelectionMismatch = errors.New("quote covers other PCRs than the ones required")
	// ErrPCRDigestMismatch: the PCR values sent are not the ones the TPM
	// quoted.
	ErrPCRDigestMismatch = errors.New("PCR values do not match the quoted digest")
)

// ClockInfo is the TPM's clock at quote time (TPMS_CLOCK_INFO). Within one
// ResetCount and RestartCount, Clock only grows; a larger ResetCount is a
// reboot (TPM Reset), a larger RestartCount a resume; smaller ones mean a
// cleared TPM or a quote from the past.
type ClockInfo struct {
	// Clock is milliseconds the TPM has been powered (not wall time).
	Clock        uint64
	ResetCount   uint32
	RestartCount uint32
	// Safe is false when the TPM may have reported a larger Clock before
	// (it lost its clock state).
	Safe bool
}

// Result is what a verified quote establishes.
type Result struct {
	// PCRs are the SHA-256 values of attest.QuotedPCRs the TPM signed.
	PCRs  map[int][32]byte
	Clock ClockInfo
	// FirmwareVersion is the TPM vendor's firmware version.
	FirmwareVersion uint64
}

// Verify checks evidence against the AK registered for the host and the
// nonce the verifier sent, and returns the PCR values the TPM vouches for.
// See VerifyEvidence for the clock.
func Verify(akPublic []byte, ev attest.Evidence, nonce []byte) (map[int][32]byte, error) {
	r, err := VerifyEvidence(akPublic, ev, nonce)
	if err != nil {
		return nil, err
	}
	return r.PCRs, nil
}

// VerifyEvidence is Verify, returning the quote's clock too. A verifier
// that checks many quotes from one host can ParseAK once and call
// AK.Verify.
func VerifyEvidence(akPublic []byte, ev attest.Evidence, nonce []byte) (Result, error) {
	ak, err := ParseAK(akPublic)
	if err != nil {
		return Result{}, err
	}
	return ak.Verify(ev, nonce)
}

// Verify checks evidence against this AK and nonce (see the package doc).
func (ak *AK) Verify(ev attest.Evidence, nonce []byte) (Result, error) {
	if len(nonce) != attest.NonceSize {
		return Result{}, fmt.Errorf("quote: nonce of %d bytes, want %d", len(nonce), attest.NonceSize)
	}
	if len(ev.Quote) > MaxQuote {
		return Result{}, fmt.Errorf("quote: %w: quote of %d bytes exceeds %d", ErrMalformed, len(ev.Quote), MaxQuote)
	}
	if len(ev.Signature) > MaxSignature {
		return Result{}, fmt.Errorf("quote: %w: signature of %d bytes exceeds %d", ErrMalformed, len(ev.Signature), MaxSignature)
	}
	// Checked before any cryptography: the map is the host's.
	vals, err := evidencePCRs(ev.PCRs)
	if err != nil {
		return Result{}, err
	}
	sig, err := parseSignature(ev.Signature)
	if err != nil {
		return Result{}, err
	}
	if len(sig) != ak.pub.Size() {
		return Result{}, fmt.Errorf("quote: %w: signature of %d bytes for a %d-bit AK", ErrBadSignature, len(sig), ak.pub.N.BitLen())
	}
	digest := sha256.Sum256(ev.Quote)
	if err := rsa.VerifyPKCS1v15(ak.pub, crypto.SHA256, digest[:], sig); err != nil {
		return Result{}, fmt.Errorf("quote: %w", ErrBadSignature)
	}
	q, err := parseQuote(ev.Quote)
	if err != nil {
		return Result{}, err
	}
	want := attest.QuoteData(nonce, ev.Report)
	if subtle.ConstantTimeCompare(q.extraData, want) != 1 {
		return Result{}, fmt.Errorf("quote: %w: extraData %x, want %x", ErrNonceMismatch, q.extraData, want)
	}
	if err := checkSelection(q); err != nil {
		return Result{}, err
	}
	h := sha256.New()
	for _, i := range attest.QuotedPCRs {
		v := vals[i]
		h.Write(v[:])
	}
	if subtle.ConstantTimeCompare(h.Sum(nil), q.pcrDigest) != 1 {
		return Result{}, fmt.Errorf("quote: %w: the quote's digest is %x", ErrPCRDigestMismatch, q.pcrDigest)
	}
	return Result{PCRs: vals, Clock: q.clock, FirmwareVersion: q.firmware}, nil
}

// evidencePCRs checks that the evidence carries exactly attest.QuotedPCRs,
// each a SHA-256 value.
func evidencePCRs(m map[int][]byte) (map[int][32]byte, error) {
	if len(m) != len(attest.QuotedPCRs) {
		return nil, fmt.Errorf("quote: %w: evidence has %d PCR values, want PCRs %v", ErrMalformed, len(m), attest.QuotedPCRs)
	}
	vals := make(map[int][32]byte, len(attest.QuotedPCRs))
	for _, i := range attest.QuotedPCRs {
		v, ok := m[i]
		if !ok {
			return nil, fmt.Errorf("quote: %w: evidence has no value for PCR %d", ErrMalformed, i)
		}
		if len(v) != sha256.Size {
			return nil, fmt.Errorf("quote: %w: PCR %d value of %d bytes, want %d", ErrMalformed, i, len(v), sha256.Size)
		}
		vals[i] = [32]byte(v)
	}
	return vals, nil
}

// checkSelection requires one SHA-256 selection whose bits are exactly
// attest.QuotedPCRs.
func checkSelection(q *quoteInfo) error {
	if len(q.selections) != 1 {
		return fmt.Errorf("quote: %w: %d PCR banks selected, want SHA-256 only", ErrSelectionMismatch, len(q.selections))
	}
	s := q.selections[0]
	if s.hash != algSHA256 {
		return fmt.Errorf("quote: %w: bank 0x%04x selected, want SHA-256", ErrSelectionMismatch, s.hash)
	}
	var want, got uint64
	for _, i := range attest.QuotedPCRs {
		want |= 1 << i
	}
	for byteIdx, b := range s.bits {
		got |= uint64(b) << (8 * byteIdx)
	}
	if got != want {
		return fmt.Errorf("quote: %w: PCR mask 0x%x, want 0x%x (PCRs %v)", ErrSelectionMismatch, got, want, attest.QuotedPCRs)
	}
	return nil
}
