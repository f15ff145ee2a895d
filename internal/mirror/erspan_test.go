package mirror

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// decodeERSPAN is the tests' own reader of what appendERSPAN writes,
// written from the draft's layout rather than from the encoder.
func decodeERSPAN(b []byte) (erspanHeader, []byte, error) {
	var h erspanHeader
	if len(b) < 16 {
		return h, nil, errors.New("short")
	}
	if flags := binary.BigEndian.Uint16(b); flags != 0x1000 {
		return h, nil, fmt.Errorf("GRE flags/version %#04x, want S only", flags)
	}
	if p := binary.BigEndian.Uint16(b[2:]); p != 0x88be {
		return h, nil, fmt.Errorf("GRE protocol %#04x", p)
	}
	h.Seq = binary.BigEndian.Uint32(b[4:])
	w0 := binary.BigEndian.Uint16(b[8:])
	if w0>>12 != 1 {
		return h, nil, fmt.Errorf("ERSPAN version %d", w0>>12)
	}
	h.VLAN = w0 & 0xfff
	w1 := binary.BigEndian.Uint16(b[10:])
	h.COS, h.En, h.Truncated, h.SessionID = uint8(w1>>13), uint8(w1>>11&3), w1>>10&1 == 1, w1&0x3ff
	w2 := binary.BigEndian.Uint32(b[12:])
	if w2>>20 != 0 {
		return h, nil, fmt.Errorf("reserved bits %#x", w2>>20)
	}
	h.Index = w2 & 0xfffff
	return h, b[16:], nil
}

func TestERSPANEncoding(t *testing.T) {
	frame := []byte{1, 2, 3, 4}
	b := appendERSPAN(nil, erspanHeader{Seq: 7, SessionID: 1023, Index: 5, Truncated: true}, frame)
	want := []byte{0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 7, 0x10, 0x00, 0x07, 0xff, 0, 0, 0, 5, 1, 2, 3, 4}
	if !bytes.Equal(b, want) {
		t.Fatalf("got  %x\nwant %x", b, want)
	}
}

// FuzzERSPAN: whatever the fields, the encoding reads back as the fields
// cut to their widths, followed by the frame.
func FuzzERSPAN(f *testing.F) {
	f.Add(uint32(0), uint16(0), uint8(0), uint8(0), false, uint16(0), uint32(0), []byte{})
	f.Add(uint32(1<<32-1), uint16(0xffff), uint8(0xff), uint8(0xff), true, uint16(0xffff), uint32(1<<32-1), bytes.Repeat([]byte{0xff}, 1518))
	f.Fuzz(func(t *testing.T, seq uint32, vlan uint16, cos, en uint8, trunc bool, sid uint16, index uint32, frame []byte) {
		h := erspanHeader{Seq: seq, VLAN: vlan, COS: cos, En: en, Truncated: trunc, SessionID: sid, Index: index}
		prefix := []byte("kept")
		b := appendERSPAN(append([]byte(nil), prefix...), h, frame)
		if !bytes.HasPrefix(b, prefix) || len(b) != len(prefix)+ERSPANOverhead+len(frame) {
			t.Fatalf("%d bytes", len(b))
		}
		got, payload, err := decodeERSPAN(b[len(prefix):])
		if err != nil {
			t.Fatal(err)
		}
		want := erspanHeader{Seq: seq, VLAN: vlan & 0xfff, COS: cos & 7, En: en & 3, Truncated: trunc, SessionID: sid & 0x3ff, Index: index & 0xfffff}
		if got != want || !bytes.Equal(payload, frame) {
			t.Fatalf("read back %+v, want %+v", got, want)
		}
	})
}

// collector is a network namespace behind a veth pair: the host end
// 10.201.X.Y+1/30, the namespace end +2, where a packet socket captures.
type collector struct {
	ns, hostIf, nsIf string
	host, remote     string
	fd               int // AF_PACKET socket on nsIf
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v: %s", args, err, out)
	}
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: needs root for a network namespace and a raw GRE socket")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIPPED: ip (iproute2) is not installed")
	}
	id := os.Getpid() % 16384
	c := &collector{ns: fmt.Sprintf("bwmirror%d", id), hostIf: fmt.Sprintf("bwm%dh", id), nsIf: fmt.Sprintf("bwm%dn", id),
		host: fmt.Sprintf("10.201.%d.%d", id/64, id%64*4+1), remote: fmt.Sprintf("10.201.%d.%d", id/64, id%64*4+2)}
	exec.Command("ip", "netns", "del", c.ns).Run() // a leftover of a killed run
	exec.Command("ip", "link", "del", c.hostIf).Run()
	run(t, "ip", "netns", "add", c.ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", c.ns).Run() })
	run(t, "ip", "link", "add", c.hostIf, "type", "veth", "peer", "name", c.nsIf)
	t.Cleanup(func() { exec.Command("ip", "link", "del", c.hostIf).Run() })
	run(t, "ip", "link", "set", c.nsIf, "netns", c.ns)
	run(t, "ip", "addr", "add", c.host+"/30", "dev", c.hostIf)
	run(t, "ip", "link", "set", c.hostIf, "up")
	run(t, "ip", "netns", "exec", c.ns, "ip", "addr", "add", c.remote+"/30", "dev", c.nsIf)
	run(t, "ip", "netns", "exec", c.ns, "ip", "link", "set", c.nsIf, "up")

	// The packet socket is made inside the namespace, on a thread that
	// enters it and then ends with its goroutine; it keeps capturing
	// there from any thread.
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		r := result{fd: -1}
		defer func() { done <- r }()
		nsfd, err := unix.Open("/run/netns/"+c.ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			r.err = err
			return
		}
		defer unix.Close(nsfd)
		if r.err = unix.Setns(nsfd, unix.CLONE_NEWNET); r.err != nil {
			return
		}
		ifi, err := net.InterfaceByName(c.nsIf)
		if err != nil {
			r.err = err
			return
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			r.err = err
			return
		}
		if r.err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); r.err != nil {
			unix.Close(fd)
			return
		}
		r.fd = fd
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("capture socket in %s: %v", c.ns, r.err)
	}
	c.fd = r.fd
	t.Cleanup(func() { unix.Close(c.fd) })
	tv := unix.NsecToTimeval(int64(300 * time.Millisecond))
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return c
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// capture reads frames arriving in the namespace until want ERSPAN
// packets (IPv4 protocol 47, GRE protocol 0x88be, first fragments) came
// and 300 ms passed without a frame, and writes them all to a pcap file.
func (c *collector) capture(t *testing.T, want int) string {
	t.Helper()
	file := appendPcapHeader(nil, 65535)
	buf := make([]byte, 65536)
	deadline := time.Now().Add(waitLimit)
	got := 0
	for time.Now().Before(deadline) {
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if got >= want {
				break // quiet for 300 ms after the last one
			}
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // the namespace's answers (ICMP protocol unreachable)
		}
		fr := buf[:n]
		if len(fr) >= 14+20+4 && binary.BigEndian.Uint16(fr[12:]) == 0x0800 && fr[14+9] == 47 &&
			binary.BigEndian.Uint16(fr[14+6:])&0x1fff == 0 && binary.BigEndian.Uint16(fr[14+int(fr[14]&0xf)*4+2:]) == 0x88be {
			got++
		}
		file = appendPcapRecord(file, &record{n: n, orig: n, ts: time.Now().UnixNano()})
		file = append(file, fr...)
	}
	if got < want {
		t.Fatalf("%d ERSPAN packets reached the collector, want %d", got, want)
	}
	path := filepath.Join(t.TempDir(), "collector.pcap")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Copies go as ERSPAN II to a collector in another namespace, where
// tshark decodes the session id, the index, the truncation bit and the
// frames inside.
func TestERSPAN(t *testing.T) {
	needTshark(t)
	col := newCollector(t)
	tn := newTestNet(t)
	a, b := tn.attach("a", 1), tn.attach("b", 2)
	m, _ := newTestManager(t, tn)
	full := Session{Name: "full", Network: "n", Sources: []string{"a"},
		Target: Target{Kind: TargetERSPAN, Remote: col.remote, SessionID: 42}}
	short := full
	short.Name, short.SnapLen, short.Target.SessionID = "short", 64, 43
	short.Direction = DirOut
	if err := m.Set([]Session{full, short}); err != nil {
		t.Fatal(err)
	}
	a.deliver(udp(a.flow(b), 1000, 2000, 60), b)
	b.deliver(udp(b.flow(a), 2000, 1000, 200), a)
	// A full-size frame: with the headers it is above the veth's MTU and
	// goes as two IP fragments, which tshark reassembles.
	a.deliver(udp(a.flow(b), 1000, 2000, 1514), b)
	waitFrames(t, m, map[string]uint64{"full": 3, "short": 2})
	pa := tn.sw.LookupPort("n", "a/nic0")
	file := col.capture(t, 5)

	out := tshark(t, "-n", "-r", file, "-Y", "erspan", "-T", "fields", "-e", "erspan.version", "-e", "erspan.spanid",
		"-e", "erspan.index", "-e", "erspan.truncated", "-e", "gre.sequence_number", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.len")
	var got []string
	for l := range strings.Lines(out) {
		f := strings.Split(strings.TrimSpace(l), "\t")
		if len(f) != 8 {
			t.Fatalf("tshark line %q", l)
		}
		// ip.src, ip.dst and ip.len list the outer header, then the inner.
		last := func(s string) string { return s[strings.LastIndex(s, ",")+1:] }
		outer := strings.Split(f[5], ",")[0] + ">" + strings.Split(f[6], ",")[0]
		got = append(got, strings.Join([]string{f[0], f[1], f[2], f[3], f[4], outer, last(f[5]) + ">" + last(f[6]), last(f[7])}, " "))
	}
	// The copies of the two sessions may interleave; each session's come
	// in order, numbered from 0.
	idx := fmt.Sprint(pa.ID)
	hop := col.host + ">" + col.remote
	want := map[string][]string{
		"42": {
			"1 42 " + idx + " 0 0 " + hop + " 10.0.0.1>10.0.0.2 46",
			"1 42 " + idx + " 0 1 " + hop + " 10.0.0.2>10.0.0.1 186", // the index is the source's, a
			"1 42 " + idx + " 0 2 " + hop + " 10.0.0.1>10.0.0.2 1500",
		},
		"43": {
			"1 43 " + idx + " 0 0 " + hop + " 10.0.0.1>10.0.0.2 46",
			"1 43 " + idx + " 1 1 " + hop + " 10.0.0.1>10.0.0.2 1500", // cut to 64 bytes: T set
		},
	}
	bySession := map[string][]string{}
	for _, l := range got {
		sid := strings.Fields(l)[1]
		bySession[sid] = append(bySession[sid], l)
	}
	for sid, w := range want {
		if strings.Join(bySession[sid], "\n") != strings.Join(w, "\n") {
			t.Errorf("session %s: tshark shows\n%s\nwant\n%s", sid, strings.Join(bySession[sid], "\n"), strings.Join(w, "\n"))
		}
	}
	if v := tshark(t, "-n", "-r", file, "-Y", "erspan", "-V"); !strings.Contains(v, "Encapsulated Remote Switch Packet ANalysis Type II") {
		t.Errorf("tshark -V does not show ERSPAN type II:\n%s", v)
	}
	for _, st := range m.Status() {
		if st.Dropped != 0 || st.LastError != "" {
			t.Errorf("%s: %+v", st.Name, st)
		}
	}
}

// Over max_pps, copies are dropped and counted as "rate".
func TestERSPANRate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: needs root for a raw GRE socket")
	}
	s := Session{Name: "r", Network: "n", Sources: []string{"a"}, Target: Target{Kind: TargetERSPAN, Remote: "127.0.0.1", MaxPPS: 10}}
	s.Normalize()
	tgt, err := newERSPANTarget(&s)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.close()
	var sent, limited int
	rec := &record{n: 60, orig: 60}
	for range 50 {
		switch err := tgt.write(rec); {
		case err == nil:
			sent++
		case errors.Is(err, errRate):
			limited++
		default:
			t.Fatal(err)
		}
	}
	// A burst of one (10/s ÷ 10), then 10/s: a few within the loop.
	if sent < 1 || sent > 3 || limited != 50-sent {
		t.Errorf("sent %d, limited %d", sent, limited)
	}
}
