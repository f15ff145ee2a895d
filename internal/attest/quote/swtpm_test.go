package quote_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/attest/quote"
	"github.com/bulwark-project/bulwark/internal/tpm"
	"github.com/bulwark-project/bulwark/internal/tpm/swtpmtest"
)

// host is one TPM with its Attester, as a daemon has them.
type host struct {
	tpm  tpm.TPM
	a    *tpm.Attester
	keys attest.Keys
}

func newHost(t testing.TB) *host {
	t.Helper()
	tp := swtpmtest.Start(t).Open(t)
	a, _, err := tpm.NewAttester(tp, filepath.Join(t.TempDir(), "ak"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	keys, err := a.Keys()
	if err != nil {
		t.Fatal(err)
	}
	return &host{tpm: tp, a: a, keys: keys}
}

func nonce(t testing.TB) []byte {
	n := make([]byte, attest.NonceSize)
	if _, err := rand.Read(n); err != nil {
		t.Fatal(err)
	}
	return n
}

// evidence is what the daemon's agent sends for nonce.
func (h *host) evidence(t testing.TB, nonce, report []byte, pcrs []int) attest.Evidence {
	t.Helper()
	q, sig, vals, err := h.a.Quote(attest.QuoteData(nonce, report), pcrs)
	if err != nil {
		t.Fatal(err)
	}
	ev := attest.Evidence{Quote: q, Signature: sig, Report: report, PCRs: map[int][]byte{}}
	for i, v := range vals {
		ev.PCRs[i] = bytes.Clone(v[:])
	}
	return ev
}

func TestRegisterActivates(t *testing.T) {
	h := newHost(t)
	secret, ch, err := quote.NewChallenge(h.keys)
	if err != nil {
		t.Fatalf("NewChallenge: %v", err)
	}
	got, err := h.a.Activate(ch)
	if err != nil {
		t.Fatalf("Activate: %v", err)
	}
	if err := quote.CheckActivation(secret, attest.ChallengeResponse{Secret: got}); err != nil {
		t.Fatal(err)
	}
	if err := quote.CheckActivation(secret, attest.ChallengeResponse{Secret: make([]byte, len(secret))}); !errors.Is(err, quote.ErrActivation) {
		t.Errorf("wrong secret: %v", err)
	}
}

// The swapped-AK attack (Keylime, 2022): a host presents TPM A's EK with an
// AK from TPM B. The AK's own parameters are valid, so the challenge is
// made; neither TPM can open it.
func TestSwappedAKFailsActivation(t *testing.T) {
	a, b := newHost(t), newHost(t)
	forged := a.keys
	forged.AK = b.keys.AK
	_, ch, err := quote.NewChallenge(forged)
	if err != nil {
		t.Fatalf("NewChallenge: %v", err)
	}
	if s, err := a.a.Activate(ch); err == nil {
		t.Errorf("TPM A (the EK's) activated a credential for TPM B's AK: %x", s)
	} else {
		t.Logf("TPM A: %v", err)
	}
	if s, err := b.a.Activate(ch); err == nil {
		t.Errorf("TPM B (the AK's) activated a credential for TPM A's EK: %x", s)
	} else {
		t.Logf("TPM B: %v", err)
	}
}

func TestNewChallengeRefuses(t *testing.T) {
	h := newHost(t)
	other := newHost(t)
	mut := func(f func(k *attest.Keys)) attest.Keys {
		k := h.keys
		k.AK.Public = bytes.Clone(k.AK.Public)
		f(&k)
		return k
	}
	for name, c := range map[string]struct {
		keys attest.Keys
		want error
	}{
		"EK not DER":          {mut(func(k *attest.Keys) { k.EKPublic = []byte("junk") }), quote.ErrMalformed},
		"EK too big":          {mut(func(k *attest.Keys) { k.EKPublic = make([]byte, quote.MaxEKPublic+1) }), quote.ErrMalformed},
		"AK public truncated": {mut(func(k *attest.Keys) { k.AK.Public = k.AK.Public[:40] }), quote.ErrMalformed},
		"AK public trailing":  {mut(func(k *attest.Keys) { k.AK.Public = append(k.AK.Public, 0) }), quote.ErrMalformed},
		// objectAttributes sit at bytes 4..8; bit 17 is decrypt.
		"AK decrypts": {mut(func(k *attest.Keys) { k.AK.Public[5] |= 0x02 }), quote.ErrUnsupportedKey},
		// bit 1 is fixedTPM
		"AK exportable": {mut(func(k *attest.Keys) { k.AK.Public[7] &^= 0x02 }), quote.ErrUnsupportedKey},
		// Creation evidence from another AK: it names another key.
		"creation of another AK": {mut(func(k *attest.Keys) {
			k.AK.CreateData, k.AK.CreateAttestation, k.AK.CreateSignature = other.keys.AK.CreateData, other.keys.AK.CreateAttestation, other.keys.AK.CreateSignature
		}), quote.ErrUnsupportedKey},
		"EK certificate junk": {mut(func(k *attest.Keys) { k.EKCertificate = []byte("junk") }), quote.ErrMalformed},
	} {
		if _, _, err := quote.NewChallenge(c.keys); !errors.Is(err, c.want) {
			t.Errorf("%s: NewChallenge = %v, want %v", name, err, c.want)
		}
	}
}

func TestVerifyOnSwtpm(t *testing.T) {
	h := newHost(t)
	if err := h.tpm.ExtendPCR(attest.PCRLaunch, sha256.Sum256([]byte("vm start"))); err != nil {
		t.Fatal(err)
	}
	report := []byte(`{"host":"h1"}`)
	n1 := nonce(t)
	ev := h.evidence(t, n1, report, attest.QuotedPCRs)

	res, err := quote.VerifyEvidence(h.keys.AK.Public, ev, n1)
	if err != nil {
		t.Fatalf("good quote: %v", err)
	}
	want, err := h.tpm.ReadPCRs(attest.QuotedPCRs)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range attest.QuotedPCRs {
		if res.PCRs[i] != want[i] {
			t.Errorf("verified PCR %d = %x, want %x", i, res.PCRs[i], want[i])
		}
	}
	if !res.Clock.Safe {
		t.Errorf("clock = %+v", res.Clock)
	}

	// A second quote: same boot, later clock.
	n2 := nonce(t)
	ev2 := h.evidence(t, n2, report, attest.QuotedPCRs)
	res2, err := quote.VerifyEvidence(h.keys.AK.Public, ev2, n2)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Clock.ResetCount != res.Clock.ResetCount || res2.Clock.RestartCount != res.Clock.RestartCount || res2.Clock.Clock < res.Clock.Clock {
		t.Errorf("clock went from %+v to %+v", res.Clock, res2.Clock)
	}

	other := newHost(t)
	evOther := other.evidence(t, n1, report, attest.QuotedPCRs)
	ev1114 := h.evidence(t, n1, report, []int{11, 12, 13, 14})

	tamperedPCR := cloneEvidence(ev)
	tamperedPCR.PCRs[attest.PCRLaunch][0] ^= 1
	tamperedQuote := cloneEvidence(ev)
	tamperedQuote.Quote[len(tamperedQuote.Quote)-1] ^= 1
	otherReport := cloneEvidence(ev)
	otherReport.Report = []byte(`{"host":"h2"}`)
	otherPCRs := cloneEvidence(ev1114)
	delete(otherPCRs.PCRs, 14)

	for name, c := range map[string]struct {
		ak    []byte
		ev    attest.Evidence
		nonce []byte
		want  error
	}{
		"wrong nonce":                  {h.keys.AK.Public, ev, nonce(t), quote.ErrNonceMismatch},
		"old quote, fresh nonce":       {h.keys.AK.Public, ev, n2, quote.ErrNonceMismatch},
		"other report":                 {h.keys.AK.Public, otherReport, n1, quote.ErrNonceMismatch},
		"tampered PCR value":           {h.keys.AK.Public, tamperedPCR, n1, quote.ErrPCRDigestMismatch},
		"tampered quote":               {h.keys.AK.Public, tamperedQuote, n1, quote.ErrBadSignature},
		"signed by another TPM's AK":   {h.keys.AK.Public, evOther, n1, quote.ErrBadSignature},
		"verified with another AK":     {other.keys.AK.Public, ev, n1, quote.ErrBadSignature},
		"other PCR selection":          {h.keys.AK.Public, otherPCRs, n1, quote.ErrSelectionMismatch},
		"PCR 14 sent as well":          {h.keys.AK.Public, ev1114, n1, quote.ErrMalformed},
		"signature cut":                {h.keys.AK.Public, withSig(ev, ev.Signature[:len(ev.Signature)-1]), n1, quote.ErrMalformed},
		"signature from another quote": {h.keys.AK.Public, withSig(ev, ev2.Signature), n1, quote.ErrBadSignature},
	} {
		_, err := quote.Verify(c.ak, c.ev, c.nonce)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", name, err, c.want)
		}
	}
}

func cloneEvidence(ev attest.Evidence) attest.Evidence {
	c := ev
	c.Quote, c.Signature, c.Report = bytes.Clone(ev.Quote), bytes.Clone(ev.Signature), bytes.Clone(ev.Report)
	c.PCRs = map[int][]byte{}
	for i, v := range ev.PCRs {
		c.PCRs[i] = bytes.Clone(v)
	}
	return c
}

func withSig(ev attest.Evidence, sig []byte) attest.Evidence {
	c := cloneEvidence(ev)
	c.Signature = bytes.Clone(sig)
	return c
}

// A refused activation leaves the TPM working.
func TestRefusedActivationLeavesTPMWorking(t *testing.T) {
	a, b := newHost(t), newHost(t)
	_, ch, err := quote.NewChallenge(a.keys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.a.Activate(ch); err == nil {
		t.Fatal("TPM B activated a credential made for TPM A")
	}
	n := nonce(t)
	ev := b.evidence(t, n, nil, attest.QuotedPCRs)
	if _, err := quote.Verify(b.keys.AK.Public, ev, n); err != nil {
		t.Fatal(err)
	}
	secret, ch, err := quote.NewChallenge(b.keys)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.a.Activate(ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := quote.CheckActivation(secret, attest.ChallengeResponse{Secret: got}); err != nil {
		t.Fatal(err)
	}
}
