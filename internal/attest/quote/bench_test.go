package quote

import "testing"

// BenchmarkVerify is the verifier's CPU cost per host per poll, from one
// recorded swtpm quote (RSA-2048 AK): "Verify" parses the AK public as a
// verifier that keeps only the bytes does; "ParsedAK" reuses a parsed AK.
func BenchmarkVerify(b *testing.B) {
	r := recordedQuote(b)
	b.Run("Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Verify(r.AKPublic, r.Evidence, r.Nonce); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ParsedAK", func(b *testing.B) {
		ak, err := ParseAK(r.AKPublic)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ak.Verify(r.Evidence, r.Nonce); err != nil {
				b.Fatal(err)
			}
		}
	})
}
