package conntrack

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

func TestUDP(t *testing.T) {
	cfg := Config{}.withDefaults()
	tb := New(Config{})
	f := udp(vmA, vmB, 5000, 53)
	fl, r := tb.Create(0, f, 1, 1, 2)
	if r != packet.OK || fl.State() != StateNew || fl.Expires() != int64(cfg.UDPTimeout) {
		t.Fatalf("Create = %v, %v, expires %d", fl, r, fl.Expires())
	}
	// Another packet the same way keeps it New with the short timeout.
	tb.Lookup(10*sec, f)
	if fl.State() != StateNew || fl.Expires() != 10*sec+int64(cfg.UDPTimeout) {
		t.Fatalf("after 2nd request: %v expires %d", fl.State(), fl.Expires())
	}
	got, dir, r := tb.Lookup(20*sec, reverse(f, 0))
	if got != fl || dir != Reply || r != packet.OK || fl.State() != StateEstablished {
		t.Fatalf("reply Lookup = %v, %v, %v, state %v", got, dir, r, fl.State())
	}
	if want := 20*sec + int64(cfg.UDPStreamTimeout); fl.Expires() != want {
		t.Fatalf("stream expires %d, want %d", fl.Expires(), want)
	}
	if got, _, _ := tb.Lookup(fl.Expires()-1, f); got != fl {
		t.Fatal("flow gone before its timeout")
	}
	if got, _, _ := tb.Lookup(fl.Expires(), f); got != nil {
		t.Fatal("flow alive at its timeout")
	}
}

// TestUDPUnanswered checks that a one-way UDP flow dies after UDPTimeout.
func TestUDPUnanswered(t *testing.T) {
	tb := New(Config{UDPTimeout: 5 * 1e9})
	f := udp(vmA, vmB, 5000, 53)
	tb.Create(0, f, 1, 1, 2)
	if n := tb.Expire(5*sec - 1); n != 0 {
		t.Fatalf("Expire before timeout removed %d", n)
	}
	if n := tb.Expire(5 * sec); n != 1 || tb.Len() != 0 {
		t.Fatalf("Expire at timeout removed %d, Len %d", n, tb.Len())
	}
	if got, _, r := tb.Lookup(5*sec, reverse(f, 0)); got != nil || r != packet.OK {
		t.Fatalf("late reply = %v, %v; want no flow (the switch then consults ingress rules)", got, r)
	}
}

func TestICMPEcho(t *testing.T) {
	v6a, v6b := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	tests := []struct {
		name           string
		proto          uint8
		src, dst       netip.Addr
		req, rep, junk uint8
	}{
		{"v4", packet.ProtoICMP, vmA, vmB, packet.ICMPv4EchoRequest, packet.ICMPv4EchoReply, packet.ICMPv6EchoRequest},
		{"v6", packet.ProtoICMPv6, v6a, v6b, packet.ICMPv6EchoRequest, packet.ICMPv6EchoReply, packet.ICMPv4EchoRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{}.withDefaults()
			tb := New(Config{})
			req := icmp(tt.proto, tt.src, tt.dst, 77, tt.req)
			if _, r := tb.Create(0, icmp(tt.proto, tt.src, tt.dst, 77, tt.rep), 1, 1, 2); r != packet.CTInvalid {
				t.Fatalf("Create(echo reply) = %v, want ct_invalid", r)
			}
			if _, r := tb.Create(0, icmp(tt.proto, tt.src, tt.dst, 77, tt.junk), 1, 1, 2); r != packet.CTInvalid {
				t.Fatalf("Create(other family's echo type) = %v, want ct_invalid", r)
			}
			fl, r := tb.Create(0, req, 1, 1, 2)
			if r != packet.OK || fl.ICMPType != tt.req || fl.Expires() != int64(cfg.ICMPTimeout) {
				t.Fatalf("Create(echo request) = %v, %v", fl, r)
			}
			rep := icmp(tt.proto, tt.dst, tt.src, 77, tt.rep)
			if rep.Tuple.Reverse() != req.Tuple {
				t.Fatal("test tuples: reply reversed is not the request")
			}
			// A request from the replier's side on the same tuple does not fit.
			if _, _, r := tb.Lookup(sec, icmp(tt.proto, tt.dst, tt.src, 77, tt.req)); r != packet.CTInvalid {
				t.Fatalf("request in reply direction = %v, want ct_invalid", r)
			}
			got, dir, r := tb.Lookup(sec, rep)
			if got != fl || dir != Reply || r != packet.OK || fl.State() != StateEstablished {
				t.Fatalf("echo reply Lookup = %v, %v, %v", got, dir, r)
			}
			if got, _, r := tb.Lookup(2*sec, req); got != fl || r != packet.OK {
				t.Fatalf("next request = %v, %v", got, r)
			}
			if got, _, _ := tb.Lookup(2*sec+int64(cfg.ICMPTimeout), rep); got != nil {
				t.Fatal("echo flow outlived ICMPTimeout")
			}
		})
	}
}

func TestLookupRelated(t *testing.T) {
	tb := New(Config{})
	router := netip.MustParseAddr("192.0.2.1")
	f := udp(vmA, vmB, 5000, 53)
	fl, _ := tb.Create(0, f, 1, 1, 2)
	icmpErr := func(src, dst netip.Addr, inner packet.Tuple) *packet.Frame {
		return &packet.Frame{IPValid: true, ICMPError: true, InnerValid: true, Inner: inner,
			Tuple: tuple(packet.ProtoICMP, src, dst, 0, 0), ICMPType: packet.ICMPv4Unreachable}
	}
	tests := []struct {
		name string
		f    *packet.Frame
		want *Flow
	}{
		{"port unreachable to originator", icmpErr(vmB, vmA, f.Tuple), fl},
		{"from a router on the path", icmpErr(router, vmA, f.Tuple), fl},
		{"error about a reply, to the replier", icmpErr(vmA, vmB, f.Tuple.Reverse()), fl},
		{"quoted sender is not the recipient", icmpErr(router, vmB, f.Tuple), nil},
		{"unknown flow", icmpErr(vmB, vmA, tuple(packet.ProtoUDP, vmA, vmB, 5001, 53)), nil},
		{"not an error", udp(vmB, vmA, 53, 5000), nil},
	}
	for _, tt := range tests {
		if got := tb.LookupRelated(tt.f); got != tt.want {
			t.Errorf("%s: LookupRelated = %p, want %p", tt.name, got, tt.want)
		}
	}
	if got, _, r := tb.Lookup(0, icmpErr(vmB, vmA, f.Tuple)); got != nil || r != packet.CTInvalid {
		t.Errorf("Lookup(ICMP error) = %v, %v; want ct_invalid", got, r)
	}
	if got, _, r := tb.Lookup(0, &packet.Frame{}); got != nil || r != packet.CTInvalid {
		t.Errorf("Lookup(non-IP) = %v, %v; want ct_invalid", got, r)
	}
}

// TestSYNFloodSparesEstablished fills a table of 100 with 50 established
// connections and then sends 10,000 SYNs from fresh ports.
func TestSYNFloodSparesEstablished(t *testing.T) {
	tb := New(Config{MaxFlows: 100, MaxFlowsPerPort: 100})
	var est []*Flow
	for i := range 50 {
		f := tcp(vmA, vmB, uint16(1000+i), 443, syn)
		fl, r := tb.Create(0, f, 1, 1, 2)
		if r != packet.OK {
			t.Fatalf("Create %d: %v", i, r)
		}
		tb.Lookup(0, reverse(f, synack))
		tb.Lookup(0, withFlags(f, ack))
		est = append(est, fl)
	}
	attacker := netip.MustParseAddr("10.0.0.66")
	now := sec
	for i := range 10000 {
		f := tcp(attacker, vmB, uint16(20000+i), uint16(80+i%7), syn)
		if _, r := tb.Create(now, f, 1, 3, 2); r != packet.OK {
			t.Fatalf("SYN %d: %v (non-established flows should be evictable)", i, r)
		}
	}
	if tb.Len() != 100 {
		t.Errorf("Len = %d, want 100", tb.Len())
	}
	for i, fl := range est {
		if fl.Removed() || fl.State() != StateEstablished {
			t.Fatalf("established flow %d was pushed out", i)
		}
		if got, _, r := tb.Lookup(now, reverse(tcp(vmA, vmB, uint16(1000+i), 443, 0), ack)); got != fl || r != packet.OK {
			t.Fatalf("established flow %d Lookup = %v, %v", i, got, r)
		}
	}
	st := tb.Stats()
	if st.Created != 10050 || st.Evicted != 10000-50 || st.FullDrops != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestFullOfEstablished(t *testing.T) {
	tb := New(Config{MaxFlows: 10, MaxFlowsPerPort: 10})
	for i := range 10 {
		f := udp(vmA, vmB, uint16(i+1), 53)
		tb.Create(0, f, 1, 1, 2)
		tb.Lookup(0, reverse(f, 0))
	}
	if _, r := tb.Create(sec, udp(vmA, vmB, 999, 53), 1, 1, 2); r != packet.CTFull {
		t.Fatalf("Create in a table of live established flows = %v, want ct_full", r)
	}
	if st := tb.Stats(); st.FullDrops != 1 {
		t.Fatalf("FullDrops = %d", st.FullDrops)
	}
	// Once they expire, the LRU head makes room.
	later := sec + int64(Config{}.withDefaults().UDPStreamTimeout)
	if _, r := tb.Create(later, udp(vmA, vmB, 999, 53), 1, 1, 2); r != packet.OK {
		t.Fatalf("Create after expiry = %v", r)
	}
	if st := tb.Stats(); st.Expired != 1 || st.Evicted != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestRangeDelete(t *testing.T) {
	tb := New(Config{MaxFlows: 1 << 16}) // several shards
	if len(tb.shards) < 2 {
		t.Fatalf("want a sharded table, got %d shard", len(tb.shards))
	}
	const n = 1000
	for i := range n {
		tb.Create(0, udp(vmA, vmB, uint16(i), 53), 1, int32(i%2), 9)
	}
	// Delete the odd-port flows from inside Range.
	seen := 0
	tb.Range(func(fl *Flow) bool {
		seen++
		if fl.OrigPort == 1 && !tb.Delete(fl.Orig) {
			t.Errorf("Delete(%v) found nothing", fl.Orig)
		}
		return true
	})
	if seen != n || tb.Len() != n/2 {
		t.Fatalf("Range saw %d, Len %d; want %d, %d", seen, tb.Len(), n, n/2)
	}
	if tb.Delete(udp(vmA, vmB, 0, 53).Tuple.Reverse()) {
		t.Error("Delete by reply tuple removed a flow")
	}
	if got := tb.Stats().Deleted; got != n/2 {
		t.Errorf("Deleted = %d", got)
	}
	stopped := 0
	tb.Range(func(*Flow) bool { stopped++; return stopped < 3 })
	if stopped != 3 {
		t.Errorf("Range went on after false: %d calls", stopped)
	}
	tb.Range(func(fl *Flow) bool {
		if fl.OrigPort != 0 {
			t.Errorf("deleted flow %v still visited", fl.Orig)
		}
		return true
	})
}

func TestConfigDefaults(t *testing.T) {
	c := Config{MaxFlows: 1 << 40, UDPTimeout: -1}.withDefaults()
	if c.MaxFlows != MaxMaxFlows || c.UDPTimeout != DefaultUDPTimeout || c.TCPEstablishedTimeout != DefaultTCPEstablishedTimeout {
		t.Fatalf("withDefaults = %+v", c)
	}
	tb := New(Config{MaxFlows: 10001})
	total := 0
	for i := range tb.shards {
		total += tb.shards[i].max
	}
	if total != 10001 {
		t.Fatalf("shard capacities sum to %d", total)
	}
}

// TestConcurrent exercises the locks under -race.
func TestConcurrent(t *testing.T) {
	tb := New(Config{MaxFlows: 1 << 15})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := netip.AddrFrom4([4]byte{10, 1, 0, byte(g)})
			for i := range 2000 {
				f := tcp(src, vmB, uint16(i), 80, syn)
				fl, r := tb.Create(int64(i), f, 1, int32(g), 99)
				if r != packet.OK {
					t.Errorf("Create: %v", r)
					return
				}
				tb.Lookup(int64(i), reverse(f, synack))
				tb.Lookup(int64(i), withFlags(f, ack))
				_ = fl.State() + State(fl.Gen())
				if i%3 == 0 {
					tb.Delete(f.Tuple)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			tb.Range(func(fl *Flow) bool { tb.SetFlowGen(fl, 2); return tb.FlowGen(fl) >= 1 })
			tb.Expire(0)
		}
	}()
	wg.Wait()
	if st := tb.Stats(); st.Created != 16000 || uint64(tb.Len()) != 16000-st.Deleted {
		t.Fatalf("Stats %+v, Len %d", st, tb.Len())
	}
}

func TestEstablishedNoAllocs(t *testing.T) {
	tb := New(Config{})
	f := tcp(vmA, vmB, 40000, 80, syn)
	tb.Create(0, f, 1, 1, 2)
	tb.Lookup(0, reverse(f, synack))
	data, rep := withFlags(f, pshack), reverse(f, ack)
	allocs := testing.AllocsPerRun(1000, func() {
		if fl, _, r := tb.Lookup(1, data); fl == nil || r != packet.OK {
			t.Fatal("lost the flow")
		}
		tb.Lookup(1, rep)
	})
	if allocs != 0 {
		t.Fatalf("Lookup on an established flow: %v allocs, want 0", allocs)
	}
}

func BenchmarkLookupEstablished(b *testing.B) {
	for _, size := range []struct {
		name string
		max  int
	}{{"1shard", 10000}, {"16shards", DefaultMaxFlows}} {
		b.Run(size.name, func(b *testing.B) {
			tb := New(Config{MaxFlows: size.max})
			frames := make([]*packet.Frame, 10000)
			for i := range frames {
				src := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
				f := tcp(src, vmB, uint16(1024+i), 443, syn)
				tb.Create(0, f, 1, 1, 2)
				tb.Lookup(0, reverse(f, synack))
				tb.Lookup(0, withFlags(f, ack))
				frames[i] = withFlags(f, pshack)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, _, r := tb.Lookup(1, frames[i%len(frames)]); r != packet.OK {
					b.Fatal(r)
				}
			}
		})
	}
}

func BenchmarkLookupEstablishedParallel(b *testing.B) {
	tb := New(Config{})
	frames := make([]*packet.Frame, 10000)
	for i := range frames {
		src := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		f := tcp(src, vmB, uint16(1024+i), 443, syn)
		tb.Create(0, f, 1, 1, 2)
		tb.Lookup(0, reverse(f, synack))
		tb.Lookup(0, withFlags(f, ack))
		frames[i] = withFlags(f, pshack)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			tb.Lookup(1, frames[(i*7919)%len(frames)])
		}
	})
}

func BenchmarkCreateSYNFlood(b *testing.B) {
	tb := New(Config{MaxFlows: 10000})
	attacker := netip.MustParseAddr("10.0.0.66")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		f := tcp(attacker, vmB, uint16(i), uint16(i>>16), syn)
		tb.Create(int64(i), f, 1, 1, 2)
	}
}

func TestUntracked(t *testing.T) {
	tests := []struct {
		name string
		f    *packet.Frame
		want bool
	}{
		{"neighbour solicitation", icmp(packet.ProtoICMPv6, vmA, vmB, 0, packet.ICMPv6NeighborSolicit), true},
		{"router solicitation", icmp(packet.ProtoICMPv6, vmA, vmB, 0, packet.ICMPv6RouterSolicit), true},
		{"icmpv4 timestamp", icmp(packet.ProtoICMP, vmA, vmB, 0, 13), true},
		{"echo request", icmp(packet.ProtoICMP, vmA, vmB, 1, packet.ICMPv4EchoRequest), false},
		{"echo reply v6", icmp(packet.ProtoICMPv6, vmA, vmB, 1, packet.ICMPv6EchoReply), false},
		{"error", &packet.Frame{IPValid: true, ICMPError: true, Tuple: tuple(packet.ProtoICMP, vmA, vmB, 0, 0), ICMPType: 3}, false},
		{"udp", udp(vmA, vmB, 1, 2), false},
		{"not ip", &packet.Frame{}, false},
	}
	for _, tt := range tests {
		if got := Untracked(tt.f); got != tt.want {
			t.Errorf("%s: Untracked = %v, want %v", tt.name, got, tt.want)
		}
		if tt.want {
			if _, r := New(Config{}).Create(0, tt.f, 1, 1, 2); r != packet.CTInvalid {
				t.Errorf("%s: Create = %v, want ct_invalid", tt.name, r)
			}
		}
	}
}
