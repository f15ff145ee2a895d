package quote

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"

	goattest "github.com/google/go-attestation/attest"

	"github.com/bulwark-project/bulwark/internal/attest"
)

// ErrActivation is returned by CheckActivation when the host did not
// recover the challenge's secret: its AK is not in the TPM of that EK.
var ErrActivation = errors.New("credential activation failed: the AK is not bound to that EK")

// NewChallenge checks a host's keys and makes a credential challenge
// (TPM2_MakeCredential, in software) that only the TPM holding keys.EK,
// with an object of exactly the AK's name loaded, can open. It returns the
// secret the host must send back (see CheckActivation).
//
// Checked here: sizes; the EK is RSA (2048 bits or more) or ECDSA (P-256
// or larger) PKIX DER; an EK certificate, when present, certifies that same
// key (its chain to a TPM manufacturer is the caller's policy); the AK is
// what ParseAK accepts; and, through go-attestation, the AK's creation
// attestation is signed by the AK and names it (so the name the challenge
// is bound to is the name of these attributes). The TPM's refusal to
// activate for any other object is what ties the AK to the EK.
func NewChallenge(keys attest.Keys) (secret []byte, ch attest.Challenge, err error) {
	if err := checkKeySizes(keys); err != nil {
		return nil, ch, err
	}
	ek, err := parseEK(keys)
	if err != nil {
		return nil, ch, err
	}
	if _, err := ParseAK(keys.AK.Public); err != nil {
		return nil, ch, err
	}
	ap := goattest.ActivationParameters{
		EK: ek,
		AK: goattest.AttestationParameters{
			Public:            keys.AK.Public,
			CreateData:        keys.AK.CreateData,
			CreateAttestation: keys.AK.CreateAttestation,
			CreateSignature:   keys.AK.CreateSignature,
		},
	}
	secret, ec, err := ap.Generate()
	if err != nil {
		return nil, ch, fmt.Errorf("AK: %w: %v", ErrUnsupportedKey, err)
	}
	return secret, attest.Challenge{Credential: ec.Credential, Secret: ec.Secret}, nil
}

// CheckActivation compares the secret a host recovered with the one
// NewChallenge returned, in constant time.
func CheckActivation(secret []byte, resp attest.ChallengeResponse) error {
	if len(secret) == 0 || subtle.ConstantTimeCompare(secret, resp.Secret) != 1 {
		return ErrActivation
	}
	return nil
}

func checkKeySizes(keys attest.Keys) error {
	for _, f := range []struct {
		what string
		n    int
		max  int
	}{
		{"EK public key", len(keys.EKPublic), MaxEKPublic},
		{"EK certificate", len(keys.EKCertificate), MaxEKCertificate},
		{"AK public area", len(keys.AK.Public), MaxAKPublic},
		{"AK creation data", len(keys.AK.CreateData), MaxCreation},
		{"AK creation attestation", len(keys.AK.CreateAttestation), MaxCreation},
		{"AK creation signature", len(keys.AK.CreateSignature), MaxCreation},
	} {
		if f.n > f.max {
			return fmt.Errorf("keys: %w: %s of %d bytes exceeds %d", ErrMalformed, f.what, f.n, f.max)
		}
	}
	return nil
}

func parseEK(keys attest.Keys) (crypto.PublicKey, error) {
	ek, err := x509.ParsePKIXPublicKey(keys.EKPublic)
	if err != nil {
		return nil, fmt.Errorf("EK: %w: %v", ErrMalformed, err)
	}
	switch k := ek.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("EK: %w: %d-bit RSA", ErrUnsupportedKey, k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize < 256 {
			return nil, fmt.Errorf("EK: %w: %d-bit curve", ErrUnsupportedKey, k.Curve.Params().BitSize)
		}
	default:
		return nil, fmt.Errorf("EK: %w: %T", ErrUnsupportedKey, ek)
	}
	if len(keys.EKCertificate) > 0 {
		cert, err := goattest.ParseEKCertificate(keys.EKCertificate)
		if err != nil {
			return nil, fmt.Errorf("EK certificate: %w: %v", ErrMalformed, err)
		}
		der, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
		if err != nil || !bytes.Equal(der, keys.EKPublic) {
			return nil, fmt.Errorf("EK: %w: the EK certificate is for another key", ErrUnsupportedKey)
		}
	}
	return ek, nil
}
