package netsw

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/ratelimit"
	"github.com/bulwark-project/bulwark/internal/store"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// fakeClock replaces the switch's monotonic clock (the expiry goroutine
// reads it too, hence the atomic and the lock).
func fakeClock(sw *Switch) *atomic.Int64 {
	var now atomic.Int64
	sw.mu.Lock()
	defer sw.mu.Unlock()
	now.Store(sw.now())
	sw.now = now.Load
	return &now
}

// offer drives the client's established flows through the pipeline: every
// simulated millisecond for secs seconds it offers perMs frames (and as
// many frames the server's rules deny, when denied is set). It returns how
// many allowed frames it offered.
func (pb *pipelineBench) offer(frames [][]byte, clock *atomic.Int64, secs, perMs int, denied []byte) int {
	var f packet.Frame
	scratch := make([]byte, 0, packet.MaxFrame)
	sent := 0
	for range secs * 1000 {
		clock.Add(int64(time.Millisecond))
		for range perMs {
			scratch = pb.sw.process(pb.client, frames[sent%len(frames)], &f, scratch[:0])
			sent++
			if denied != nil {
				scratch = pb.sw.process(pb.client, denied, &f, scratch[:0])
			}
		}
	}
	return sent
}

// A port limited to X packets/s forwards X per second plus one burst, and
// drops the rest at the limited port as rate_egress (what the VM sends) or
// rate_ingress (what it receives). Frames the receiver's rules deny do not
// spend its ingress budget. Refusals are logged once a second per port and
// direction, with the count.
func TestPipelineRateLimit(t *testing.T) {
	const secs, perMs = 5, 10 // 10,000 frames/s offered
	t.Run("egress", func(t *testing.T) {
		pb := newPipelineBench(t)
		frames := pb.established(t, 8)
		var log lockedBuffer
		pb.sw.fwlog = NewEventLog(&log, 1000)
		clock := fakeClock(pb.sw)
		if err := pb.sw.SetVMPortRate("client", 0, PortRate{NICRate: vm.NICRate{EgressPPS: 1000}}); err != nil {
			t.Fatal(err)
		}
		g := pb.client.rates.egress.Load()
		_, burst := g.lim.Bursts()
		before := pb.serverSink.frames
		sent := pb.offer(frames, clock, secs, perMs, nil)
		fwd := pb.serverSink.frames - before
		if want := 1000*secs + int(burst); fwd < want-1 || fwd > want {
			t.Errorf("forwarded %d of %d, want %d (1000/s × %d s + burst %d)", fwd, sent, want, secs, burst)
		}
		st := pb.client.status()
		if got := st.Drops["rate_egress"]; int(got) != sent-fwd {
			t.Errorf("rate_egress drops %d, want %d; drops %v", got, sent-fwd, st.Drops)
		}
		if st.Rate == nil || st.Rate.EgressPPS != 1000 || st.Rate.Burst != ratelimit.DefaultBurst {
			t.Errorf("status rate %+v", st.Rate)
		}
		evs := decodeLog(t, log.String())
		var logged uint64
		for _, ev := range evs {
			if ev.Reason != "rate_egress" || ev.Direction != "egress" || ev.VM != "client" || ev.InPort != "client/nic0" ||
				ev.Action != "drop" || ev.Network != "n" || ev.Frames == 0 {
				t.Errorf("log line %+v", ev)
			}
			logged += ev.Frames
		}
		// The first refusal is logged at once, then one line per second.
		if len(evs) != secs || logged > st.Drops["rate_egress"] || logged < st.Drops["rate_egress"]-9000 {
			t.Errorf("%d lines for %d frames of %d drops:\n%s", len(evs), logged, st.Drops["rate_egress"], log.String())
		}
	})
	t.Run("ingress", func(t *testing.T) {
		pb := newPipelineBench(t)
		frames := pb.established(t, 8)
		clock := fakeClock(pb.sw)
		// 500 frames of 64 bytes per second.
		if err := pb.sw.SetVMPortRate("server", 0, PortRate{NICRate: vm.NICRate{IngressBPS: 500 * 64 * 8}}); err != nil {
			t.Fatal(err)
		}
		burstBits, _ := pb.server.rates.ingress.Load().lim.Bursts()
		burst := int(burstBits / (64 * 8))
		denied := pb.clientFlow(0).TCP(2222, 22, packet.TCPSyn, 1, 0, nil) // no rule allows port 22
		before := pb.serverSink.frames
		sent := pb.offer(frames, clock, secs, perMs, denied)
		fwd := pb.serverSink.frames - before
		if want := 500*secs + burst; fwd < want-1 || fwd > want {
			t.Errorf("forwarded %d of %d, want %d (500/s × %d s + burst %d)", fwd, sent, want, secs, burst)
		}
		srv, cli := pb.server.status(), pb.client.status()
		if got := srv.Drops["rate_ingress"]; int(got) != sent-fwd {
			t.Errorf("server rate_ingress drops %d, want %d; drops %v", got, sent-fwd, srv.Drops)
		}
		if got := srv.Drops["fw_default_deny"]; int(got) != sent {
			t.Errorf("server fw_default_deny drops %d, want %d", got, sent)
		}
		if cli.Drops["rate_egress"]+cli.Drops["rate_ingress"] != 0 || cli.Rate != nil {
			t.Errorf("client, unlimited: drops %v, rate %+v", cli.Drops, cli.Rate)
		}
	})
}

// The limiter on the path allocates nothing per frame.
func TestPipelineRateLimitNoAllocs(t *testing.T) {
	pb := newPipelineBench(t)
	frames := pb.established(t, 100)
	high := vm.NICRate{EgressBPS: vm.MaxBPS, EgressPPS: vm.MaxPPS, IngressBPS: vm.MaxBPS, IngressPPS: vm.MaxPPS}
	for _, name := range []string{"client", "server"} {
		if err := pb.sw.SetVMPortRate(name, 0, PortRate{NICRate: high}); err != nil {
			t.Fatal(err)
		}
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
	if sent := pb.serverSink.frames - before; sent != i {
		t.Errorf("%d of %d frames forwarded under a limit they do not reach", sent, i)
	}
}

// Out-of-range limits are refused naming the field, and change nothing; a
// VM without a port gives ErrNoPort.
func TestSetVMPortRateRefuses(t *testing.T) {
	pb := newPipelineBench(t)
	ok := PortRate{NICRate: vm.NICRate{EgressPPS: 10}}
	if err := pb.sw.SetVMPortRate("client", 0, ok); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		r     PortRate
		field string
	}{
		{PortRate{NICRate: vm.NICRate{EgressBPS: -1}}, "rate.egress_bits_per_sec"},
		{PortRate{NICRate: vm.NICRate{IngressPPS: vm.MaxPPS + 1}}, "rate.ingress_packets_per_sec"},
		{PortRate{NICRate: vm.NICRate{IngressBPS: vm.MaxBPS + 1}}, "rate.ingress_bits_per_sec"},
		{PortRate{NICRate: vm.NICRate{EgressPPS: 1}, Burst: -time.Millisecond}, "rate.burst_ns"},
		{PortRate{NICRate: vm.NICRate{EgressPPS: 1}, Burst: 2 * time.Second}, "rate.burst_ns"},
	} {
		err := pb.sw.SetVMPortRate("client", 0, tc.r)
		var fe *vm.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: error %v, want a field error on %s", tc.r, err, tc.field)
		}
	}
	if r := pb.client.status().Rate; r == nil || r.NICRate != ok.NICRate {
		t.Errorf("rate %+v after refused changes, want %+v", r, ok)
	}
	if err := pb.sw.SetVMPortRate("ghost", 0, ok); !errors.Is(err, ErrNoPort) {
		t.Errorf("unknown VM: %v", err)
	}
	if err := pb.sw.SetVMPortRate("client", 1, ok); !errors.Is(err, ErrNoPort) {
		t.Errorf("unknown NIC: %v", err)
	}
	// Zero limits remove the limiter.
	if err := pb.sw.SetVMPortRate("client", 0, PortRate{}); err != nil {
		t.Fatal(err)
	}
	if pb.client.status().Rate != nil || pb.client.rates.egress.Load() != nil {
		t.Error("zero rate left a limiter")
	}
}

// End to end over real sockets, through the service: a NIC's rate from the
// VM's spec is on its port from the first frame; a flood from the VM is
// held to it and logged; SetRate changes it on the live port; the port
// status shows it in JSON, with the drops.
func TestServiceRateLimitSockets(t *testing.T) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "netsw") // short: Unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	st, err := store.Open(ctx, filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var log lockedBuffer
	sw := New(slog.New(slog.DiscardHandler), NewEventLog(&log, 1000))
	t.Cleanup(sw.Close)
	svc, err := NewService(ctx, sw, st, filepath.Join(dir, "sw"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateNetwork(ctx, Network{Name: "n", Subnet: "10.0.0.0/24", DefaultIngress: "allow"}); err != nil {
		t.Fatal(err)
	}
	// A bad rate is refused before any port exists.
	bad := []vm.NIC{{Network: "n", MAC: "02:00:00:00:00:01", IP: "10.0.0.1", Rate: &vm.NICRate{EgressPPS: -1}}}
	if _, err := svc.Attach("a", 0, dir, bad); err == nil || len(sw.Ports()) != 0 {
		t.Fatalf("attach with a negative rate: %v, %d ports", err, len(sw.Ports()))
	}

	const pps = 200
	a := ratePeer(t, svc, dir, "a", vm.NIC{Network: "n", MAC: "02:00:00:00:00:01", IP: "10.0.0.1", Rate: &vm.NICRate{EgressPPS: pps}})
	t0 := time.Now()
	b := ratePeer(t, svc, dir, "b", vm.NIC{Network: "n", MAC: "02:00:00:00:00:02", IP: "10.0.0.2"})
	b.conn.SetReadBuffer(1 << 20)
	fl := a.flow(b)

	// A flood of 2000 frames: each is forwarded or dropped as rate_egress.
	const flood = 2000
	for i := range flood {
		a.send(fl.UDP(40000, 9, []byte{byte(i)}))
	}
	var pa, pb PortStatus
	deadline := time.Now().Add(waitLimit)
	for {
		ports := sw.Ports()
		pa, pb = ports[0], ports[1]
		if pa.Drops["rate_egress"]+pb.TxFrames+pb.TxFull == flood {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: a %+v, b %+v", waitLimit, pa, pb)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(t0)
	fwd := pb.TxFrames + pb.TxFull
	// Burst: 10 ms of 200/s is 2 frames; the bucket started full at attach.
	if limit := 2 + uint64(pps*elapsed.Seconds()) + 1; fwd == 0 || fwd > limit || pa.Drops["rate_egress"] == 0 {
		t.Fatalf("forwarded %d of %d in %v (limit %d), rate_egress drops %d", fwd, flood, elapsed, limit, pa.Drops["rate_egress"])
	}
	t.Logf("forwarded %d of %d in %v at %d pps", fwd, flood, elapsed, pps)

	// The status shows the configured rate in JSON; b has none.
	blob, _ := json.Marshal(sw.Ports())
	var ports []map[string]any
	json.Unmarshal(blob, &ports)
	wantRate := map[string]any{"egress_packets_per_sec": float64(pps), "burst_ns": float64(ratelimit.DefaultBurst)}
	if r, _ := ports[0]["rate"].(map[string]any); len(r) != len(wantRate) || r["egress_packets_per_sec"] != wantRate["egress_packets_per_sec"] || r["burst_ns"] != wantRate["burst_ns"] {
		t.Errorf("a's rate in JSON: %v, want %v", ports[0]["rate"], wantRate)
	}
	if _, ok := ports[1]["rate"]; ok {
		t.Errorf("b has a rate in JSON: %s", blob)
	}
	// The refusals are in the log: reason, direction, VM, port, count.
	var logged bool
	for _, ev := range decodeLog(t, log.String()) {
		if ev.Reason == "rate_egress" {
			logged = ev.Direction == "egress" && ev.VM == "a" && ev.InPort == "a/nic0" && ev.Frames >= 1 && ev.OutPort == ""
			break
		}
	}
	if !logged {
		t.Errorf("no rate_egress line for a:\n%s", log.String())
	}

	// Live changes: validated per NIC field; unlimited lets all through.
	var fe *vm.FieldError
	if err := svc.SetRate("a", 0, vm.NICRate{IngressBPS: vm.MaxBPS + 1}); !errors.As(err, &fe) || fe.Field != "nics[0].rate.ingress_bits_per_sec" {
		t.Errorf("out-of-range SetRate: %v", err)
	}
	if err := svc.SetRate("stopped", 0, vm.NICRate{}); !errors.Is(err, ErrNoPort) {
		t.Errorf("SetRate of a VM without ports: %v", err)
	}
	if err := svc.SetRate("a", 0, vm.NICRate{}); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		a.send(fl.UDP(40000, 9, []byte{byte(i)}))
	}
	want := pb.TxFrames + 100
	waitFor(t, func() bool { return sw.Ports()[1].TxFrames == want }, "100 unlimited frames at b")
	if now := sw.Ports()[0]; now.Drops["rate_egress"] != pa.Drops["rate_egress"] || now.Rate != nil {
		t.Errorf("after removing the limit: drops %d (were %d), rate %+v", now.Drops["rate_egress"], pa.Drops["rate_egress"], now.Rate)
	}
	// And an ingress limit on b, set live, holds what b receives.
	if err := svc.SetRate("b", 0, vm.NICRate{IngressPPS: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		a.send(fl.UDP(40000, 9, []byte{byte(i)}))
	}
	waitFor(t, func() bool { return sw.Ports()[1].Drops["rate_ingress"] >= 48 }, "rate_ingress drops at b")
	if got := sw.Ports()[1].TxFrames - want; got < 1 || got > 2 {
		t.Errorf("b received %d of 50 frames at 1 pps", got)
	}
}

// waitFor polls cond until it holds, failing after waitLimit.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", waitLimit, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// ratePeer attaches a VM with one NIC through the service and binds its
// fake hypervisor's socket where the service sends (runDir/net0.sock).
func ratePeer(t *testing.T, svc *Service, dir, vmName string, n vm.NIC) *nic {
	t.Helper()
	runDir := filepath.Join(dir, vmName)
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		t.Fatal(err)
	}
	peer := &net.UnixAddr{Name: filepath.Join(runDir, "net0.sock"), Net: "unixgram"}
	conn, err := net.ListenUnixgram("unixgram", peer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	remotes, err := svc.Attach(vmName, os.Geteuid(), runDir, []vm.NIC{n})
	if err != nil {
		t.Fatal(err)
	}
	hw, _ := net.ParseMAC(n.MAC)
	var mac packet.MAC
	copy(mac[:], hw)
	var p *Port
	for _, q := range *svc.sw.ports.Load() {
		if q.VM == vmName {
			p = q
		}
	}
	return &nic{t: t, port: p, conn: conn, sw: &net.UnixAddr{Name: remotes[0], Net: "unixgram"}, mac: mac, ip: netip.MustParseAddr(n.IP)}
}
