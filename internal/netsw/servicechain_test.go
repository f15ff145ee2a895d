package netsw

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/firewall"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
	"github.com/bulwark-project/bulwark/internal/store"
)

// appliance plays a bump-in-the-wire VM on two NICs: what the switch
// delivers to one it sends back unchanged out of the other, as a Linux
// bridge between them would, until the test ends.
type appliance struct {
	in, out   *nic
	frames    atomic.Int64 // frames forwarded
	swallow   atomic.Bool  // drop instead of forwarding (the appliance's verdict)
	swallowed atomic.Int64
}

func startAppliance(in, out *nic) *appliance {
	ap := &appliance{in: in, out: out}
	pump := func(from, to *nic) {
		buf := make([]byte, readBuf)
		for {
			from.conn.SetReadDeadline(time.Time{})
			k, _, err := from.conn.ReadFromUnix(buf)
			if err != nil {
				return // the test ended and closed the socket
			}
			if ap.swallow.Load() {
				ap.swallowed.Add(1)
				continue
			}
			ap.frames.Add(1)
			to.trySend(buf[:k]) // fails once the test detached the appliance
		}
	}
	go pump(in, out)
	go pump(out, in)
	return ap
}

var chainGroups = []firewall.Group{
	{Name: "web"},
	{Name: "db", Rules: []firewall.Rule{allowIn("pg", firewall.TCP, 5432, "web"), allowIn("dns", firewall.UDP, 53, "web")}},
	{Name: "ids"},
}

// Flows a chain matches reach their receiver only through the appliance,
// both ways; other flows go direct; the appliance port may send others'
// frames only for the flows redirected through it, by the expected port
// in the expected direction; what it swallows is gone.
func TestServiceChainRedirects(t *testing.T) {
	ts := newTestSwitch(t, chainGroups)
	a := ts.attach("a", 0, "n", 1, "web")
	a2 := ts.attach("a2", 0, "n", 4, "web")
	b := ts.attach("b", 0, "n", 2, "db")
	in := ts.attach("ids", 0, "n", 10, "ids")
	out := ts.attach("ids", 1, "n", 11, "ids")
	if err := ts.sw.SetChains([]ServiceChain{{Name: "pg", Network: "n", SrcGroup: "web", DstGroup: "db",
		Proto: "tcp", Port: 5432, InPort: "ids/nic0", OutPort: "ids/nic1"}}); err != nil {
		t.Fatal(err)
	}
	ap := startAppliance(in, out)

	handshake(a, b, 40000, 5432)
	data := tcpData(a, b, 40000, 5432, "SELECT 1")
	a.send(data)
	b.expect(data)
	back := b.flow(a).TCP(5432, 40000, packet.TCPAck|packet.TCPPsh, 5001, 1009, []byte("1"))
	b.send(back)
	a.expect(back)
	a.expectNotForwarded(b) // b got each frame once: none came direct as well
	if n := ap.frames.Load(); n != 5 {
		t.Fatalf("the appliance forwarded %d frames, want 5 (handshake, data, reply)", n)
	}

	// Not matched: another port (UDP 53), and another receiver group.
	dns := a.flow(b).UDP(40001, 53, []byte("q"))
	a.send(dns)
	b.expect(dns)
	handshake(a, a2, 40002, 80)
	if n := ap.frames.Load(); n != 5 {
		t.Fatalf("the appliance forwarded %d frames, want still 5", n)
	}

	// Forgeries from the appliance's ports: a flow never redirected, a
	// redirected flow's frame out of the wrong port (InPort, for the
	// client-to-server direction), and ARP claiming a's address.
	out.send(a.flow(b).UDP(40003, 53, []byte("forged")))
	in.send(tcpData(a, b, 40000, 5432, "wrong port"))
	in.send(packettest.ARP(b.mac, a.mac, packet.ARPReply, a.mac, a.ip, b.mac, b.ip))
	in.expectNotForwarded(b) // the appliance's own frames pass
	out.expectNotForwarded(b)
	ts.waitDrops(out, "service_spoofed", 1)
	ts.waitDrops(in, "service_spoofed", 2)
	if !ts.logHas(`"reason":"service_spoofed"`) {
		t.Fatalf("no service_spoofed line in the log:\n%s", ts.log.String())
	}

	// The appliance's verdict: what it swallows never arrives.
	ap.swallow.Store(true)
	a.send(tcpData(a, b, 40000, 5432, "DROP TABLE"))
	a.expectNotForwarded(b)
	for deadline := time.Now().Add(waitLimit); ap.swallowed.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the appliance never received the frame it swallows")
		}
	}
	ap.swallow.Store(false)

	// The appliance stops: the chain fails closed.
	ts.sw.DetachVM("ids")
	a.send(tcpData(a, b, 40000, 5432, "while it is down"))
	a.expectNotForwarded(b)
	ts.waitDrops(a, "service_down", 1)
}

// A chain whose appliance is absent drops its flows (service_down) unless
// it fails open; deleting a chain sends its flows direct.
func TestServiceChainApplianceAbsent(t *testing.T) {
	ts := newTestSwitch(t, chainGroups)
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "db")
	closed := ServiceChain{Name: "dns", Network: "n", Proto: "udp", Port: 53, InPort: "gone/nic0", OutPort: "gone/nic1"}
	if err := ts.sw.SetChains([]ServiceChain{closed}); err != nil {
		t.Fatal(err)
	}
	a.send(a.flow(b).UDP(40000, 53, []byte("q1")))
	a.expectNotForwarded(b)
	ts.waitDrops(a, "service_down", 1)
	if !ts.logHas(`"reason":"service_down"`) {
		t.Fatal("no service_down line in the log")
	}

	// Changed to fail open: new flows, and flows of the old chain that are
	// still new, are decided again and go direct.
	open := closed
	open.FailOpen = true
	if err := ts.sw.SetChains([]ServiceChain{open}); err != nil {
		t.Fatal(err)
	}
	for _, sport := range []uint16{40001, 40000} {
		q := a.flow(b).UDP(sport, 53, []byte("again"))
		a.send(q)
		b.expect(q)
	}
	ts.waitDrops(a, "service_down", 1)
}

func TestServiceChainValidate(t *testing.T) {
	good := ServiceChain{Name: "c", Network: "n", InPort: "ids/nic0", OutPort: "ids/nic1"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field string
		edit  func(*ServiceChain)
	}{
		{"name", func(c *ServiceChain) { c.Name = "" }},
		{"network", func(c *ServiceChain) { c.Network = "N" }},
		{"src_group", func(c *ServiceChain) { c.SrcGroup = "a b" }},
		{"dst_group", func(c *ServiceChain) { c.DstGroup = "-x" }},
		{"proto", func(c *ServiceChain) { c.Proto = "sctp" }},
		{"port", func(c *ServiceChain) { c.Port = 80 }},
		{"port", func(c *ServiceChain) { c.Proto, c.Port = "icmp", 8 }},
		{"in_port", func(c *ServiceChain) { c.InPort = "ids" }},
		{"in_port", func(c *ServiceChain) { c.InPort = "ids/nic8" }},
		{"in_port", func(c *ServiceChain) { c.InPort = "ids/nic01" }},
		{"in_port", func(c *ServiceChain) { c.InPort = "../x/nic0" }},
		{"out_port", func(c *ServiceChain) { c.OutPort = "ids/nic-1" }},
		{"out_port", func(c *ServiceChain) { c.OutPort = c.InPort }},
	} {
		c := good
		tc.edit(&c)
		var fe *FieldError
		if err := c.Validate(); !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: %v, want an error on %s", c, err, tc.field)
		}
	}
	tcp := good
	tcp.Proto, tcp.Port = "tcp", 443
	if err := tcp.Validate(); err != nil {
		t.Error(err)
	}
}

// The service validates chains against its networks and groups, persists
// them, loads them at start, and keeps a network with chains.
func TestServiceChains(t *testing.T) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "netsw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	st, err := store.Open(ctx, filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sw := New(nopLog(), nil)
	t.Cleanup(sw.Close)
	svc, err := NewService(ctx, sw, st, filepath.Join(dir, "sw"), nopLog())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateNetwork(ctx, Network{Name: "n", Subnet: "10.0.0.0/24"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateGroup(ctx, firewall.Group{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	c := ServiceChain{Name: "c", Network: "n", SrcGroup: "web", InPort: "ids/nic0", OutPort: "ids/nic1"}
	for _, bad := range []func(*ServiceChain){
		func(c *ServiceChain) { c.Network = "nosuch" },
		func(c *ServiceChain) { c.DstGroup = "nosuch" },
		func(c *ServiceChain) { c.Proto = "gre" },
	} {
		x := c
		bad(&x)
		var fe *FieldError
		if _, err := svc.CreateChain(ctx, x); !errors.As(err, &fe) {
			t.Errorf("%+v: %v, want a field error", x, err)
		}
	}
	if _, err := svc.CreateChain(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateChain(ctx, c); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if err := svc.DeleteNetwork(ctx, "n"); !errors.Is(err, ErrInUse) {
		t.Fatalf("delete network with a chain: %v", err)
	}
	if cs := sw.networks["n"].chains.Load(); cs == nil || len(cs.chains) != 1 {
		t.Fatal("chain not installed")
	}
	sw.Close()

	sw2 := New(nopLog(), nil)
	t.Cleanup(sw2.Close)
	svc2, err := NewService(ctx, sw2, st, filepath.Join(dir, "sw"), nopLog())
	if err != nil {
		t.Fatal(err)
	}
	if got := svc2.Chains(); len(got) != 1 || got[0] != c {
		t.Fatalf("loaded %+v, want %+v", got, c)
	}
	if cs := sw2.networks["n"].chains.Load(); cs == nil || len(cs.chains) != 1 {
		t.Fatal("loaded chain not installed")
	}
	if err := svc2.DeleteChain(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := svc2.DeleteChain(ctx, "c"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if sw2.networks["n"].chains.Load() != nil || len(svc2.Chains()) != 0 {
		t.Fatal("chain still installed")
	}
	if err := svc2.DeleteNetwork(ctx, "n"); err != nil {
		t.Fatal(err)
	}
}

// FuzzServiceChainJSON: any chain that decodes and validates encodes to
// JSON that decodes to the same, valid chain; its ports are VM port names.
func FuzzServiceChainJSON(f *testing.F) {
	f.Add([]byte(`{"name":"c","network":"n","in_port":"ids/nic0","out_port":"ids/nic1"}`))
	f.Add([]byte(`{"name":"c","network":"n","src_group":"web","dst_group":"db","proto":"tcp","port":5432,"in_port":"a/nic0","out_port":"a/nic7","fail_open":true}`))
	f.Add([]byte(`{"name":"c","network":"n","proto":"icmp","port":1,"in_port":"a/nic0","out_port":"a/nic0"}`))
	f.Add([]byte(`{"name":"c","network":"n","in_port":"a/nic00","out_port":"/nic1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c ServiceChain
		if json.Unmarshal(b, &c) != nil || c.Validate() != nil {
			return
		}
		for _, p := range []string{c.InPort, c.OutPort} {
			vmName, _, ok := strings.Cut(p, "/nic")
			if !ok || vmName == "" || strings.ContainsAny(vmName, "/.") {
				t.Fatalf("valid chain with port %q", p)
			}
		}
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var d ServiceChain
		if err := json.Unmarshal(again, &d); err != nil || d != c || d.Validate() != nil {
			t.Fatalf("round trip: %+v -> %s -> %+v (%v)", c, again, d, err)
		}
	})
}

// BenchmarkPipelineChain is BenchmarkPipeline with a service chain
// configured on the network but matching none of its flows, and without,
// in the same run: frames go through in chunks that alternate between the
// two (the network's chain set swapped by pointer). It reports ns/frame of
// each and their ratio.
func BenchmarkPipelineChain(b *testing.B) {
	pb := newPipelineBench(b)
	frames := pb.established(b, 10_000)
	if err := pb.sw.SetChains([]ServiceChain{{Name: "other", Network: "n", DstGroup: "clients", Proto: "udp",
		InPort: "ids/nic0", OutPort: "ids/nic1"}}); err != nil {
		b.Fatal(err)
	}
	n := pb.sw.networks["n"]
	cs := n.chains.Load()
	if cs == nil {
		b.Fatal("no chain set")
	}
	const chunk = 256
	var f packet.Frame
	scratch := make([]byte, 0, packet.MaxFrame)
	before := pb.serverSink.frames
	var spent [2]time.Duration // without, with
	var count [2]int
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		k := (i / chunk) % 2
		if k == 1 {
			n.chains.Store(cs)
		} else {
			n.chains.Store(nil)
		}
		m := min(chunk, b.N-i)
		t0 := time.Now()
		for j := range m {
			scratch = pb.sw.process(pb.client, frames[(i+j)%len(frames)], &f, scratch[:0])
		}
		spent[k] += time.Since(t0)
		count[k] += m
		i += m
	}
	b.StopTimer()
	if sent := pb.serverSink.frames - before; sent != b.N {
		b.Fatalf("%d of %d frames forwarded", sent, b.N)
	}
	per := func(k int) float64 { return float64(spent[k].Nanoseconds()) / float64(max(count[k], 1)) }
	b.ReportMetric(per(0), "ns/frame-nochain")
	if count[1] > 0 {
		b.ReportMetric(per(1), "ns/frame-chain")
		b.ReportMetric(per(1)/per(0), "chain/nochain")
	}
}

// With a chain configured that matches none of them, frames of
// established flows still go through without allocating.
func TestPipelineChainNoAllocs(t *testing.T) {
	pb := newPipelineBench(t)
	frames := pb.established(t, 100)
	if err := pb.sw.SetChains([]ServiceChain{{Name: "other", Network: "n", Proto: "udp",
		InPort: "ids/nic0", OutPort: "ids/nic1"}}); err != nil {
		t.Fatal(err)
	}
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
	if pb.serverSink.frames-before < 1000 {
		t.Fatal("frames not forwarded")
	}
}
