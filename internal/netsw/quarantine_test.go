package netsw

import (
	"log/slog"
	"reflect"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

// A quarantined VM's port neither sends nor receives anything (unicast,
// ARP), the drops are counted at its port and logged, bystanders are
// unaffected, a port attached later is quarantined by name, other
// inspection stages stay, and lifting the quarantine restores traffic
// and the pipeline.
func TestQuarantine(t *testing.T) {
	ts := newTestSwitch(t, webDB)
	ts.sw.SetInspectStages(passStage{})
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")
	c := ts.attach("c", 0, "n", 3, "web")
	_, before := ts.sw.StageNames()

	if !ts.sw.SetPortQuarantine("b", true) || ts.sw.SetPortQuarantine("b", true) {
		t.Fatal("SetPortQuarantine: want a change once")
	}
	if f, d := ts.sw.StageNames(); !reflect.DeepEqual(d, []string{StageQuarantine, StageFirewall, "pass", StageIngressRate}) ||
		!reflect.DeepEqual(f[len(f)-2:], []string{StageQuarantine, StagePortSecurity}) {
		t.Fatalf("stages while quarantined: %v / %v", f, d)
	}
	if q := ts.sw.Quarantined(); !reflect.DeepEqual(q, []string{"b"}) {
		t.Fatalf("Quarantined() = %v", q)
	}
	fl := a.flow(b)
	a.send(fl.ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(9, 1)))
	b.send(b.flow(a).ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(10, 1)))
	b.send(b.marker(a))
	b.send(b.marker(c))
	ts.waitDrops(b, "quarantined", 4)
	if d := ts.status(a).Drops; len(d) != 0 {
		t.Errorf("the bystander's port counted drops: %v", d)
	}
	// What b sends stops before port security and the firewall: no other
	// reason is counted, and no flow is created for it.
	b.send(b.flow(a).TCP(40000, 80, packet.TCPSyn, 1, 0, nil))
	ts.waitDrops(b, "quarantined", 5)
	if d := ts.status(b).Drops; len(d) != 1 {
		t.Errorf("b's drops: %v, want only quarantined", d)
	}
	if n := ts.sw.networkLen("n"); n != 0 {
		t.Errorf("a quarantined VM's frames created %d flows", n)
	}
	c.expectNotForwarded(a) // nothing from b reached a, c still reaches a
	a.expectNotForwarded(c)
	if !ts.logHas(`"reason":"quarantined"`) || !ts.logHas(`"vm":"b"`) {
		t.Errorf("no quarantined drop in the log:\n%s", ts.log.String())
	}

	// A port attached while the VM is quarantined is quarantined.
	b2 := ts.attach("b", 1, "n", 4, "web")
	a.send(a.marker(b2))
	ts.waitDrops(b2, "quarantined", 1)

	if !ts.sw.SetPortQuarantine("b", false) || ts.sw.SetPortQuarantine("b", false) {
		t.Fatal("lifting: want a change once")
	}
	if _, d := ts.sw.StageNames(); !reflect.DeepEqual(d, before) {
		t.Fatalf("per-destination stages after release: %v, want %v", d, before)
	}
	a.expectNotForwarded(b) // b received nothing while quarantined, and receives again
	b.expectNotForwarded(a)
	if q := ts.sw.Quarantined(); q != nil {
		t.Fatalf("Quarantined() after release = %v", q)
	}
}

// networkLen is the number of tracked flows of network name.
func (s *Switch) networkLen(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.networks[name].ct.Len()
}

// The quarantine stages allocate nothing per frame, quarantined or not;
// a quarantined port's send drops and counts.
func TestQuarantineNoAllocs(t *testing.T) {
	sw := New(slog.New(slog.DiscardHandler), nil)
	defer sw.Close()
	n := &network{cfg: Network{Name: "n"}}
	good, bad := &Port{Name: "good/nic0", VM: "good", Kind: VMPort, net: n}, &Port{Name: "bad/nic0", VM: "bad", Kind: VMPort, net: n}
	bad.quarantined.Store(true)
	var f packet.Frame
	for _, q := range []*quarantineStage{{s: sw, src: true}, {s: sw}} {
		for _, c := range []*FrameContext{{In: good, Out: good, Frame: &f}, {In: good, Out: bad, Frame: &f}, {In: bad, Out: good, Frame: &f}} {
			want := q.src && c.In == bad || !q.src && c.Out == bad
			if allocs := testing.AllocsPerRun(100, func() {
				if v := q.Process(c); (v.Action == Drop) != want {
					t.Fatalf("src %v, %s → %s: %+v", q.src, c.In.VM, c.Out.VM, v)
				}
			}); allocs != 0 {
				t.Errorf("%s → %s: %.1f allocations per frame", c.In.VM, c.Out.VM, allocs)
			}
		}
	}
	bad.send([]byte{1, 2, 3})
	if n := bad.stats.drops[packet.Quarantined].Load(); n == 0 {
		t.Error("a quarantined port's send did not count a quarantined drop")
	}
}
