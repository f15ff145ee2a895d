package netsw

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/firewall"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
	"github.com/bulwark-project/bulwark/internal/netsw/portsec"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// The pipeline benchmarks drive Switch.process directly, on one goroutine,
// with ports whose I/O is an in-memory sink: they measure parse →
// anti-spoofing → MAC lookup → conntrack → rules → send per frame on one
// core, without the socket system calls around it.
//
//	go test -run '^$' -bench Pipeline -benchmem ./internal/netsw/

// sinkIO is a port's I/O that counts the frames the switch sends and never
// receives. It is used from one goroutine.
type sinkIO struct{ frames int }

func (s *sinkIO) read([]byte) (int, error) { return 0, net.ErrClosed }
func (s *sinkIO) write([]byte) error       { s.frames++; return nil }
func (s *sinkIO) close() error             { return nil }

// pipelineBench is a switch with a client port (group "clients", eight
// addresses 10.0.1.1-8) and a server port (10.0.0.2, group "big" with
// benchRules ingress rules, of which only the last allows the clients'
// TCP/443).
type pipelineBench struct {
	sw             *Switch
	client, server *Port
	serverSink     *sinkIO
	clientMAC      packet.MAC
	serverMAC      packet.MAC
	serverIP       netip.Addr
}

const benchRules = 1000

func newPipelineBench(tb testing.TB) *pipelineBench {
	tb.Helper()
	sw := New(slog.New(slog.DiscardHandler), NewEventLog(io.Discard, 100)) // as the daemon
	tb.Cleanup(sw.Close)
	if err := sw.AddNetwork(testNetwork("n", "10.0.0.0/16")); err != nil {
		tb.Fatal(err)
	}
	var rules []firewall.Rule
	for i := range benchRules - 1 { // TCP rules that do not match, to scan them all
		r := firewall.Rule{ID: fmt.Sprintf("r%d", i), Direction: firewall.Ingress, Action: firewall.Allow, Proto: firewall.TCP, ICMPType: -1}
		switch i % 3 {
		case 0: // another port
			r.PortMin, r.PortMax = uint16(1000+i), uint16(1000+i)
		case 1: // the port, from elsewhere
			r.PortMin, r.PortMax, r.RemoteCIDR = 443, 443, fmt.Sprintf("192.168.%d.0/24", i%256)
		case 2: // the clients, on other ports
			r.PortMin, r.PortMax, r.RemoteGroup = 8000, 8999, "clients"
		}
		rules = append(rules, r)
	}
	rules = append(rules, allowIn("https", firewall.TCP, 443, "clients"))
	if err := sw.SetFirewall([]firewall.Group{{Name: "big", Rules: rules}, {Name: "clients"}}, nil); err != nil {
		tb.Fatal(err)
	}
	pb := &pipelineBench{sw: sw, clientMAC: packet.MAC{2, 0, 0, 0, 1, 1}, serverMAC: packet.MAC{2, 0, 0, 0, 0, 2},
		serverIP: netip.MustParseAddr("10.0.0.2")}
	var clientIPs []netip.Addr
	for i := range portsec.MaxIPs {
		clientIPs = append(clientIPs, netip.AddrFrom4([4]byte{10, 0, 1, byte(1 + i)}))
	}
	pb.client, _ = sinkPort(tb, sw, "client", pb.clientMAC, clientIPs, "clients")
	pb.server, pb.serverSink = sinkPort(tb, sw, "server", pb.serverMAC, []netip.Addr{pb.serverIP}, "big")
	return pb
}

// sinkPort attaches a VM port whose I/O is a sink; no reader runs for it.
func sinkPort(tb testing.TB, sw *Switch, vm string, mac packet.MAC, ips []netip.Addr, groups ...string) (*Port, *sinkIO) {
	tb.Helper()
	sw.mu.Lock()
	defer sw.mu.Unlock()
	spec := VMPortSpec{VM: vm, Network: "n", MAC: mac, IPs: ips, Groups: groups}
	sink := &sinkIO{}
	p, err := sw.addVMPortLocked(sw.networks["n"], vm+"/nic0", spec, portsec.Binding{MAC: mac, IPs: ips}, sink)
	if err != nil {
		tb.Fatal(err)
	}
	return p, sink
}

// clientFlow is the frame builder of client address i to the server.
func (pb *pipelineBench) clientFlow(i int) packettest.Flow {
	return packettest.Flow{SrcMAC: pb.clientMAC, DstMAC: pb.serverMAC,
		Src: netip.AddrFrom4([4]byte{10, 0, 1, byte(1 + i%portsec.MaxIPs)}), Dst: pb.serverIP}
}

// established opens n connections to the server's port 443 through the
// pipeline and returns one 64-byte data frame of each.
func (pb *pipelineBench) established(tb testing.TB, n int) [][]byte {
	tb.Helper()
	var f packet.Frame
	scratch := make([]byte, 0, packet.MaxFrame)
	frames := make([][]byte, n)
	payload := make([]byte, 64-packettest.IPv4L4-packettest.TCPLen)
	for i := range n {
		fl := pb.clientFlow(i)
		sport := uint16(10000 + i/portsec.MaxIPs)
		before := pb.serverSink.frames
		scratch = pb.sw.process(pb.client, fl.TCP(sport, 443, packet.TCPSyn, 1000, 0, nil), &f, scratch[:0])
		scratch = pb.sw.process(pb.server, fl.Reverse().TCP(443, sport, packet.TCPSyn|packet.TCPAck, 5000, 1001, nil), &f, scratch[:0])
		scratch = pb.sw.process(pb.client, fl.TCP(sport, 443, packet.TCPAck, 1001, 5001, nil), &f, scratch[:0])
		if pb.serverSink.frames != before+2 {
			tb.Fatalf("handshake %d not forwarded", i)
		}
		frames[i] = fl.TCP(sport, 443, packet.TCPAck|packet.TCPPsh, 1001, 5001, payload)
	}
	if got := pb.sw.networks["n"].ct.Len(); got != n {
		tb.Fatalf("%d flows tracked, want %d", got, n)
	}
	return frames
}

// BenchmarkPipeline: 64-byte data frames of 10,000 established flows, in
// turn, with 1,000 rules installed.
func BenchmarkPipeline(b *testing.B) {
	pb := newPipelineBench(b)
	frames := pb.established(b, 10_000)
	if len(frames[0]) != 64 {
		b.Fatalf("%d-byte frames", len(frames[0]))
	}
	var f packet.Frame
	scratch := make([]byte, 0, packet.MaxFrame)
	before := pb.serverSink.frames
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		scratch = pb.sw.process(pb.client, frames[i%len(frames)], &f, scratch[:0])
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	if sent := pb.serverSink.frames - before; sent != b.N {
		b.Fatalf("%d of %d frames forwarded", sent, b.N)
	}
}

// BenchmarkPipelineRateLimit is BenchmarkPipeline with the rate limiter
// on and off in the same run: frames go through in chunks that alternate
// between limits set on both the client's egress and the server's ingress
// (bits/s and packets/s, far above what the benchmark reaches, so that
// nothing is dropped and the check's cost is measured) and no limits. It
// reports ns/frame of each and their ratio.
func BenchmarkPipelineRateLimit(b *testing.B) {
	pb := newPipelineBench(b)
	frames := pb.established(b, 10_000)
	high := PortRate{NICRate: vm.NICRate{EgressBPS: vm.MaxBPS, EgressPPS: vm.MaxPPS, IngressBPS: vm.MaxBPS, IngressPPS: vm.MaxPPS}}
	for _, name := range []string{"client", "server"} {
		if err := pb.sw.SetVMPortRate(name, 0, high); err != nil {
			b.Fatal(err)
		}
	}
	// Swapped in and out by pointer: no allocation, the buckets carry on.
	egress, ingress := pb.client.rates.egress.Load(), pb.server.rates.ingress.Load()
	set := func(on bool) {
		if on {
			pb.client.rates.egress.Store(egress)
			pb.server.rates.ingress.Store(ingress)
		} else {
			pb.client.rates.egress.Store(nil)
			pb.server.rates.ingress.Store(nil)
		}
	}
	const chunk = 256
	var f packet.Frame
	scratch := make([]byte, 0, packet.MaxFrame)
	before := pb.serverSink.frames
	var spent [2]time.Duration // off, on
	var count [2]int
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		on := (i/chunk)%2 == 1
		set(on)
		n := min(chunk, b.N-i)
		t0 := time.Now()
		for j := range n {
			scratch = pb.sw.process(pb.client, frames[(i+j)%len(frames)], &f, scratch[:0])
		}
		k := 0
		if on {
			k = 1
		}
		spent[k] += time.Since(t0)
		count[k] += n
		i += n
	}
	b.StopTimer()
	if sent := pb.serverSink.frames - before; sent != b.N {
		b.Fatalf("%d of %d frames forwarded", sent, b.N)
	}
	if d := pb.client.status().Drops["rate_egress"] + pb.server.status().Drops["rate_ingress"]; d != 0 {
		b.Fatalf("the limiter dropped %d frames", d)
	}
	per := func(k int) float64 { return float64(spent[k].Nanoseconds()) / float64(max(count[k], 1)) }
	b.ReportMetric(per(0), "ns/frame-unlimited")
	if count[1] > 0 {
		b.ReportMetric(per(1), "ns/frame-limited")
		b.ReportMetric(per(1)/per(0), "limited/unlimited")
	}
}

// BenchmarkPipelineNewFlow: SYNs, each opening a new connection, judged by
// 1,000 rules (the last allows). Past the table's 65,536 flows every SYN
// also evicts the oldest half-open one, as under a SYN flood. The SYNs come
// from newFlowClients ports in turn, so that each holds 65,536/8 flows, under
// the per-port quota (a quarter of the table): one port alone would reach
// its quota at 16,384 flows and have every later SYN refused (ct_port_quota)
// instead of measured.
func BenchmarkPipelineNewFlow(b *testing.B) {
	pb := newPipelineBench(b)
	const newFlowClients = 8
	type client struct {
		port *Port
		syn  []byte
	}
	clients := []client{{pb.client, pb.clientFlow(0).TCP(1, 443, packet.TCPSyn, 1000, 0, nil)}}
	for k := 1; k < newFlowClients; k++ {
		mac := packet.MAC{2, 0, 0, 0, 2, byte(k)}
		ip := netip.AddrFrom4([4]byte{10, 0, 2, byte(k)})
		p, _ := sinkPort(b, pb.sw, fmt.Sprintf("client%d", k), mac, []netip.Addr{ip}, "clients")
		fl := packettest.Flow{SrcMAC: mac, DstMAC: pb.serverMAC, Src: ip, Dst: pb.serverIP}
		clients = append(clients, client{p, fl.TCP(1, 443, packet.TCPSyn, 1000, 0, nil)})
	}
	var f packet.Frame
	scratch := make([]byte, 0, packet.MaxFrame)
	before := pb.serverSink.frames
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// 8 ports × 65,536 source ports: a tuple comes back only after
		// 524,288 others, long after its flow was evicted. Parse does not
		// check the TCP checksum this leaves stale.
		c := &clients[i%newFlowClients]
		binary.BigEndian.PutUint16(c.syn[packettest.IPv4L4:], uint16(i/newFlowClients))
		scratch = pb.sw.process(c.port, c.syn, &f, scratch[:0])
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	if sent := pb.serverSink.frames - before; sent != b.N {
		var drops []string
		for _, c := range clients {
			drops = append(drops, fmt.Sprint(c.port.status().Drops))
		}
		b.Fatalf("%d of %d SYNs forwarded; client drops %v", sent, b.N, drops)
	}
}

// A frame of an established flow goes through the pipeline without
// allocating.
func TestPipelineEstablishedNoAllocs(t *testing.T) {
	pb := newPipelineBench(t)
	frames := pb.established(t, 100)
	var f packet.Frame
	scratch := make([]byte, 0, packet.MaxFrame)
	before := pb.serverSink.frames
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		scratch = pb.sw.process(pb.client, frames[i%len(frames)], &f, scratch[:0])
		i++
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame, want 0", allocs)
	}
	if pb.serverSink.frames == before {
		t.Fatal("nothing forwarded")
	}
}
