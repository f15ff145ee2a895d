package quote

import (
	"bytes"
	"testing"

	"github.com/bulwark-project/bulwark/internal/attest"
)

// FuzzVerify: whatever a host sends, Verify returns an error or the
// recorded quote's values; it never panics, and nothing but the recorded
// quote and signature verifies.
func FuzzVerify(f *testing.F) {
	r := recordedQuote(f)
	ev := r.Evidence
	f.Add(ev.Quote, ev.Signature, ev.PCRs[11], ev.PCRs[12], ev.PCRs[13], ev.Report)
	f.Add(ev.Quote[:10], ev.Signature[:10], []byte{}, []byte{1}, make([]byte, 33), []byte{})
	ak, err := ParseAK(r.AKPublic)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, q, sig, p11, p12, p13, report []byte) {
		e := attest.Evidence{Quote: q, Signature: sig, Report: report, PCRs: map[int][]byte{11: p11, 12: p12, 13: p13}}
		res, err := ak.Verify(e, r.Nonce)
		if err != nil {
			return
		}
		if !bytes.Equal(q, ev.Quote) || !bytes.Equal(report, ev.Report) {
			t.Fatalf("a quote other than the recorded one verified: %x", q)
		}
		for _, i := range attest.QuotedPCRs {
			if v := res.PCRs[i]; !bytes.Equal(v[:], ev.PCRs[i]) {
				t.Fatalf("PCR %d verified as %x, recorded %x", i, v, ev.PCRs[i])
			}
		}
	})
}

// FuzzParseQuote: the TPMS_ATTEST parser on any bytes (Verify only parses
// signed ones, so FuzzVerify rarely reaches it).
func FuzzParseQuote(f *testing.F) {
	f.Add(recordedQuote(f).Evidence.Quote)
	f.Add([]byte{0xff, 0x54, 0x43, 0x47, 0x80, 0x18})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := parseQuote(b)
		if err != nil {
			return
		}
		if len(q.extraData) > maxExtraData || len(q.pcrDigest) > maxDigest || len(q.selections) > maxBanks {
			t.Fatalf("bounds broken: %+v", q)
		}
		checkSelection(q)
	})
}

// FuzzParseAK: the AK public area parser (go-tpm's) and its checks.
func FuzzParseAK(f *testing.F) {
	f.Add(recordedQuote(f).AKPublic)
	f.Fuzz(func(t *testing.T, b []byte) {
		ak, err := ParseAK(b)
		if err != nil {
			return
		}
		if ak.pub.N.BitLen() < minAKBits || ak.pub.N.BitLen() > maxAKBits {
			t.Fatalf("%d-bit AK accepted", ak.pub.N.BitLen())
		}
		// What ParseAK accepts, go-tpm reads as the same key.
		if err := agreesWithGoTPM(b, ak); err != nil {
			t.Fatalf("%x: %v", b, err)
		}
	})
}

// FuzzNewChallenge: hostile AK creation evidence (parsed by go-attestation
// once the EK and AK public pass) gives an error, never a panic. The EK and
// AK public are the recorded ones so that the fuzzer gets past them.
func FuzzNewChallenge(f *testing.F) {
	k := recordedQuote(f).Keys
	f.Add(k.AK.CreateData, k.AK.CreateAttestation, k.AK.CreateSignature)
	f.Fuzz(func(t *testing.T, data, att, sig []byte) {
		keys := attest.Keys{EKPublic: k.EKPublic, AK: attest.AKParams{Public: k.AK.Public, CreateData: data, CreateAttestation: att, CreateSignature: sig}}
		_, _, err := NewChallenge(keys)
		// The signature's encoding may vary (go-attestation ignores
		// bytes after it); what it signs may not.
		if err == nil && (!bytes.Equal(att, k.AK.CreateAttestation) || !bytes.Equal(data, k.AK.CreateData)) {
			t.Fatalf("forged creation evidence accepted: %x %x", data, att)
		}
	})
}
