package quote

import (
	"crypto/rsa"
	"fmt"
	"math/big"
)

// AK bit sizes accepted. Below 2048 is too weak; above 4096 would let a
// host make each verification arbitrarily slow.
const (
	minAKBits = 2048
	maxAKBits = 4096
)

// AK is a parsed, checked attestation key public area.
type AK struct {
	pub *rsa.PublicKey
}

// ParseAK parses a TPMT_PUBLIC (attest.AKParams.Public) and checks that it
// is an attestation key as internal/tpm makes them: RSA 2048 to 4096 bits,
// exponent 65537, SHA-256 name, restricted signing only (not decrypt),
// fixedTPM, fixedParent and sensitiveDataOrigin (the TPM generated it and
// it cannot leave the TPM), scheme RSASSA with SHA-256.
//
// These attributes are part of the key's name, which the credential
// challenge binds: an AK that passed NewChallenge and activation has them
// in its TPM, not just in this byte string.
func ParseAK(public []byte) (*AK, error) {
	if len(public) > MaxAKPublic {
		return nil, fmt.Errorf("AK: %w: public area of %d bytes exceeds %d", ErrMalformed, len(public), MaxAKPublic)
	}
	p, err := parsePublic(public)
	if err != nil {
		return nil, err
	}
	if p.typ != algRSA {
		return nil, fmt.Errorf("AK: %w: type 0x%04x, want RSA", ErrUnsupportedKey, p.typ)
	}
	if p.nameAlg != algSHA256 {
		return nil, fmt.Errorf("AK: %w: name algorithm 0x%04x, want SHA-256", ErrUnsupportedKey, p.nameAlg)
	}
	a := p.attrs
	switch {
	case a&attrFixedTPM == 0, a&attrFixedParent == 0, a&attrSensitiveDataOrigin == 0:
		return nil, fmt.Errorf("AK: %w: not generated in and bound to its TPM (attributes 0x%08x lack fixedTPM, fixedParent or sensitiveDataOrigin)", ErrUnsupportedKey, a)
	case a&attrRestricted == 0, a&attrSign == 0, a&attrDecrypt != 0:
		return nil, fmt.Errorf("AK: %w: not a restricted signing key (attributes 0x%08x)", ErrUnsupportedKey, a)
	}
	if p.symmetric != algNull {
		return nil, fmt.Errorf("AK: %w: a signing key with symmetric algorithm 0x%04x", ErrUnsupportedKey, p.symmetric)
	}
	if p.scheme != algRSASSA || p.schemeHash != algSHA256 {
		return nil, fmt.Errorf("AK: %w: signing scheme 0x%04x with hash 0x%04x, want RSASSA with SHA-256", ErrUnsupportedKey, p.scheme, p.schemeHash)
	}
	if p.keyBits < minAKBits || p.keyBits > maxAKBits || p.keyBits%8 != 0 {
		return nil, fmt.Errorf("AK: %w: %d-bit key, want %d to %d", ErrUnsupportedKey, p.keyBits, minAKBits, maxAKBits)
	}
	if p.exponent != 0 && p.exponent != 65537 {
		return nil, fmt.Errorf("AK: %w: exponent %d, want 65537", ErrUnsupportedKey, p.exponent)
	}
	n := new(big.Int).SetBytes(p.modulus)
	if len(p.modulus) != int(p.keyBits)/8 || n.BitLen() != int(p.keyBits) {
		return nil, fmt.Errorf("AK: %w: modulus of %d bits in a %d-bit key", ErrMalformed, n.BitLen(), p.keyBits)
	}
	return &AK{pub: &rsa.PublicKey{N: n, E: 65537}}, nil
}

// TPMA_OBJECT bits (TPM 2.0 Part 2, 8.3).
const (
	attrFixedTPM            = 1 << 1
	attrFixedParent         = 1 << 4
	attrSensitiveDataOrigin = 1 << 5
	attrRestricted          = 1 << 16
	attrDecrypt             = 1 << 17
	attrSign                = 1 << 18
)

const (
	algRSA  = 0x0001
	algNull = 0x0010
)

// rsaPublic is an RSA TPMT_PUBLIC's fields.
type rsaPublic struct {
	typ, nameAlg       uint16
	attrs              uint32
	symmetric          uint16
	scheme, schemeHash uint16
	keyBits            uint16
	exponent           uint32
	modulus            []byte
}

// parsePublic parses an RSA TPMT_PUBLIC to its last byte; other key types
// stop after the type with only typ set. It is written out rather than
// done with go-tpm's reflection-based reader because it runs on every
// verification, and go-tpm's took twice as long as the signature check
// (parse_test.go checks the two agree).
func parsePublic(b []byte) (*rsaPublic, error) {
	r := &reader{b: b}
	p := &rsaPublic{}
	p.typ = r.u16("type")
	if r.err == nil && p.typ != algRSA {
		return p, nil
	}
	p.nameAlg = r.u16("nameAlg")
	p.attrs = r.u32("objectAttributes")
	r.tpm2b(maxDigest, "authPolicy")
	p.symmetric = r.u16("symmetric algorithm")
	if r.err == nil && p.symmetric != algNull {
		r.u16("symmetric key bits")
		r.u16("symmetric mode")
	}
	p.scheme = r.u16("scheme")
	if r.err == nil && p.scheme != algNull {
		p.schemeHash = r.u16("scheme hash")
	}
	p.keyBits = r.u16("keyBits")
	p.exponent = r.u32("exponent")
	p.modulus = r.tpm2b(maxAKBits/8, "modulus")
	r.end("public area")
	if r.err != nil {
		return nil, fmt.Errorf("AK: %w", r.err)
	}
	return p, nil
}

// Public returns the AK's public key.
func (ak *AK) Public() *rsa.PublicKey { return ak.pub }
