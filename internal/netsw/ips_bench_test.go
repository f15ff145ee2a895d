package netsw_test

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/ips/engine"
	"github.com/bulwark-project/bulwark/internal/ips/rules"
	"github.com/bulwark-project/bulwark/internal/ipsstage"
	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
	"github.com/bulwark-project/bulwark/internal/netsw/portsec"
	"github.com/bulwark-project/bulwark/internal/shareddata"
)

// The IPS stage's cost on the switch's established path: the pipeline
// benchmark's switch (1,000 firewall rules, pipeline_bench_test.go) with
// established TCP connections, each sending in-order data segments that
// the server acknowledges, with the IPS stage (block mode, no rule
// matching) in and out of the pipeline in alternate chunks of the same
// run. They report ns per frame of each, their ratio and the latency the
// stage adds per frame.
//
//	go test -run '^$' -bench PipelineIPS -benchmem ./internal/netsw/

// ipsTraffic is in-order data and acknowledgments of established flows.
type ipsTraffic struct {
	x         *netsw.IPSBench
	data, ack [][]byte
	seq       []uint32
	payload   int
}

func newIPSTraffic(x *netsw.IPSBench, flows, payload int) *ipsTraffic {
	t := &ipsTraffic{x: x, payload: payload, seq: make([]uint32, flows)}
	rng := rand.New(rand.NewSource(1))
	for i := range flows {
		fl := x.ClientFlow(i)
		sport := uint16(10000 + i/portsec.MaxIPs)
		p := make([]byte, payload)
		for j := range p {
			p[j] = byte('a' + rng.Intn(26)) // text that no rule matches
		}
		t.data = append(t.data, fl.TCP(sport, 443, packet.TCPAck|packet.TCPPsh, 1001, 5001, p))
		t.ack = append(t.ack, fl.Reverse().TCP(443, sport, packet.TCPAck, 5001, 1001, nil))
		t.seq[i] = 1001
	}
	return t
}

// send sends flow i%flows's next segment and the server's acknowledgment
// (two frames). Parse and the engine do not check TCP checksums, which the
// rewritten numbers leave stale.
func (t *ipsTraffic) send(i int) {
	k := i % len(t.data)
	s := t.seq[k]
	binary.BigEndian.PutUint32(t.data[k][packettest.IPv4L4+4:], s)
	s += uint32(t.payload)
	t.seq[k] = s
	binary.BigEndian.PutUint32(t.ack[k][packettest.IPv4L4+8:], s)
	t.x.FromClient(t.data[k])
	t.x.FromServer(t.ack[k])
}

const benchFlows = 1000

func benchStage(tb testing.TB, e *engine.Engine) *ipsstage.Stage {
	st := ipsstage.New(ipsstage.Options{Shards: 4})
	tb.Cleanup(st.Close)
	st.SetEngine(e)
	if err := st.SetPolicy(ipsstage.Policy{Networks: map[string]ipsstage.NetPolicy{"n": {Mode: ipsstage.ModeBlock}}}); err != nil {
		tb.Fatal(err)
	}
	return st
}

const noMatchRules = `
drop tcp any any -> any any (msg:"never"; flow:established,to_server; content:"EXPLOIT-0123456789"; sid:1;)
alert tcp any any -> any 443 (msg:"never either"; content:"|de ad be ef|"; sid:2;)
alert udp any any -> any 53 (msg:"dns"; content:"evil"; sid:3;)
`

func loadRules(tb testing.TB, text string) *engine.Engine {
	set, st := rules.Load(strings.NewReader(text), &rules.Options{Disabled: engine.Disabled})
	if st.Loaded == 0 {
		tb.Fatalf("no rules loaded: %v", st.Warnings)
	}
	e, err := engine.New(set, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// etOpen compiles every loadable ET Open rule (skips without the data).
func etOpen(tb testing.TB) *engine.Engine {
	dir, err := shareddata.Dir("et-open")
	if err != nil {
		tb.Skip(err)
	}
	cb, err := os.ReadFile(filepath.Join(dir, "classification.config"))
	if err != nil {
		tb.Fatal(err)
	}
	cls, err := rules.ParseClassifications(cb)
	if err != nil {
		tb.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.rules"))
	l := rules.NewLoader(&rules.Options{Classes: cls, Disabled: engine.Disabled})
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		if err := l.Add(bytes.NewReader(b), filepath.Base(f)); err != nil {
			tb.Fatal(err)
		}
	}
	set, _ := l.Finish()
	e, err := engine.New(set, cls, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func benchPipelineIPS(b *testing.B, e *engine.Engine, payload int) {
	x := netsw.NewIPSBench(b, benchFlows)
	tr := newIPSTraffic(x, benchFlows, payload)
	st := benchStage(b, e)
	sw := x.Switch()
	sw.SetInspectStages(st)
	for i := range benchFlows { // the engine's flows exist (picked up mid-stream)
		tr.send(i)
	}
	before := x.ServerFrames()
	const chunk = 512
	var spent [2]time.Duration // without, with the stage
	var count [2]int
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		on := (i/chunk)%2 == 1
		if on {
			sw.SetInspectStages(st)
		} else {
			sw.SetInspectStages()
		}
		n := min(chunk, b.N-i)
		t0 := time.Now()
		for j := range n {
			tr.send(i + j)
		}
		k := 0
		if on {
			k = 1
		}
		spent[k] += time.Since(t0)
		count[k] += 2 * n
		i += n
	}
	b.StopTimer()
	if sent := x.ServerFrames() - before; sent != b.N {
		b.Fatalf("%d of %d data frames forwarded; client drops %v, stage %+v", sent, b.N, x.Drops(x.ClientPort()), st.Stats())
	}
	if s := st.Stats(); s.Alerts != 0 {
		b.Logf("%d alerts: %+v", s.Alerts, st.RuleHits())
	}
	per := func(k int) float64 { return float64(spent[k].Nanoseconds()) / float64(max(count[k], 1)) }
	b.ReportMetric(per(0), "ns/frame-none")
	if count[1] > 0 {
		b.ReportMetric(per(1), "ns/frame-ips")
		b.ReportMetric(per(1)/per(0), "ips/none")
		b.ReportMetric(per(1)-per(0), "ns-added/frame")
	}
}

// BenchmarkPipelineIPS: rules that never match (the stage's own cost:
// decode, shard, flow, stream, one prefilter scan).
func BenchmarkPipelineIPS(b *testing.B) {
	e := loadRules(b, noMatchRules)
	for _, size := range []int{10, 1400} {
		b.Run(frameName(size), func(b *testing.B) { benchPipelineIPS(b, e, size) })
	}
}

// BenchmarkPipelineIPSETOpen: every loadable ET Open rule (about 23,400):
// the inline latency with a real rule set.
func BenchmarkPipelineIPSETOpen(b *testing.B) {
	e := etOpen(b)
	for _, size := range []int{10, 1400} {
		b.Run(frameName(size), func(b *testing.B) { benchPipelineIPS(b, e, size) })
	}
}

func frameName(payload int) string {
	return map[int]string{10: "64B", 1400: "1454B"}[payload]
}

// With the IPS stage present and no rule matching, an established flow's
// data and acknowledgments go through the pipeline without allocating;
// with no rules, or the network off, too.
func TestPipelineIPSNoAllocs(t *testing.T) {
	x := netsw.NewIPSBench(t, 100)
	tr := newIPSTraffic(x, 100, 200)
	st := benchStage(t, loadRules(t, noMatchRules))
	x.Switch().SetInspectStages(st)
	for i := range 100 {
		tr.send(i)
	}
	before := x.ServerFrames()
	i := 0
	check := func(what string) {
		t.Helper()
		if n := testing.AllocsPerRun(1000, func() { tr.send(i); i++ }); n != 0 {
			t.Errorf("%s: %v allocations per data frame and ack", what, n)
		}
	}
	check("inspected")
	if s := st.Stats(); s.InspectedPackets < 2000 || s.Alerts != 0 || s.BlockedPackets != 0 {
		t.Errorf("stats %+v", s)
	}
	if err := st.SetPolicy(ipsstage.Policy{Networks: map[string]ipsstage.NetPolicy{"n": {Mode: ipsstage.ModeOff}}}); err != nil {
		t.Fatal(err)
	}
	check("mode off")
	st.SetEngine(nil)
	if err := st.SetPolicy(ipsstage.Policy{Networks: map[string]ipsstage.NetPolicy{"n": {Mode: ipsstage.ModeBlock}}}); err != nil {
		t.Fatal(err)
	}
	check("no rules")
	if sent := x.ServerFrames() - before; sent != i {
		t.Errorf("%d of %d frames forwarded", sent, i)
	}
}
