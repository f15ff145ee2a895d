package tpm_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/attest/quote"
	"github.com/bulwark-project/bulwark/internal/tpm"
	"github.com/bulwark-project/bulwark/internal/tpm/swtpmtest"
)

// BenchmarkQuoteSwtpm is one attestation round's TPM latency on swtpm: the
// quote, the PCR read under the same lock, and the verifier's check of the
// result. A hardware TPM signs far more slowly (tens to hundreds of ms).
func BenchmarkQuoteSwtpm(b *testing.B) {
	tp := swtpmtest.Start(b).Open(b)
	a, _, err := tpm.NewAttester(tp, filepath.Join(b.TempDir(), "ak"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	keys, err := a.Keys()
	if err != nil {
		b.Fatal(err)
	}
	nonce := bytes.Repeat([]byte{9}, attest.NonceSize)
	report := []byte(`{"host":"bench"}`)
	for b.Loop() {
		q, sig, vals, err := a.Quote(attest.QuoteData(nonce, report), attest.QuotedPCRs)
		if err != nil {
			b.Fatal(err)
		}
		ev := attest.Evidence{Quote: q, Signature: sig, Report: report, PCRs: map[int][]byte{}}
		for i, v := range vals {
			ev.PCRs[i] = v[:]
		}
		if _, err := quote.Verify(keys.AK.Public, ev, nonce); err != nil {
			b.Fatal(err)
		}
	}
}
