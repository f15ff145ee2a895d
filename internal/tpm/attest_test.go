package tpm_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goattest "github.com/google/go-attestation/attest"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/tpm"
	"github.com/bulwark-project/bulwark/internal/tpm/swtpmtest"
)

func newAttester(t *testing.T, tp tpm.TPM, akFile string) (*tpm.Attester, tpm.AKStatus) {
	t.Helper()
	a, status, err := tpm.NewAttester(tp, akFile, nil)
	if err != nil {
		t.Fatalf("NewAttester: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a, status
}

// register does what a verifier does at registration, with go-attestation's
// own verifier code (internal/attest/quote has its own tests for the same).
func register(t *testing.T, keys attest.Keys) ([]byte, attest.Challenge) {
	t.Helper()
	ek, err := parseEK(keys.EKPublic)
	if err != nil {
		t.Fatal(err)
	}
	ap := goattest.ActivationParameters{EK: ek, AK: goattest.AttestationParameters{
		Public: keys.AK.Public, CreateData: keys.AK.CreateData,
		CreateAttestation: keys.AK.CreateAttestation, CreateSignature: keys.AK.CreateSignature,
	}}
	secret, ec, err := ap.Generate()
	if err != nil {
		t.Fatalf("make credential: %v", err)
	}
	return secret, attest.Challenge{Credential: ec.Credential, Secret: ec.Secret}
}

func TestAttesterActivateAndQuote(t *testing.T) {
	tp, _ := openReadySwtpm(t)
	akFile := filepath.Join(t.TempDir(), "ak")
	a, status := newAttester(t, tp, akFile)
	if status != tpm.AKCreated || !status.MustRegister() {
		t.Errorf("status = %v, want created", status)
	}
	if st, err := os.Stat(akFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("AK state file: %v, mode %v", err, st.Mode())
	}
	keys, err := a.Keys()
	if err != nil {
		t.Fatal(err)
	}
	if keys.HardwareRooted || !strings.Contains(keys.TPM, "swtpm") || len(keys.EKPublic) == 0 || keys.EKCertificate != nil {
		t.Errorf("keys = %+v", keys)
	}
	secret, ch := register(t, keys)
	got, err := a.Activate(ch)
	if err != nil {
		t.Fatalf("Activate: %v", err)
	}
	if !bytes.Equal(got, secret) {
		t.Fatalf("Activate recovered %x, want %x", got, secret)
	}

	if err := tp.ExtendPCR(12, sha256.Sum256([]byte("vm"))); err != nil {
		t.Fatal(err)
	}
	nonce := bytes.Repeat([]byte{7}, attest.NonceSize)
	quote, sig, vals, err := a.Quote(attest.QuoteData(nonce, []byte("{}")), attest.QuotedPCRs)
	if err != nil {
		t.Fatalf("Quote: %v", err)
	}
	want, err := tp.ReadPCRs(attest.QuotedPCRs)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range attest.QuotedPCRs {
		if vals[i] != want[i] {
			t.Errorf("quoted PCR %d = %x, want %x", i, vals[i], want[i])
		}
	}
	// go-attestation's verifier as the second, independent reader.
	akPub, err := goattest.ParseAKPublic(keys.AK.Public)
	if err != nil {
		t.Fatal(err)
	}
	var pcrs []goattest.PCR
	for _, i := range attest.QuotedPCRs {
		v := vals[i]
		pcrs = append(pcrs, goattest.PCR{Index: i, Digest: v[:], DigestAlg: 5 /* crypto.SHA256 */})
	}
	if err := akPub.Verify(goattest.Quote{Quote: quote, Signature: sig}, pcrs, attest.QuoteData(nonce, []byte("{}"))); err != nil {
		t.Errorf("go-attestation rejects the quote: %v", err)
	}
}

func TestAttesterNoTPM(t *testing.T) {
	_, _, err := tpm.NewAttester(tpm.None, filepath.Join(t.TempDir(), "ak"), nil)
	if !errors.Is(err, tpm.ErrNoTPM) {
		t.Fatalf("NewAttester(None) = %v, want ErrNoTPM", err)
	}
}

// The AK survives a restart of the same swtpm (a reboot); a TPM whose state
// is gone (cleared, or another TPM) gets a new AK and says so.
func TestAttesterAKPersists(t *testing.T) {
	sw := swtpmtest.Start(t)
	akFile := filepath.Join(t.TempDir(), "ak")
	tp := sw.Open(t)
	a, status := newAttester(t, tp, akFile)
	if status != tpm.AKCreated {
		t.Fatalf("first start: %v", status)
	}
	keys1, _ := a.Keys()
	a.Close()
	tp.Close()

	sw = sw.Restart(t)
	tp = sw.Open(t)
	a, status = newAttester(t, tp, akFile)
	if status != tpm.AKLoaded || status.MustRegister() {
		t.Fatalf("after restart: %v, want loaded", status)
	}
	keys2, _ := a.Keys()
	if !bytes.Equal(keys1.AK.Public, keys2.AK.Public) || !bytes.Equal(keys1.EKPublic, keys2.EKPublic) {
		t.Errorf("keys changed across a restart")
	}
	secret, ch := register(t, keys2)
	if got, err := a.Activate(ch); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("Activate after reload: %x, %v", got, err)
	}
	a.Close()

	// Another TPM: the saved blob is wrapped by a different SRK.
	other, _ := openReadySwtpm(t)
	var logs strings.Builder
	a3, status, err := tpm.NewAttester(other, akFile, slogTo(&logs))
	if err != nil {
		t.Fatal(err)
	}
	defer a3.Close()
	if status != tpm.AKReplaced || !status.MustRegister() {
		t.Errorf("other TPM: %v, want replaced", status)
	}
	if !strings.Contains(logs.String(), "attestation key replaced") {
		t.Errorf("no log line for the replacement: %q", logs.String())
	}
	keys3, _ := a3.Keys()
	if bytes.Equal(keys3.AK.Public, keys1.AK.Public) {
		t.Errorf("replaced AK is the old one")
	}
	if blob, err := os.ReadFile(akFile); err != nil || len(blob) == 0 {
		t.Errorf("state file after replacement: %v", err)
	}
}

func TestAttesterDamagedStateFile(t *testing.T) {
	tp, _ := openReadySwtpm(t)
	dir := t.TempDir()
	akFile := filepath.Join(dir, "ak")
	if err := os.WriteFile(akFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, status := newAttester(t, tp, akFile)
	if status != tpm.AKReplaced {
		t.Errorf("damaged file: %v, want replaced", status)
	}
	// Too large: refused, not replaced (someone else's file, or a bug).
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tpm.NewAttester(tp, big, nil); err == nil || !strings.Contains(err.Error(), "over") {
		t.Errorf("oversized state file: %v", err)
	}
	// A symlink is refused.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(akFile, link); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tpm.NewAttester(tp, link, nil); err == nil {
		t.Errorf("symlinked state file accepted")
	}
}

// Killing swtpm turns every attestation call into an error at once.
func TestAttesterSwtpmKilled(t *testing.T) {
	tp, sw := openReadySwtpm(t)
	a, _ := newAttester(t, tp, filepath.Join(t.TempDir(), "ak"))
	sw.Stop()
	done := make(chan error, 1)
	go func() {
		_, _, _, err := a.Quote(bytes.Repeat([]byte{1}, 32), attest.QuotedPCRs)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Quote on a dead swtpm succeeded")
		}
		if !strings.Contains(err.Error(), sw.Socket) {
			t.Errorf("error does not name the TPM: %v", err)
		}
		t.Logf("quote on a dead swtpm: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Quote on a dead swtpm hangs")
	}
	if _, err := a.Activate(attest.Challenge{Credential: []byte{0, 1, 2}, Secret: []byte{0, 1, 2}}); err == nil {
		t.Error("Activate on a dead swtpm succeeded")
	}
}

func TestAttesterQuoteArguments(t *testing.T) {
	tp, _ := openReadySwtpm(t)
	a, _ := newAttester(t, tp, filepath.Join(t.TempDir(), "ak"))
	for _, c := range []struct {
		data []byte
		pcrs []int
	}{
		{nil, attest.QuotedPCRs},
		{make([]byte, 65), attest.QuotedPCRs},
		{make([]byte, 32), nil},
		{make([]byte, 32), []int{24}},
	} {
		if _, _, _, err := a.Quote(c.data, c.pcrs); err == nil {
			t.Errorf("Quote(%d bytes, %v) succeeded", len(c.data), c.pcrs)
		}
	}
	a.Close()
	if _, _, _, err := a.Quote(make([]byte, 32), attest.QuotedPCRs); err == nil {
		t.Error("Quote after Close succeeded")
	}
}
