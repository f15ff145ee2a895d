package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// BenchmarkAppendAnchoring measures the cost of anchoring in one run: each
// iteration appends one record to a log without sinks and one to a log
// with every sink (anchor file, syslog over UDP, HTTPS to a local TLS
// receiver), timing each, so that disk and machine drift hit both alike.
// on/off is the anchored rate as a fraction of the plain one; the goal is
// 0.8 or more. Like BenchmarkAppend it needs a real disk.
func BenchmarkAppendAnchoring(b *testing.B) {
	ctx := context.Background()
	plain := openLog(b, b.TempDir(), DefaultCheckpointEvery)

	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer udp.Close()
	go func() { // drain, as a syslog daemon would
		buf := make([]byte, 64<<10)
		for {
			if _, _, err := udp.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	defer recv.Close()
	caFile := filepath.Join(b.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: recv.Certificate().Raw}), 0o600)

	dir := b.TempDir()
	key, err := LoadOrCreateKey(dir)
	if err != nil {
		b.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	af, err := OpenAnchorFile(filepath.Join(b.TempDir(), "anchors.jsonl"), false)
	if err != nil {
		b.Fatal(err)
	}
	sys, err := NewSyslogSink(SyslogConfig{Addr: "udp://" + udp.LocalAddr().String(), PublicKey: pub})
	if err != nil {
		b.Fatal(err)
	}
	web, err := NewHTTPSSink(HTTPSConfig{URL: recv.URL, CAFile: caFile, PublicKey: pub})
	if err != nil {
		b.Fatal(err)
	}
	anchored, err := Open(ctx, dir, key, DefaultCheckpointEvery, WithAnchorFile(af), WithSink(sys), WithSink(web))
	if err != nil {
		b.Fatal(err)
	}
	defer anchored.Close()

	r := testRecord(1)
	r.Detail = "permission vm.start on vm/web1 granted by role operator"
	var off, on time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := plain.Append(ctx, r); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := anchored.Append(ctx, r); err != nil {
			b.Fatal(err)
		}
		off, on = off+t1.Sub(t0), on+time.Since(t1)
	}
	b.ReportMetric(float64(b.N)/off.Seconds(), "off-appends/s")
	b.ReportMetric(float64(b.N)/on.Seconds(), "on-appends/s")
	b.ReportMetric(off.Seconds()/on.Seconds(), "on/off")
	if sys.Dropped()+web.Dropped() > 0 {
		b.Errorf("dropped %d syslog and %d HTTPS checkpoints", sys.Dropped(), web.Dropped())
	}
}

// BenchmarkOpen100k opens a 100,000-record log with its anchor file:
// Open verifies the chain, the checkpoints and every anchor before it
// returns, so this is the daemon's start-up cost for such a log.
func BenchmarkOpen100k(b *testing.B) {
	dir, anchors := b.TempDir(), filepath.Join(b.TempDir(), "anchors.jsonl")
	l := openAnchored(b, dir, anchors, DefaultCheckpointEvery)
	for range 10 {
		fill(b, l, 10_000)
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		l := openAnchored(b, dir, anchors, DefaultCheckpointEvery)
		if rep := l.OpenReport(); !rep.OK() || rep.Records != 100_000 || rep.Anchors != 101_000 {
			b.Fatalf("%+v", rep)
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
