package tpm_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/tpm"
	"github.com/bulwark-project/bulwark/internal/tpm/swtpmtest"
)

func handles(t *testing.T, tp tpm.TPM, ht uint8) []uint32 {
	t.Helper()
	hs, err := tpm.HandlesOf(tp, ht)
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

// swtpm has no resource manager: whatever is not flushed stays loaded until
// it restarts, and a few leaked objects make every later load fail.
func TestAttesterFlushesWhatItLoads(t *testing.T) {
	tp := swtpmtest.Start(t).Open(t)
	akFile := filepath.Join(t.TempDir(), "ak")
	a, _, err := tpm.NewAttester(tp, akFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := a.Keys()
	_ = keys
	// A challenge that the TPM refuses still flushes its session.
	if _, err := a.Activate(attest.Challenge{Credential: []byte{0, 2, 1, 2}, Secret: []byte{0, 2, 1, 2}}); err == nil {
		t.Fatal("garbage challenge activated")
	}
	for range 3 {
		if _, _, _, err := a.Quote(bytes.Repeat([]byte{1}, 32), attest.QuotedPCRs); err != nil {
			t.Fatal(err)
		}
	}
	if got := handles(t, tp, 0x80); len(got) != 1 {
		t.Errorf("transient objects while the Attester is open: %v, want the AK only", got)
	}
	for _, ht := range []uint8{0x02, 0x03} {
		if got := handles(t, tp, ht); len(got) != 0 {
			t.Errorf("sessions left: %v", got)
		}
	}
	persistent := handles(t, tp, 0x81)
	for _, want := range []uint32{tpm.EKHandle, tpm.SRKHandle} {
		found := false
		for _, h := range persistent {
			found = found || h == want
		}
		if !found {
			t.Errorf("persistent handles %v lack 0x%08x", persistent, want)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := handles(t, tp, 0x80); len(got) != 0 {
		t.Errorf("transient objects after Close: %v", got)
	}

	// A daemon that died without Close leaves its AK loaded; the next
	// Attester on the same swtpm flushes it (swtpm holds three objects).
	for range 4 {
		if _, _, err := tpm.NewAttester(tp, akFile, nil); err != nil {
			t.Fatalf("NewAttester after leaked AKs: %v", err)
		}
	}
	if got := handles(t, tp, 0x80); len(got) != 1 {
		t.Errorf("transient objects after abandoned Attesters: %v, want one", got)
	}
}
