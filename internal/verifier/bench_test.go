package verifier

import (
	"bytes"
	"crypto"
	"fmt"
	"testing"
	"time"

	goattest "github.com/google/go-attestation/attest"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/attest/policy"
)

// benchVMs is the size of the simulated host: VMs running, each with one
// launch in PCR 12 and a clean introspection scan in the report.
const benchVMs = 20

// recorded is evidence a real swtpm produced for one nonce.
type recorded struct {
	nonce []byte
	ev    attest.Evidence
}

// benchEvidence builds a host with benchVMs launches on a real swtpm and
// records n quotes over distinct nonces, so that each verification below
// checks a fresh nonce against a real signature.
func benchEvidence(b *testing.B, n int) (Host, *policy.Policy, []recorded) {
	b.Helper()
	h := newTestHost(b)
	for i := range benchVMs {
		h.launch(fmt.Sprintf("vm%02d", i), "k1", "i1")
	}
	now := time.Now().UTC()
	h.mu.Lock()
	for i := range h.report.VMs {
		h.report.VMs[i].Introspection = &attest.Introspection{Checked: now}
	}
	h.report.Runtime = []attest.RuntimeCheck{{Process: "daemon", PID: 1, Binary: "/usr/bin/bulwark", Checked: now, Bytes: 2 << 20}}
	h.mu.Unlock()
	pol, err := policy.Parse(goldenPolicy(b, h, 1))
	if err != nil {
		b.Fatal(err)
	}
	keys, err := h.att.Keys()
	if err != nil {
		b.Fatal(err)
	}
	out := make([]recorded, n)
	for i := range out {
		nonce := make([]byte, attest.NonceSize)
		nonce[0], nonce[1] = byte(i), byte(i>>8)
		ev, err := h.Quote(b.Context(), nonce)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = recorded{nonce, ev}
	}
	return Host{Name: "bench", Keys: keys}, pol, out
}

// BenchmarkCheck is the verifier's CPU cost per host and poll: quote
// signature, nonce and report binding, PCR digest, event-log parse and
// replay, report decoding and the policy (host layer, 20 VMs' boot
// artefacts and introspection). hosts/core@2s is how many hosts one core
// can keep verified at the default 2 s interval (goal: ≥ 5,000).
//
// BenchmarkCheck/go-attestation is the peer: go-attestation's quote
// verification and event-log replay of the same evidence, with no policy.
func BenchmarkCheck(b *testing.B) {
	host, pol, recs := benchEvidence(b, 32)
	b.Run("bulwark", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			r := recs[i%len(recs)]
			if v := Check(host, pol, r.nonce, r.ev, time.Now()); v.Status != attest.Trusted {
				b.Fatalf("%s: %s", v.Status, reasonsOf(v))
			}
		}
		perOp := float64(b.Elapsed()) / float64(b.N)
		b.ReportMetric(float64(2*time.Second)/perOp, "hosts/core@2s")
	})
	b.Run("go-attestation", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			r := recs[i%len(recs)]
			ak, err := goattest.ParseAKPublic(host.Keys.AK.Public)
			if err != nil {
				b.Fatal(err)
			}
			var pcrs []goattest.PCR
			for _, idx := range attest.QuotedPCRs {
				pcrs = append(pcrs, goattest.PCR{Index: idx, Digest: bytes.Clone(r.ev.PCRs[idx]), DigestAlg: crypto.SHA256})
			}
			q := goattest.Quote{Quote: r.ev.Quote, Signature: r.ev.Signature}
			if err := ak.Verify(q, pcrs, attest.QuoteData(r.nonce, r.ev.Report)); err != nil {
				b.Fatal(err)
			}
			el, err := goattest.ParseEventLog(r.ev.EventLog)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := el.Verify(pcrs); err != nil {
				b.Fatal(err)
			}
		}
		perOp := float64(b.Elapsed()) / float64(b.N)
		b.ReportMetric(float64(2*time.Second)/perOp, "hosts/core@2s")
	})
}
