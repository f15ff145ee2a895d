package quote

import (
	"encoding/binary"
	"fmt"
)

// TPM 2.0 constants (TPM 2.0 Part 2).
const (
	tpmGeneratedValue = 0xff544347 // TPM_GENERATED_VALUE
	stAttestQuote     = 0x8018     // TPM_ST_ATTEST_QUOTE
	algSHA256         = 0x000b     // TPM_ALG_SHA256
	algRSASSA         = 0x0014     // TPM_ALG_RSASSA
)

// Structure limits. The TPM's own are smaller (a name is at most 2+64
// bytes, qualifying data and digests 64, a PCR bank selection 3 or 4
// bytes); these are generous enough for any TPM and small enough that the
// parser's work is bounded whatever the input.
const (
	maxName       = 2 + 64
	maxExtraData  = 64
	maxDigest     = 64
	maxBanks      = 16
	maxSelectSize = 8 // 64 PCRs: the selection fits a uint64 mask
)

// pcrSelection is a TPMS_PCR_SELECTION.
type pcrSelection struct {
	hash uint16
	bits []byte
}

// quoteInfo is the part of a TPMS_ATTEST the verifier uses.
type quoteInfo struct {
	extraData  []byte
	clock      ClockInfo
	firmware   uint64
	selections []pcrSelection
	pcrDigest  []byte
}

// reader reads big-endian TPM fields from b, remembering the first error:
// callers check r.err once at the end (every read after an error returns
// zero values and reads nothing).
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: at byte %d: %s", ErrMalformed, r.off, fmt.Sprintf(format, args...))
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b)-r.off {
		r.fail("%s: need %d bytes, %d left", what, n, len(r.b)-r.off)
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8(what string) uint8 {
	if b := r.take(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16(what string) uint16 {
	if b := r.take(2, what); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if b := r.take(4, what); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if b := r.take(8, what); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// tpm2b reads a TPM2B: a 16-bit size, then that many bytes (at most max).
func (r *reader) tpm2b(max int, what string) []byte {
	n := int(r.u16(what + " size"))
	if r.err == nil && n > max {
		r.fail("%s of %d bytes exceeds %d", what, n, max)
	}
	return r.take(n, what)
}

func (r *reader) end(what string) {
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d bytes after the %s", len(r.b)-r.off, what)
	}
}

// parseQuote parses a TPMS_ATTEST that must be a quote, to its last byte.
func parseQuote(b []byte) (*quoteInfo, error) {
	r := &reader{b: b}
	magic := r.u32("magic")
	typ := r.u16("type")
	if r.err == nil && magic != tpmGeneratedValue {
		return nil, fmt.Errorf("quote: %w: magic 0x%08x, want TPM_GENERATED_VALUE", ErrNotQuote, magic)
	}
	if r.err == nil && typ != stAttestQuote {
		return nil, fmt.Errorf("quote: %w: attestation type 0x%04x, want TPM_ST_ATTEST_QUOTE", ErrNotQuote, typ)
	}
	q := &quoteInfo{}
	r.tpm2b(maxName, "qualifiedSigner")
	q.extraData = r.tpm2b(maxExtraData, "extraData")
	q.clock.Clock = r.u64("clock")
	q.clock.ResetCount = r.u32("resetCount")
	q.clock.RestartCount = r.u32("restartCount")
	switch safe := r.u8("safe"); {
	case r.err != nil:
	case safe > 1:
		r.fail("safe is %d, want 0 or 1", safe)
	default:
		q.clock.Safe = safe == 1
	}
	q.firmware = r.u64("firmwareVersion")
	count := r.u32("PCR selection count")
	if r.err == nil && count > maxBanks {
		r.fail("%d PCR selections exceed %d", count, maxBanks)
	}
	for i := uint32(0); r.err == nil && i < count; i++ {
		var s pcrSelection
		s.hash = r.u16("PCR selection hash")
		size := int(r.u8("sizeofSelect"))
		if r.err == nil && size > maxSelectSize {
			r.fail("PCR selection of %d bytes exceeds %d", size, maxSelectSize)
		}
		s.bits = r.take(size, "pcrSelect")
		q.selections = append(q.selections, s)
	}
	q.pcrDigest = r.tpm2b(maxDigest, "pcrDigest")
	r.end("quote")
	if r.err != nil {
		return nil, fmt.Errorf("quote: %w", r.err)
	}
	return q, nil
}

// parseSignature parses a TPMT_SIGNATURE that must be RSASSA with SHA-256
// and returns the signature bytes.
func parseSignature(b []byte) ([]byte, error) {
	r := &reader{b: b}
	alg := r.u16("signature algorithm")
	hash := r.u16("signature hash")
	if r.err == nil && (alg != algRSASSA || hash != algSHA256) {
		return nil, fmt.Errorf("quote: %w: signature scheme 0x%04x with hash 0x%04x, want RSASSA (0x0014) with SHA-256 (0x000b)", ErrMalformed, alg, hash)
	}
	sig := r.tpm2b(MaxSignature, "signature")
	r.end("signature")
	if r.err != nil {
		return nil, fmt.Errorf("quote: signature: %w", r.err)
	}
	return sig, nil
}
