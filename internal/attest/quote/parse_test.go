package quote

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/bulwark-project/bulwark/internal/attest"
)

type recorded struct {
	AKPublic []byte          `json:"ak_public"`
	Keys     attest.Keys     `json:"keys"`
	Nonce    []byte          `json:"nonce"`
	Evidence attest.Evidence `json:"evidence"`
}

// recordedQuote is testdata/quote.json (recorded from swtpm by
// TestGoldenQuote -update).
func recordedQuote(tb testing.TB) recorded {
	tb.Helper()
	b, err := os.ReadFile("testdata/quote.json")
	if err != nil {
		tb.Fatal(err)
	}
	var r recorded
	if err := json.Unmarshal(b, &r); err != nil {
		tb.Fatal(err)
	}
	return r
}

// go-tpm's reflection-based reader is the second, independent reader of
// the recorded quote.
func TestParseQuoteAgreesWithGoTPM(t *testing.T) {
	raw := recordedQuote(t).Evidence.Quote
	q, err := parseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	att, err := tpm2.Unmarshal[tpm2.TPMSAttest](raw)
	if err != nil {
		t.Fatal(err)
	}
	info, err := att.Attested.Quote()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(q.extraData, att.ExtraData.Buffer) || !bytes.Equal(q.pcrDigest, info.PCRDigest.Buffer) {
		t.Errorf("extraData/digest differ: %x %x vs %x %x", q.extraData, q.pcrDigest, att.ExtraData.Buffer, info.PCRDigest.Buffer)
	}
	ci := att.ClockInfo
	if q.clock != (ClockInfo{Clock: ci.Clock, ResetCount: ci.ResetCount, RestartCount: ci.RestartCount, Safe: bool(ci.Safe)}) || q.firmware != att.FirmwareVersion {
		t.Errorf("clock %+v fw %d, go-tpm %+v fw %d", q.clock, q.firmware, ci, att.FirmwareVersion)
	}
	if len(q.selections) != len(info.PCRSelect.PCRSelections) {
		t.Fatalf("selections: %d vs %d", len(q.selections), len(info.PCRSelect.PCRSelections))
	}
	for i, s := range info.PCRSelect.PCRSelections {
		if q.selections[i].hash != uint16(s.Hash) || !bytes.Equal(q.selections[i].bits, s.PCRSelect) {
			t.Errorf("selection %d: %+v vs %+v", i, q.selections[i], s)
		}
	}
	if err := checkSelection(q); err != nil {
		t.Error(err)
	}
}

func TestParseQuoteRejects(t *testing.T) {
	raw := recordedQuote(t).Evidence.Quote
	set := func(off int, b ...byte) []byte {
		c := bytes.Clone(raw)
		copy(c[off:], b)
		return c
	}
	// Offsets in the recorded quote: magic 0, type 4, qualifiedSigner 6
	// (2+34 bytes), extraData 42 (2+32), clockInfo 76 (safe at 92),
	// firmware 93, selection count 101.
	safeOff, countOff := 92, 101
	if n := binary.BigEndian.Uint16(raw[6:]); n != 34 {
		t.Fatalf("recorded quote's name is %d bytes; offsets below assume 34", n)
	}
	cases := map[string]struct {
		b    []byte
		want error
	}{
		"empty":              {nil, ErrMalformed},
		"magic only":         {raw[:4], ErrMalformed},
		"wrong magic":        {set(0, 0xff, 0x54, 0x43, 0x48), ErrNotQuote},
		"certify, not quote": {set(4, 0x80, 0x17), ErrNotQuote},
		"trailing byte":      {append(bytes.Clone(raw), 0), ErrMalformed},
		"safe is 2":          {set(safeOff, 2), ErrMalformed},
		"many banks":         {set(countOff, 0, 0, 1, 0), ErrMalformed},
		"huge name":          {set(6, 0xff, 0xff), ErrMalformed},
		"select of 9":        {set(countOff+6, 9), ErrMalformed},
	}
	for i := range len(raw) {
		cases[fmt.Sprintf("cut at %d", i)] = struct {
			b    []byte
			want error
		}{raw[:i], ErrMalformed}
	}
	for name, c := range cases {
		if _, err := parseQuote(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestParseSignatureRejects(t *testing.T) {
	raw := recordedQuote(t).Evidence.Signature
	if _, err := parseSignature(raw); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"empty":    nil,
		"cut":      raw[:len(raw)-1],
		"trailing": append(bytes.Clone(raw), 0),
		"RSAPSS":   append([]byte{0, 0x16}, raw[2:]...),
		"SHA-1":    append([]byte{0, 0x14, 0, 0x04}, raw[4:]...),
		"huge":     append([]byte{0, 0x14, 0, 0x0b, 0xff, 0xff}, raw[6:]...),
	} {
		if _, err := parseSignature(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestParseAK(t *testing.T) {
	pub := recordedQuote(t).AKPublic
	ak, err := ParseAK(pub)
	if err != nil {
		t.Fatal(err)
	}
	if ak.Public().N.BitLen() != 2048 || ak.Public().E != 65537 {
		t.Errorf("AK %d bits, e %d", ak.Public().N.BitLen(), ak.Public().E)
	}
	if _, err := ParseAK(make([]byte, MaxAKPublic+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized: %v", err)
	}
	for i := range len(pub) {
		if _, err := ParseAK(pub[:i]); err == nil {
			t.Errorf("AK public cut at %d parsed", i)
		}
	}
}

// go-tpm is the second reader of the AK public area.
func TestParsePublicAgreesWithGoTPM(t *testing.T) {
	pub := recordedQuote(t).AKPublic
	mine, err := ParseAK(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := agreesWithGoTPM(pub, mine); err != nil {
		t.Fatal(err)
	}
}

// agreesWithGoTPM checks that go-tpm reads pub as the same RSA restricted
// signing key.
func agreesWithGoTPM(pub []byte, ak *AK) error {
	p, err := tpm2.Unmarshal[tpm2.TPMTPublic](pub)
	if err != nil {
		return fmt.Errorf("go-tpm: %v", err)
	}
	if n := len(tpm2.Marshal(p)); n != len(pub) {
		return fmt.Errorf("go-tpm reads %d of %d bytes", n, len(pub))
	}
	a := p.ObjectAttributes
	if p.Type != tpm2.TPMAlgRSA || p.NameAlg != tpm2.TPMAlgSHA256 || !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || !a.Restricted || !a.SignEncrypt || a.Decrypt {
		return fmt.Errorf("go-tpm reads %+v", p)
	}
	parms, err := p.Parameters.RSADetail()
	if err != nil {
		return err
	}
	ss, err := parms.Scheme.Details.RSASSA()
	if err != nil || parms.Scheme.Scheme != tpm2.TPMAlgRSASSA || ss.HashAlg != tpm2.TPMAlgSHA256 {
		return fmt.Errorf("go-tpm reads scheme %+v", parms.Scheme)
	}
	unique, err := p.Unique.RSA()
	if err != nil {
		return err
	}
	k, err := tpm2.RSAPub(parms, unique)
	if err != nil {
		return err
	}
	if !k.Equal(ak.pub) {
		return fmt.Errorf("go-tpm reads key %v, ParseAK %v", k, ak.pub)
	}
	return nil
}
