package mirror

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

// The tests run a real switch with VM ports on unixgram sockets, as the
// hypervisor's NIC backend uses them, and check the captures with tshark.

const waitLimit = 5 * time.Second

// syncBuf is the switch's event log, read by the tests.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testNet struct {
	t      testing.TB
	sw     *netsw.Switch
	dir    string // sockets
	events *syncBuf
}

// newTestNet is a switch with network "n" (10.0.0.0/24, every flow
// allowed).
func newTestNet(t testing.TB) *testNet {
	t.Helper()
	ev := &syncBuf{}
	sw := netsw.New(slog.New(slog.DiscardHandler), netsw.NewEventLog(ev, 1000))
	t.Cleanup(sw.Close)
	n := netsw.Network{Name: "n", Subnet: "10.0.0.0/24", DefaultIngress: "allow", DefaultEgress: "allow", StormPPS: 10000}
	n.Normalize()
	if err := sw.AddNetwork(n); err != nil {
		t.Fatal(err)
	}
	return &testNet{t: t, sw: sw, dir: t.TempDir(), events: ev}
}

// vmNIC is a VM's NIC as its hypervisor sees it.
type vmNIC struct {
	t    testing.TB
	name string
	conn *net.UnixConn
	sw   *net.UnixAddr
	mac  packet.MAC
	ip   netip.Addr
}

// attach starts VM vm with one NIC, MAC 02:00:00:00:00:host and address
// 10.0.0.host.
func (tn *testNet) attach(vm string, host byte) *vmNIC {
	t := tn.t
	t.Helper()
	mac := packet.MAC{2, 0, 0, 0, 0, host}
	ip := netip.AddrFrom4([4]byte{10, 0, 0, host})
	peer := filepath.Join(tn.dir, vm+".peer")
	sock := filepath.Join(tn.dir, vm+".sw")
	os.Remove(peer)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: peer, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadBuffer(4 << 20)
	t.Cleanup(func() { conn.Close() })
	if _, err := tn.sw.AttachVMPort(netsw.VMPortSpec{VM: vm, Network: "n", MAC: mac, IPs: []netip.Addr{ip}, Socket: sock, Peer: peer}); err != nil {
		t.Fatal(err)
	}
	return &vmNIC{t: t, name: vm, conn: conn, sw: &net.UnixAddr{Name: sock, Net: "unixgram"}, mac: mac, ip: ip}
}

func (v *vmNIC) flow(to *vmNIC) packettest.Flow {
	return packettest.Flow{SrcMAC: v.mac, DstMAC: to.mac, Src: v.ip, Dst: to.ip}
}

// broadcast is a flow to the subnet's broadcast address.
func (v *vmNIC) broadcast() packettest.Flow {
	return packettest.Flow{SrcMAC: v.mac, DstMAC: packet.Broadcast, Src: v.ip, Dst: netip.MustParseAddr("10.0.0.255")}
}

func (v *vmNIC) send(frame []byte) {
	v.t.Helper()
	if _, err := v.conn.WriteToUnix(frame, v.sw); err != nil {
		v.t.Fatal(err)
	}
}

// recv returns the next frame the NIC receives, or nil after wait.
func (v *vmNIC) recv(wait time.Duration) []byte {
	buf := make([]byte, 65536)
	v.conn.SetReadDeadline(time.Now().Add(wait))
	n, _, err := v.conn.ReadFromUnix(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// deliver sends frame from v and waits until every one of to received it.
func (v *vmNIC) deliver(frame []byte, to ...*vmNIC) {
	v.t.Helper()
	v.send(frame)
	for _, r := range to {
		got := r.recv(waitLimit)
		if !bytes.Equal(got, frame) {
			v.t.Fatalf("%s → %s: received %x, want %x", v.name, r.name, got, frame)
		}
	}
}

func newTestManager(t *testing.T, tn *testNet) (*Manager, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mirror")
	m, err := NewManager(tn.sw, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	tn.sw.SetMirrorStages(m)
	return m, dir
}

// waitFrames waits until every session listed has written its count.
func waitFrames(t *testing.T, m *Manager, want map[string]uint64) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		ok := true
		got := map[string]uint64{}
		for _, st := range m.Status() {
			got[st.Name] = st.Frames
			if w, listed := want[st.Name]; listed && st.Frames != w {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("copies written %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// needTshark fails the test without tshark: the capture format would go
// unchecked by an independent reader (the test command installs it).
func needTshark(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatal("tshark is not installed (apt-get install tshark; scripts/deps.sh does): the pcap and ERSPAN output cannot be checked by an independent reader")
	}
}

// tshark runs tshark and returns its standard output; errors are the
// test's (it may run on any goroutine).
func tshark(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("tshark", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Errorf("tshark %v: %v: %s", args, err, stderr.String())
	}
	return string(out)
}

// packets lists a capture's IP packets as "src dst frame-length" lines.
func packets(t *testing.T, file string) []string {
	t.Helper()
	out := tshark(t, "-n", "-r", file, "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "frame.len")
	var lines []string
	for l := range strings.Lines(out) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, strings.Join(strings.Fields(l), " "))
		}
	}
	return lines
}

func pcapSession(name string, sources ...string) Session {
	return Session{Name: name, Network: "n", Sources: sources, Target: Target{Kind: TargetPcap}}
}

// udp is a UDP frame of total length n.
func udp(fl packettest.Flow, sport, dport uint16, n int) []byte {
	return fl.UDP(sport, dport, make([]byte, n-packettest.IPv4L4-8))
}

// Directions, filters and a broadcast, each session checked with tshark.
func TestPcapSessions(t *testing.T) {
	needTshark(t)
	tn := newTestNet(t)
	a, b, c := tn.attach("a", 1), tn.attach("b", 2), tn.attach("c", 3)
	m, dir := newTestManager(t, tn)
	outA := pcapSession("out-a", "a")
	outA.Direction = DirOut
	inA := pcapSession("in-a", "a/nic0")
	inA.Direction = DirIn
	both := pcapSession("both-a", "a")
	dns := pcapSession("udp53", "b")
	dns.Filter = &Filter{Proto: "udp", Port: 53}
	host := pcapSession("host", "a", "b", "c")
	host.Filter = &Filter{Host: "10.0.0.3/32"}
	bcastIn := pcapSession("in-bc", "b", "c")
	bcastIn.Direction = DirIn
	if err := m.Set([]Session{outA, inA, both, dns, host, bcastIn}); err != nil {
		t.Fatal(err)
	}

	a.deliver(udp(a.flow(b), 1000, 2000, 52), b)
	b.deliver(udp(b.flow(a), 2000, 1000, 62), a)
	b.deliver(udp(b.flow(c), 5000, 53, 72), c)
	c.deliver(udp(c.flow(a), 53, 5000, 82), a)
	a.deliver(udp(a.broadcast(), 9, 9, 92), b, c) // flooded to b and c

	const (
		ab = "10.0.0.1 10.0.0.2 52"
		ba = "10.0.0.2 10.0.0.1 62"
		bc = "10.0.0.2 10.0.0.3 72"
		ca = "10.0.0.3 10.0.0.1 82"
		bx = "10.0.0.1 10.0.0.255 92"
	)
	want := map[string][]string{
		"out-a":  {ab, bx}, // the broadcast once, not once per port
		"in-a":   {ba, ca},
		"both-a": {ab, ba, ca, bx},
		"udp53":  {bc},
		"host":   {bc, ca},
		"in-bc":  {ab, bc, bx}, // delivered to both sources, copied once
	}
	counts := map[string]uint64{}
	for k, v := range want {
		counts[k] = uint64(len(v))
	}
	waitFrames(t, m, counts)
	st := m.Status()
	if err := m.Close(); err != nil { // flushes the files
		t.Fatal(err)
	}
	// tshark takes a second to start: read the files at once.
	got := make([][]string, len(st))
	var wg sync.WaitGroup
	for i, s := range st {
		if len(s.Files) == 1 {
			wg.Go(func() { got[i] = packets(t, s.Files[0]) })
		}
	}
	wg.Wait()
	for i, s := range st {
		if len(s.Files) != 1 || s.Dropped != 0 || s.LastError != "" || len(s.Missing) != 0 {
			t.Errorf("%s: status %+v", s.Name, s)
			continue
		}
		if s.Files[0] != filepath.Join(dir, s.Name+"-000001.pcap") {
			t.Errorf("%s: file %s", s.Name, s.Files[0])
		}
		got := got[i]
		if strings.Join(got, "\n") != strings.Join(want[s.Name], "\n") {
			t.Errorf("%s: tshark shows\n%s\nwant\n%s", s.Name, strings.Join(got, "\n"), strings.Join(want[s.Name], "\n"))
		}
		fi, err := os.Stat(s.Files[0])
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", s.Name, fi.Mode(), err)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory %v %v, want 0700", fi.Mode(), err)
	}
	// The snap length and link type are in the file header.
	hdr := tshark(t, "-r", filepath.Join(dir, "out-a-000001.pcap"), "-c", "1", "-T", "fields", "-e", "frame.cap_len", "-e", "frame.protocols")
	if got := strings.TrimSpace(hdr); got != "52\teth:ethertype:ip:udp:data" {
		t.Errorf("tshark: %q", got)
	}
}

// A short snap length cuts the copies; the original length is kept.
func TestPcapSnapLen(t *testing.T) {
	needTshark(t)
	tn := newTestNet(t)
	a, b := tn.attach("a", 1), tn.attach("b", 2)
	m, _ := newTestManager(t, tn)
	s := pcapSession("snap", "a")
	s.SnapLen = 64
	if err := m.Set([]Session{s}); err != nil {
		t.Fatal(err)
	}
	a.deliver(udp(a.flow(b), 1, 2, 500), b)
	waitFrames(t, m, map[string]uint64{"snap": 1})
	files := m.Status()[0].Files
	m.Close()
	got := tshark(t, "-r", files[0], "-T", "fields", "-e", "frame.cap_len", "-e", "frame.len")
	if strings.TrimSpace(got) != "64\t500" {
		t.Errorf("captured/original length %q, want 64/500", got)
	}
}

// Files rotate at max_bytes; beyond max_files the oldest go; a new
// manager on the same directory numbers on and counts the old files.
func TestPcapRotation(t *testing.T) {
	needTshark(t)
	tn := newTestNet(t)
	a, b := tn.attach("a", 1), tn.attach("b", 2)
	m, dir := newTestManager(t, tn)
	s := pcapSession("rot", "a")
	s.Direction = DirOut
	s.Target.MaxBytes = MinMaxBytes
	s.Target.MaxFiles = 3
	if err := m.Set([]Session{s}); err != nil {
		t.Fatal(err)
	}
	// 1,000-byte frames take 1,016 bytes each in the file: 64 per file
	// ((65,536 - 24) / 1,016), so 400 fill six files and start a seventh.
	const frames, perFile = 400, 64
	fl := a.flow(b)
	for i := range frames {
		a.send(udp(fl, uint16(1000+i), 9, 1000))
	}
	waitFrames(t, m, map[string]uint64{"rot": frames})
	files := m.Status()[0].Files
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if want := "rot-000005.pcap rot-000006.pcap rot-000007.pcap"; strings.Join(names, " ") != want {
		t.Fatalf("files %v, want %s", names, want)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 {
		t.Errorf("%d files in the directory, want 3", len(ents))
	}
	for i, f := range files {
		fi, err := os.Stat(f)
		if err != nil || fi.Size() > MinMaxBytes || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, size %d, mode %v", f, err, fi.Size(), fi.Mode())
		}
		n := len(packets(t, f))
		want := perFile
		if i == 2 {
			want = frames - 6*perFile
		}
		if n != want {
			t.Errorf("%s: %d packets, want %d", f, n, want)
		}
	}

	// Again, with files of the earlier run there.
	m2, err := NewManager(tn.sw, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if err := m2.Set([]Session{s}); err != nil {
		t.Fatal(err)
	}
	names = nil
	for _, f := range m2.Status()[0].Files {
		names = append(names, filepath.Base(f))
	}
	if want := "rot-000006.pcap rot-000007.pcap rot-000008.pcap"; strings.Join(names, " ") != want {
		t.Fatalf("after restart: files %v, want %s", names, want)
	}
}

// The pcap directory is never followed through a symlink, and a file
// planted at the next name is not written into.
func TestPcapDirectorySafety(t *testing.T) {
	tn := newTestNet(t)
	base := t.TempDir()
	real := filepath.Join(base, "real")
	os.Mkdir(real, 0o700)
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := NewManager(tn.sw, link, nil); err == nil {
		t.Error("a symlinked directory was accepted")
	}
	if _, err := NewManager(tn.sw, "relative/dir", nil); err == nil {
		t.Error("a relative directory was accepted")
	}
	// A symlink at the first file's name: O_EXCL refuses it, the next
	// number is used, and the symlink's target is untouched.
	victim := filepath.Join(base, "victim")
	os.WriteFile(victim, []byte("keep"), 0o600)
	os.Symlink(victim, filepath.Join(real, "s-000001.pcap"))
	os.Chmod(real, 0o755)
	m, err := NewManager(tn.sw, real, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if fi, _ := os.Stat(real); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	if err := m.Set([]Session{pcapSession("s", "a")}); err != nil {
		t.Fatal(err)
	}
	if f := m.Status()[0].Files; len(f) != 1 || filepath.Base(f[0]) != "s-000002.pcap" {
		t.Errorf("files %v", f)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the symlink's target was written: %q", b)
	}
}

// A monitor port receives the copies, and only receives.
func TestPortTarget(t *testing.T) {
	tn := newTestNet(t)
	a, b := tn.attach("a", 1), tn.attach("b", 2)
	m, _ := newTestManager(t, tn)
	s := Session{Name: "tap", Network: "n", Sources: []string{"a"}, Target: Target{Kind: TargetPort, Port: "mon"}}
	if err := m.Set([]Session{s}); err != nil {
		t.Fatal(err)
	}
	if st := m.Status()[0]; len(st.Missing) != 1 || st.Missing[0] != "mon/nic0" {
		t.Errorf("missing %v, want the monitor port", st.Missing)
	}
	// The monitor VM starts after the session: it is a tap from its first
	// frame.
	mon := tn.attach("mon", 9)
	if st := m.Status()[0]; len(st.Missing) != 0 {
		t.Errorf("missing %v after the monitor attached", st.Missing)
	}
	mon.send(udp(mon.flow(b), 7, 7, 60))

	fr := udp(a.flow(b), 1000, 2000, 100)
	a.deliver(fr, b)
	if got := mon.recv(waitLimit); !bytes.Equal(got, fr) {
		t.Fatalf("monitor received %x, want %x", got, fr)
	}
	// The monitor's frame was dropped, counted and logged.
	if got := b.recv(200 * time.Millisecond); got != nil {
		t.Errorf("b received %x from the monitor port", got)
	}
	var drops uint64
	for _, p := range tn.sw.Ports() {
		if p.VM == "mon" {
			drops = p.Drops["mirror_port_tx"]
		}
	}
	if drops != 1 {
		t.Errorf("mirror_port_tx drops %d, want 1", drops)
	}
	if ev := tn.events.String(); !strings.Contains(ev, `"reason":"mirror_port_tx"`) || !strings.Contains(ev, `"in_port":"mon/nic0"`) {
		t.Errorf("no log line for the drop: %s", ev)
	}

	// A monitor port cannot be a source, in its session or another.
	bad := s
	bad.Sources = []string{"a", "mon"}
	if err := m.Set([]Session{bad}); err == nil || !strings.Contains(err.Error(), "monitor port") {
		t.Errorf("monitor as its own source: %v", err)
	}
	other := pcapSession("p", "mon/nic0")
	if err := m.Set([]Session{s, other}); err == nil || !strings.Contains(err.Error(), "monitor port") {
		t.Errorf("monitor as another session's source: %v", err)
	}

	// Without the session it is an ordinary port again.
	if err := m.Set(nil); err != nil {
		t.Fatal(err)
	}
	fr = udp(mon.flow(b), 7, 7, 60)
	mon.deliver(fr, b)
}

// A full queue drops copies, counted, never blocking the switch.
func TestQueueFull(t *testing.T) {
	tn := newTestNet(t)
	tn.attach("a", 1)
	m, _ := newTestManager(t, tn)
	s := Session{Name: "q", Network: "n", Sources: []string{"a"}, Target: Target{Kind: TargetPort, Port: "nobody"}}
	if err := m.Set([]Session{s}); err != nil {
		t.Fatal(err)
	}
	r := m.running["q"]
	// Stop the writer from draining: take every record out of the pool.
	var held []*record
	for {
		rec := r.get()
		if rec == nil {
			break
		}
		held = append(held, rec)
	}
	if len(held) != QueueFrames {
		t.Fatalf("%d records, want %d", len(held), QueueFrames)
	}
	var f packet.Frame
	raw := udp(packettest.Flow{SrcMAC: packet.MAC{2, 0, 0, 0, 0, 1}, DstMAC: packet.MAC{2, 0, 0, 0, 0, 2},
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}, 1, 2, 64)
	packet.Parse(raw, &f)
	pa := tn.sw.LookupPort("n", "a/nic0")
	c := &netsw.FrameContext{Raw: raw, Frame: &f, In: pa, Out: pa, Seq: 1}
	m.Process(c)
	if st := m.Status()[0]; st.Dropped != 1 || st.DroppedBy["queue_full"] != 1 {
		t.Errorf("status %+v, want one queue_full drop", st)
	}
	for _, rec := range held {
		r.free <- rec
	}
}

// The mirror stage allocates nothing per frame, with or without sessions
// (once a session's pool is warm).
func TestProcessNoAllocs(t *testing.T) {
	tn := newTestNet(t)
	tn.attach("a", 1)
	tn.attach("b", 2)
	m, _ := newTestManager(t, tn)
	pa, pb := tn.sw.LookupPort("n", "a/nic0"), tn.sw.LookupPort("n", "b/nic0")
	var f packet.Frame
	raw := udp(packettest.Flow{SrcMAC: packet.MAC{2, 0, 0, 0, 0, 1}, DstMAC: packet.MAC{2, 0, 0, 0, 0, 2},
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}, 1, 2, 64)
	packet.Parse(raw, &f)
	c := &netsw.FrameContext{Raw: raw, Frame: &f, In: pa, Out: pb}
	run := func() float64 {
		return testing.AllocsPerRun(1000, func() {
			c.Seq++
			m.Process(c)
		})
	}
	if n := run(); n != 0 {
		t.Errorf("no session: %v allocations per frame", n)
	}
	s := pcapSession("s", "a")
	s.Filter = &Filter{Proto: "udp", Host: "10.0.0.0/24"}
	if err := m.Set([]Session{s, pcapSession("other", "c")}); err != nil {
		t.Fatal(err)
	}
	r := m.running["s"]
	var warm []*record
	for range QueueFrames {
		warm = append(warm, r.get())
	}
	for _, rec := range warm {
		r.free <- rec
	}
	if n := run(); n != 0 {
		t.Errorf("pcap session: %v allocations per frame", n)
	}
	waitFrames(t, m, map[string]uint64{"s": 1001})
}

func TestSetKeepsUnchangedSessions(t *testing.T) {
	tn := newTestNet(t)
	m, _ := newTestManager(t, tn)
	a, b := pcapSession("a", "x"), pcapSession("b", "y")
	if err := m.Set([]Session{a, b}); err != nil {
		t.Fatal(err)
	}
	ra, rb := m.running["a"], m.running["b"]
	b.Direction = DirIn
	if err := m.Set([]Session{a, b}); err != nil {
		t.Fatal(err)
	}
	if m.running["a"] != ra || m.running["b"] == rb {
		t.Error("an unchanged session restarted or a changed one did not")
	}
	// A refused list changes nothing.
	bad := pcapSession("c", "z")
	bad.Target.MaxFiles = -1
	if err := m.Set([]Session{a, bad}); err == nil {
		t.Fatal("invalid session accepted")
	}
	if len(m.Status()) != 2 {
		t.Error("a refused Set changed the sessions")
	}
	if err := m.Set([]Session{a, a}); err == nil {
		t.Error("duplicate names accepted")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Set([]Session{a}); err != ErrClosed {
		t.Errorf("Set after Close: %v", err)
	}
}

func ExampleSession() {
	s := Session{Name: "web-dump", Network: "prod", Sources: []string{"web1", "db/nic1"},
		Filter: &Filter{Proto: "tcp", Port: 443}, Target: Target{Kind: TargetERSPAN, Remote: "192.0.2.10", SessionID: 7}}
	s.Normalize()
	fmt.Println(s.Validate(), s.Direction, s.SnapLen, s.Target.MaxPPS)
	// Output: <nil> both 65535 100000
}

// BenchmarkProcess is the mirror stage alone on one frame: no session, a
// session that does not match, and a pcap session copying every frame
// (its writer on another core).
func BenchmarkProcess(b *testing.B) {
	for _, mode := range []string{"none", "nomatch", "pcap"} {
		b.Run(mode, func(b *testing.B) {
			tn := newTestNet(b)
			sw := tn.sw
			tn.attach("a", 1)
			tn.attach("b", 2)
			m, err := NewManager(sw, filepath.Join(b.TempDir(), "m"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			switch mode {
			case "nomatch":
				err = m.Set([]Session{pcapSession("s", "c")})
			case "pcap":
				err = m.Set([]Session{pcapSession("s", "a")})
			}
			if err != nil {
				b.Fatal(err)
			}
			var f packet.Frame
			raw := udp(packettest.Flow{SrcMAC: packet.MAC{2, 0, 0, 0, 0, 1}, DstMAC: packet.MAC{2, 0, 0, 0, 0, 2},
				Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}, 1, 2, 64)
			packet.Parse(raw, &f)
			c := &netsw.FrameContext{Raw: raw, Frame: &f, In: sw.LookupPort("n", "a/nic0"), Out: sw.LookupPort("n", "b/nic0")}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				c.Seq, c.Now = uint64(i+1), int64(i+1)
				m.Process(c)
			}
		})
	}
}
