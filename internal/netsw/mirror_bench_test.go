package netsw_test

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/mirror"
	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

// BenchmarkPipelineMirror is BenchmarkPipeline (64-byte frames of 10,000
// established flows, 1,000 rules) with, in alternating chunks, no mirror
// stage, the mirror stage with no session, and the mirror stage with a
// pcap session copying every frame (source: the client). It reports
// ns/frame of each, their ratios to no stage, and how many copies the
// session's writer wrote and dropped (it runs on another core, as in the
// daemon).
//
//	go test -run '^$' -bench PipelineMirror -benchmem ./internal/netsw/
func BenchmarkPipelineMirror(b *testing.B) {
	const flows = 10_000
	x := netsw.NewIPSBench(b, flows)
	sw := x.Switch()
	payload := make([]byte, 64-packettest.IPv4L4-packettest.TCPLen)
	frames := make([][]byte, flows)
	for i := range frames {
		frames[i] = x.ClientFlow(i).TCP(uint16(10000+i/8), 443, packet.TCPAck|packet.TCPPsh, 1001, 5001, payload)
	}
	dir := b.TempDir()
	empty, err := mirror.NewManager(sw, filepath.Join(dir, "empty"), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer empty.Close()
	capture, err := mirror.NewManager(sw, filepath.Join(dir, "pcap"), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer capture.Close()
	s := mirror.Session{Name: "all", Network: "n", Sources: []string{"client"}, Target: mirror.Target{Kind: mirror.TargetPcap, MaxBytes: mirror.MaxMaxBytes}}
	if err := capture.Set([]mirror.Session{s}); err != nil {
		b.Fatal(err)
	}
	modes := []func(){
		func() { sw.SetMirrorStages() },
		func() { sw.SetMirrorStages(empty) },
		func() { sw.SetMirrorStages(capture) },
	}
	const chunk = 256
	var spent [3]time.Duration
	var count [3]int
	before := x.ServerFrames()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		k := (i / chunk) % 3
		modes[k]()
		n := min(chunk, b.N-i)
		t0 := time.Now()
		for j := range n {
			x.FromClient(frames[(i+j)%flows])
		}
		spent[k] += time.Since(t0)
		count[k] += n
		i += n
	}
	b.StopTimer()
	sw.SetMirrorStages()
	if sent := x.ServerFrames() - before; sent != b.N {
		b.Fatalf("%d of %d frames forwarded", sent, b.N)
	}
	// Every frame in pcap mode was copied: written or dropped (queue full).
	var st mirror.SessionStatus
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		st = capture.Status()[0]
		if st.Frames+st.Dropped == uint64(count[2]) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d copies written, %d dropped, of %d frames", st.Frames, st.Dropped, count[2])
		}
	}
	if err := capture.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Dropped)/float64(max(count[2], 1)), "copies-dropped/frame")
	per := func(k int) float64 { return float64(spent[k].Nanoseconds()) / float64(max(count[k], 1)) }
	b.ReportMetric(per(0), "ns/frame-no-stage")
	if count[1] > 0 {
		b.ReportMetric(per(1), "ns/frame-no-session")
		b.ReportMetric(per(1)/per(0), "no-session/no-stage")
	}
	if count[2] > 0 {
		b.ReportMetric(per(2), "ns/frame-pcap")
		b.ReportMetric(per(2)/per(0), "pcap/no-stage")
	}
}
