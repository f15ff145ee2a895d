package quote_test

import (
	"encoding/json"
	"flag"
	"os"
	"testing"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/attest/quote"
)

var update = flag.Bool("update", false, "record testdata/quote.json from a fresh swtpm")

// golden is one quote recorded from swtpm: what a verifier holds (the AK
// public from registration, the nonce it sent) and what the host answered.
type golden struct {
	AKPublic []byte          `json:"ak_public"`
	Keys     attest.Keys     `json:"keys"`
	Nonce    []byte          `json:"nonce"`
	Evidence attest.Evidence `json:"evidence"`
}

const goldenFile = "testdata/quote.json"

func TestGoldenQuote(t *testing.T) {
	if *update {
		h := newHost(t)
		n := nonce(t)
		g := golden{AKPublic: h.keys.AK.Public, Keys: h.keys, Nonce: n, Evidence: h.evidence(t, n, []byte(`{"host":"golden"}`), attest.QuotedPCRs)}
		b, err := json.MarshalIndent(g, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g := loadGolden(t)
	if _, err := quote.Verify(g.AKPublic, g.Evidence, g.Nonce); err != nil {
		t.Fatalf("recorded quote: %v", err)
	}
	if _, _, err := quote.NewChallenge(g.Keys); err != nil {
		t.Fatalf("recorded keys: %v", err)
	}
}

func loadGolden(tb testing.TB) golden {
	tb.Helper()
	b, err := os.ReadFile(goldenFile)
	if err != nil {
		tb.Fatalf("%v (record it with go test -run TestGoldenQuote -update)", err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		tb.Fatal(err)
	}
	return g
}
