package eventlog

import (
	"bytes"
	"crypto"
	"testing"

	"github.com/google/go-attestation/attest"
)

// attestPCRs turns replayed values into go-attestation's PCR list.
func attestPCRs(pcrs map[uint32][32]byte) []attest.PCR {
	var out []attest.PCR
	for i, v := range pcrs {
		out = append(out, attest.PCR{Index: int(i), Digest: bytes.Clone(v[:]), DigestAlg: crypto.SHA256})
	}
	return out
}

// TestGoAttestationVerifies checks the format with an independent reader:
// go-attestation parses the log and replays it to the PCRs Replay computes.
func TestGoAttestationVerifies(t *testing.T) {
	events := sampleEvents()
	raw, err := Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	el, err := attest.ParseEventLog(raw)
	if err != nil {
		t.Fatalf("go-attestation ParseEventLog: %v", err)
	}
	if len(el.Algs) != 1 || el.Algs[0] != attest.HashSHA256 {
		t.Fatalf("go-attestation sees banks %v, want [SHA256]", el.Algs)
	}
	verified, err := el.Verify(attestPCRs(Replay(events)))
	if err != nil {
		t.Fatalf("go-attestation Verify: %v", err)
	}
	if len(verified) != len(events) {
		t.Fatalf("go-attestation verified %d events, want %d", len(verified), len(events))
	}
	for i, v := range verified {
		e := events[i]
		if v.Index != int(e.PCR) || uint32(v.Type) != uint32(e.Type) || !bytes.Equal(v.Digest, e.Digest[:]) || !bytes.Equal(v.Data, e.Data) {
			t.Errorf("event %d: go-attestation read %+v, wrote %+v", i, v, e)
		}
	}
}

// TestGoAttestationRejectsTampering makes sure the check above has teeth: an
// edited digest no longer replays to the PCRs of the original log.
func TestGoAttestationRejectsTampering(t *testing.T) {
	events := sampleEvents()
	pcrs := attestPCRs(Replay(events))
	tampered := append([]Event(nil), events...)
	tampered[1].Digest[0] ^= 1
	raw, err := Marshal(tampered)
	if err != nil {
		t.Fatal(err)
	}
	el, err := attest.ParseEventLog(raw)
	if err != nil {
		t.Fatalf("go-attestation ParseEventLog: %v", err)
	}
	if _, err := el.Verify(pcrs); err == nil {
		t.Fatal("go-attestation verified a tampered log")
	}
}
