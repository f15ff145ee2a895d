package audit

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"
)

// BenchmarkAppend measures durable appends: each is one transaction whose
// WAL write is fsynced (synchronous=FULL) before Append returns, so the
// figure is bounded by the disk's sync latency. b.TempDir must be on a real
// disk, not tmpfs, for the number to mean anything.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	l := openLog(b, b.TempDir(), DefaultCheckpointEvery)
	r := testRecord(1)
	r.Detail = "permission vm.start on vm/web1 granted by role operator"
	start := time.Now()
	for b.Loop() {
		if _, err := l.Append(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}

// BenchmarkVerify10k verifies a 10,000-record log end to end: one SQLite
// snapshot read, hashing and checkpoint signatures.
func BenchmarkVerify10k(b *testing.B) {
	ctx := context.Background()
	l := openLog(b, b.TempDir(), DefaultCheckpointEvery)
	fill(b, l, 10_000)
	for b.Loop() {
		rep, err := l.Verify(ctx)
		if err != nil || !rep.OK() || rep.Records != 10_000 {
			b.Fatalf("%+v, %v", rep, err)
		}
	}
	b.ReportMetric(float64(b.N*10_000)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkVerifyRecords10k is the pure core alone, on records in memory.
func BenchmarkVerifyRecords10k(b *testing.B) {
	key := testKey(1)
	recs, cps := buildLog(10_000, DefaultCheckpointEvery, key)
	pub := key.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if ps := VerifyRecords(recs, pub, cps); len(ps) != 0 {
			b.Fatal(ps)
		}
	}
	b.ReportMetric(float64(b.N*10_000)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkNormalize(b *testing.B) {
	r := testRecord(1)
	r.Detail = "permission vm.start on vm/web1 granted by role operator"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Normalize(r); err != nil {
			b.Fatal(err)
		}
	}
}
