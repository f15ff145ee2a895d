package netsw

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
	"github.com/bulwark-project/bulwark/internal/store"
)

// The VEPA tests reflect frames with a real external switch: a Linux
// bridge in a network namespace whose port towards the switch is in
// hairpin mode (reflective relay). The port's peer, a veth end in the
// test's namespace, is the network's uplink.

// hairpinBridge builds the external switch and returns the uplink's
// interface, the namespace and the bridge port's name in it.
func hairpinBridge(t *testing.T) (uplink, ns, brPort string) {
	t.Helper()
	ns = fmt.Sprintf("bwv%d", os.Getpid()%100000)
	uplink, brPort = ns+"a", ns+"b"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", uplink).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	// No IPv6 and no multicast anywhere: router solicitations, MLD and
	// IGMP reports from the bridge or the veth ends would add frames to
	// what the test counts.
	run("ip", "netns", "exec", ns, "sh", "-c",
		"echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6")
	run("ip", "link", "add", uplink, "type", "veth", "peer", "name", brPort)
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+uplink+"/disable_ipv6", []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("ip", "link", "set", uplink, "multicast", "off")
	run("ip", "link", "set", brPort, "netns", ns)
	run("ip", "-n", ns, "link", "set", brPort, "multicast", "off")
	run("ip", "-n", ns, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	run("ip", "-n", ns, "link", "set", "br0", "multicast", "off")
	run("ip", "-n", ns, "link", "set", brPort, "master", "br0")
	run("bridge", "-n", ns, "link", "set", "dev", brPort, "hairpin", "on")
	run("ip", "-n", ns, "link", "set", "br0", "up")
	run("ip", "-n", ns, "link", "set", brPort, "up")
	run("ip", "link", "set", uplink, "up")
	return uplink, ns, brPort
}

// linkCounters returns an interface's rx and tx packet counters in a
// namespace.
func linkCounters(t *testing.T, ns, ifname string) (rx, tx uint64) {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-j", "-s", "link", "show", "dev", ifname).Output()
	if err != nil {
		t.Fatalf("ip link show %s: %v", ifname, err)
	}
	var links []struct {
		Stats struct {
			RX struct{ Packets uint64 } `json:"rx"`
			TX struct{ Packets uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		t.Fatalf("ip link show %s: %v (%s)", ifname, err, out)
	}
	return links[0].Stats.RX.Packets, links[0].Stats.TX.Packets
}

// sendFromNetns sends a raw frame out of interface ifname of namespace ns
// (into the veth, towards the switch's uplink).
func sendFromNetns(t *testing.T, ns, ifname string, frame []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		// The thread changes namespace: it is locked for good, and the
		// runtime discards it when this goroutine ends.
		runtime.LockOSThread()
		errc <- func() error {
			target, err := os.Open("/run/netns/" + ns)
			if err != nil {
				return err
			}
			defer target.Close()
			if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("setns %s: %w", ns, err)
			}
			ifi, err := net.InterfaceByName(ifname)
			if err != nil {
				return err
			}
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
			copy(to.Addr[:], frame[:6])
			return unix.Sendto(fd, frame, 0, to)
		}()
	}()
	if err := <-errc; err != nil {
		t.Fatalf("send in %s: %v", ns, err)
	}
}

// uplinkStatus returns the status of network n's uplink port.
func (ts *testSwitch) uplinkStatus(network string) PortStatus {
	ts.t.Helper()
	for _, st := range ts.sw.Ports() {
		if st.Kind == "uplink" && st.Network == network {
			return st
		}
	}
	ts.t.Fatalf("network %s has no uplink", network)
	return PortStatus{}
}

// waitUplinkDrops waits until network's uplink has counted want drops for
// reason.
func (ts *testSwitch) waitUplinkDrops(network, reason string, want uint64) {
	ts.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		st := ts.uplinkStatus(network)
		if st.Drops[reason] == want {
			return
		}
		if st.Drops[reason] > want || time.Now().After(deadline) {
			ts.t.Fatalf("uplink of %s: %d %s drops, want %d (%v)", network, st.Drops[reason], reason, want, st.Drops)
		}
		time.Sleep(time.Millisecond)
	}
}

// On a VEPA network, frames between VMs leave by the uplink, come back
// reflected by the bridge's hairpin port, and only then reach the
// receiver; the receiver's security groups apply as usual; a broadcast
// goes out once and reaches the other VMs, not its sender; a frame from
// outside with a VM's source MAC that the switch did not send, or a
// second copy of one it sent, is dropped as vepa_spoofed.
func TestVEPAHairpin(t *testing.T) {
	uplink, ns, brPort := hairpinBridge(t)
	nw := testNetwork("n", "10.0.0.0/24")
	nw.Uplink = &Uplink{Kind: "interface", Interface: uplink}
	nw.VEPA = true
	ts := newTestSwitch(t, webDB, nw)
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")
	c := ts.attach("c", 0, "n", 3, "db")
	rx0, tx0 := linkCounters(t, ns, brPort)

	fl := a.flow(b)
	echo := fl.ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(7, 1))
	a.send(echo)
	b.expect(echo)
	reply := fl.Reverse().ICMP(packet.ICMPv4EchoReply, 0, packettest.Echo(7, 1))
	b.send(reply)
	a.expect(reply)
	handshake(a, b, 40000, 80)
	data := tcpData(a, b, 40000, 80, "GET /")
	a.send(data)
	b.expect(data)
	const unicast = 6 // echo, reply, three-way handshake, data

	// Every one crossed the external switch: its port received it from
	// the uplink and sent it back.
	rx1, tx1 := linkCounters(t, ns, brPort)
	if rx1-rx0 < unicast || tx1-tx0 < unicast {
		t.Fatalf("bridge port %s: rx +%d, tx +%d, want at least %d each", brPort, rx1-rx0, tx1-tx0, unicast)
	}
	// (The uplink counts a frame it received before handling it; a sent
	// one after the write returns, which may be after its reflection was
	// delivered: the bridge's counters are the evidence for that side.)
	if up := ts.uplinkStatus("n"); up.RxFrames < unicast {
		t.Fatalf("uplink received %d frames, want at least %d", up.RxFrames, unicast)
	}

	// The firewall ran for the real receiver: c (group db) refuses a's new
	// flow, which never leaves the host.
	a.send(a.flow(c).TCP(40001, 22, packet.TCPSyn, 1, 0, nil))
	a.expectNotForwarded(c)
	ts.waitDrops(c, "fw_default_deny", 1)

	// A broadcast goes out once; the reflection reaches b and c, not a.
	rx0, _ = linkCounters(t, ns, brPort)
	who := packettest.ARP(packet.Broadcast, a.mac, packet.ARPRequest, a.mac, a.ip, packet.MAC{}, b.ip)
	a.send(who)
	b.expect(who)
	c.expect(who)
	b.expectNotForwarded(a) // a's next frame is b's marker, not its own broadcast
	if rx1, _ = linkCounters(t, ns, brPort); rx1-rx0 != 2 {
		t.Errorf("the bridge received %d frames for the broadcast and b's marker, want 2", rx1-rx0)
	}

	// A frame from outside claiming a's MAC is dropped, and so is a
	// replay of a frame that was already reflected.
	forged := fl.ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(9, 1))
	sendFromNetns(t, ns, brPort, forged)
	sendFromNetns(t, ns, brPort, echo)
	a.expectNotForwarded(b)
	ts.waitUplinkDrops("n", "vepa_spoofed", 2)
	if !ts.logHas(`"reason":"vepa_spoofed"`) {
		t.Fatalf("no vepa_spoofed line in the log:\n%s", ts.log.String())
	}
	for _, line := range strings.Split(ts.log.String(), "\n") {
		if strings.Contains(line, "vepa_spoofed") && (!strings.Contains(line, `"vm":"a"`) || !strings.Contains(line, `"network":"n"`)) {
			t.Errorf("vepa_spoofed line does not name the network and the claimed VM: %s", line)
		}
	}
	// a's MAC is still a's port, not learned behind the uplink.
	ts.sw.mu.Lock()
	n := ts.sw.networks["n"]
	ts.sw.mu.Unlock()
	if id := n.macs.lookup(a.mac, ts.sw.now()); id != a.port.ID {
		t.Errorf("a's MAC maps to port %d, want a's port %d", id, a.port.ID)
	}
	for _, x := range []*nic{a, b} {
		if d := ts.status(x).Drops; len(d) != 0 {
			t.Errorf("%s dropped frames: %v", x.port.Name, d)
		}
	}

	// VEPA off: frames between VMs stay inside the switch.
	if err := ts.sw.SetNetworkVEPA("n", false); err != nil {
		t.Fatal(err)
	}
	rx0, _ = linkCounters(t, ns, brPort)
	more := tcpData(a, b, 40000, 80, "more")
	a.send(more)
	b.expect(more)
	if rx1, _ = linkCounters(t, ns, brPort); rx1 != rx0 {
		t.Errorf("with VEPA off the bridge received %d frames", rx1-rx0)
	}
}

// Without its uplink a VEPA network delivers nothing between VMs (the
// external switch's policy would be bypassed): port_down at the sender.
func TestVEPAWithoutUplinkFailsClosed(t *testing.T) {
	nw := testNetwork("n", "10.0.0.0/24")
	nw.VEPA = true
	if err := nw.Validate(); err == nil || !strings.Contains(err.Error(), "vepa") {
		t.Fatalf("Validate of VEPA without uplink: %v", err)
	}
	ts := newTestSwitch(t, webDB)
	if err := ts.sw.SetNetworkVEPA("n", true); err != nil {
		t.Fatal(err)
	}
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")
	a.send(a.flow(b).ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(1, 1)))
	ts.waitDrops(a, "port_down", 1)
	if err := ts.sw.SetNetworkVEPA("n", false); err != nil {
		t.Fatal(err)
	}
	a.expectNotForwarded(b)
}

// The hairpin set consumes each entry once, forgets entries after their
// time to live, and evicts the oldest of a full bucket.
func TestHairpinSet(t *testing.T) {
	h := newHairpinSet()
	frame := []byte("a short frame, padded as on a wire")
	padded := append(append([]byte(nil), frame...), make([]byte, minWireFrame-len(frame))...)
	k := h.hash(frame)
	if h.hash(padded) != k {
		t.Fatal("a frame and its zero-padded copy hash differently")
	}
	// An IP frame padded with non-zero bytes by a NIC: the packet is what counts.
	ping := packettest.Flow{SrcMAC: packet.MAC{2, 0, 0, 0, 0, 1}, DstMAC: packet.MAC{2, 0, 0, 0, 0, 2},
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}.ICMP(packet.ICMPv4EchoRequest, 0, packettest.Echo(1, 1))
	junk := append(append([]byte(nil), ping...), bytes.Repeat([]byte{0xa5}, minWireFrame)...)
	if h.hash(junk) != h.hash(ping) {
		t.Fatal("an IP frame padded with non-zero bytes hashes differently")
	}
	if frameContentLen(ping[:20]) != 0 || frameContentLen(append(ping[:16:16], 0xff, 0xff)) != 0 {
		t.Fatal("a truncated frame or an overlong length field was taken at its word")
	}
	h.add(k, 3, 100)
	h.add(k, 3, 100) // the same frame sent twice: two entries
	if h.take(k, 4, 101) {
		t.Fatal("took an entry of another port")
	}
	taken := 0
	for range 3 {
		if h.take(k, 3, 101) {
			taken++
		}
	}
	if taken != 2 {
		t.Fatalf("took %d entries, want each of the two once", taken)
	}
	h.add(k, 3, 100)
	if h.take(k, 3, 100+hairpinTTL) {
		t.Fatal("took an expired entry")
	}
	for i := range hairpinWays + 1 {
		h.add(k, 5, int64(200+i))
	}
	if h.evicted != 1 {
		t.Fatalf("%d evicted, want 1", h.evicted)
	}
	n := 0
	for h.take(k, 5, 300) {
		n++
	}
	if n != hairpinWays {
		t.Fatalf("%d entries left, want %d", n, hairpinWays)
	}
}

// SetVEPA validates (VEPA needs an uplink), persists and applies; the
// next service loads it.
func TestServiceSetVEPA(t *testing.T) {
	uplink, _, _ := hairpinBridge(t)
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
	if _, err := svc.CreateNetwork(ctx, Network{Name: "local", Subnet: "10.0.0.0/24"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateNetwork(ctx, Network{Name: "ext", Subnet: "10.0.1.0/24", Uplink: &Uplink{Kind: "interface", Interface: uplink}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetVEPA(ctx, "local", true); err == nil {
		t.Fatal("VEPA accepted on a network without uplink")
	}
	if n, _ := svc.Network("local"); n.VEPA {
		t.Fatal("refused VEPA kept in the service")
	}
	if _, err := svc.SetVEPA(ctx, "nosuch", true); err == nil {
		t.Fatal("VEPA on a missing network")
	}
	n, err := svc.SetVEPA(ctx, "ext", true)
	if err != nil || !n.VEPA {
		t.Fatalf("SetVEPA: %+v, %v", n, err)
	}
	sw.mu.Lock()
	live := sw.networks["ext"].vepa.Load()
	sw.mu.Unlock()
	if !live {
		t.Fatal("VEPA not applied to the running switch")
	}
	sw.Close()

	sw2 := New(nopLog(), nil)
	t.Cleanup(sw2.Close)
	if _, err := NewService(ctx, sw2, st, filepath.Join(dir, "sw"), nopLog()); err != nil {
		t.Fatal(err)
	}
	sw2.mu.Lock()
	loaded := sw2.networks["ext"].vepa.Load()
	sw2.mu.Unlock()
	if !loaded {
		t.Fatal("VEPA not loaded from the store")
	}
}

func nopLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// vepaBench is the pipeline benchmark's switch with VEPA on and an uplink
// whose I/O is a sink: frames between the VMs go to the uplink, and the
// test hands them back as the external switch would.
func vepaBench(tb testing.TB) (*pipelineBench, *Port, *sinkIO, [][]byte) {
	pb := newPipelineBench(tb)
	frames := pb.established(tb, 100)
	sw := pb.sw
	sw.mu.Lock()
	n := sw.networks["n"]
	sw.nextID++
	upSink := &sinkIO{}
	up := &Port{ID: sw.nextID, Name: "uplink/n", Kind: UplinkPort, net: n, io: upSink}
	sw.byID[up.ID] = up
	n.uplink = up
	err := sw.recompileLocked()
	sw.setVEPALocked(n, true)
	sw.mu.Unlock()
	if err != nil {
		tb.Fatal(err)
	}
	return pb, up, upSink, frames
}

// A frame between VMs on a VEPA network, out to the uplink and back as its
// reflection, allocates nothing; the reflection is delivered once.
func TestVEPANoAllocs(t *testing.T) {
	pb, up, upSink, frames := vepaBench(t)
	var f, g packet.Frame
	scratch := make([]byte, 0, packet.MaxFrame)
	i := 0
	server0 := pb.serverSink.frames
	allocs := testing.AllocsPerRun(1000, func() {
		fr := frames[i%len(frames)]
		scratch = pb.sw.process(pb.client, fr, &f, scratch[:0])
		scratch = pb.sw.process(up, fr, &g, scratch[:0]) // the reflection
		i++
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame and reflection, want 0", allocs)
	}
	if got, want := pb.serverSink.frames-server0, upSink.frames; got != want || want < 1000 {
		t.Fatalf("uplink sent %d frames, server received %d", want, got)
	}
	// A second copy of a reflection is a spoof.
	scratch = pb.sw.process(up, frames[0], &g, scratch[:0])
	if d := up.status().Drops["vepa_spoofed"]; d != 1 {
		t.Fatalf("%d vepa_spoofed drops, want 1", d)
	}
}

// BenchmarkPipelineVEPA: BenchmarkPipeline's established frames on a VEPA
// network, each sent to the uplink and taken back as its reflection (two
// passes through process per frame delivered).
func BenchmarkPipelineVEPA(b *testing.B) {
	pb, up, _, frames := vepaBench(b)
	var f, g packet.Frame
	scratch := make([]byte, 0, packet.MaxFrame)
	before := pb.serverSink.frames
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		fr := frames[i%len(frames)]
		scratch = pb.sw.process(pb.client, fr, &f, scratch[:0])
		scratch = pb.sw.process(up, fr, &g, scratch[:0])
	}
	b.StopTimer()
	if sent := pb.serverSink.frames - before; sent != b.N {
		b.Fatalf("%d of %d frames delivered", sent, b.N)
	}
}
