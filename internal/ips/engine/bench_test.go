package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

// pcapWriter builds a classic pcap of Ethernet/IPv4/TCP frames in memory.
type pcapWriter struct {
	buf bytes.Buffer
	now time.Time
}

func newPcapWriter() *pcapWriter {
	w := &pcapWriter{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 65535)
	binary.LittleEndian.PutUint32(h[20:], LinkEthernet)
	w.buf.Write(h[:])
	return w
}

func (w *pcapWriter) tcp(src, dst [4]byte, sp, dp uint16, seq, ack uint32, flags uint8, payload []byte) {
	frame := make([]byte, 14+20+20+len(payload))
	copy(frame[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(frame[6:12], []byte{2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(frame[12:], 0x0800)
	ip := frame[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(40+len(payload)))
	ip[8], ip[9] = 64, ProtoTCP
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	t := ip[20:]
	binary.BigEndian.PutUint16(t[0:], sp)
	binary.BigEndian.PutUint16(t[2:], dp)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12] = 5 << 4
	t[13] = flags
	binary.BigEndian.PutUint16(t[14:], 65535)
	copy(t[20:], payload)
	var rh [16]byte
	binary.LittleEndian.PutUint32(rh[0:], uint32(w.now.Unix()))
	binary.LittleEndian.PutUint32(rh[4:], uint32(w.now.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(rh[8:], uint32(len(frame)))
	binary.LittleEndian.PutUint32(rh[12:], uint32(len(frame)))
	w.buf.Write(rh[:])
	w.buf.Write(frame)
	w.now = w.now.Add(50 * time.Microsecond)
}

var benchWords = []string{"index", "login", "api", "v1", "users", "search", "static", "img", "cart", "wp-content", "news", "id", "q", "page"}

// genHTTP returns a pcap of n HTTP/1.1 connections between generated
// hosts: handshake, a GET or POST with typical headers, a response with a
// 1-16 KiB text body in 1,460-byte segments, and FINs.
func genHTTP(n int, seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	w := newPcapWriter()
	word := func() string { return benchWords[rng.Intn(len(benchWords))] }
	for i := 0; i < n; i++ {
		cli := [4]byte{10, 1, byte(i >> 8), byte(i)}
		srv := [4]byte{192, 0, 2, byte(1 + i%200)}
		sp := uint16(20000 + i%40000)
		cs, ss := uint32(rng.Int31()), uint32(rng.Int31())
		w.tcp(cli, srv, sp, 80, cs, 0, rules.TCPSyn, nil)
		w.tcp(srv, cli, 80, sp, ss, cs+1, rules.TCPSyn|rules.TCPAck, nil)
		cs++
		ss++
		w.tcp(cli, srv, sp, 80, cs, ss, rules.TCPAck, nil)
		method, body := "GET", ""
		if rng.Intn(4) == 0 {
			method = "POST"
			body = fmt.Sprintf("user=%s&pass=%s&token=%d", word(), word(), rng.Int63())
		}
		req := fmt.Sprintf("%s /%s/%s.php?%s=%d&%s=%s HTTP/1.1\r\nHost: www.%s.example\r\n"+
			"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n"+
			"Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.9\r\nCookie: session=%x\r\n",
			method, word(), word(), word(), rng.Intn(10000), word(), word(), word(), rng.Int63())
		if body != "" {
			req += fmt.Sprintf("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n", len(body))
		}
		req += "\r\n" + body
		w.tcp(cli, srv, sp, 80, cs, ss, rules.TCPAck|rules.TCPPsh, []byte(req))
		cs += uint32(len(req))
		var sb strings.Builder
		size := 1024 + rng.Intn(15*1024)
		for sb.Len() < size {
			fmt.Fprintf(&sb, "<p>%s %s %s %d</p>\n", word(), word(), word(), rng.Intn(1000))
		}
		resp := fmt.Sprintf("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s", sb.Len(), sb.String())
		for off := 0; off < len(resp); off += 1460 {
			seg := resp[off:min(off+1460, len(resp))]
			w.tcp(srv, cli, 80, sp, ss, cs, rules.TCPAck, []byte(seg))
			ss += uint32(len(seg))
			if off/1460%2 == 1 {
				w.tcp(cli, srv, sp, 80, cs, ss, rules.TCPAck, nil)
			}
		}
		w.tcp(cli, srv, sp, 80, cs, ss, rules.TCPAck|rules.TCPFin, nil)
		w.tcp(srv, cli, 80, sp, ss, cs+1, rules.TCPAck|rules.TCPFin, nil)
		w.tcp(cli, srv, sp, 80, cs+1, ss+1, rules.TCPAck, nil)
	}
	return w.buf.Bytes()
}

// etOpenEngine compiles every loadable ET Open rule.
func etOpenEngine(tb testing.TB) (*Engine, rules.Stats) {
	dir := sharedData(tb, "et-open")
	cls := classes(tb)
	files, _ := filepath.Glob(filepath.Join(dir, "*.rules"))
	l := rules.NewLoader(&rules.Options{Classes: cls, Disabled: Disabled})
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		if err := l.Add(bytes.NewReader(b), filepath.Base(f)); err != nil {
			tb.Fatal(err)
		}
	}
	set, st := l.Finish()
	e, err := New(set, cls, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return e, st
}

// replayCaps runs caps through a new Detector per iteration and reports
// the throughput. Bytes are counted as Suricata's decoder.bytes counts
// them: each captured frame whole, Ethernet header included, no preamble,
// FCS or pcap record header. Gbit/s and Mbit/s are those bytes times 8
// over the timed loop, Gbit/cpu-s the same bits over the CPU time the
// process used in it; the loop covers decoding, flows, reassembly, the
// parsers, detection and each flow's end, not loading the rules.
func replayCaps(b *testing.B, e *Engine, caps [][]byte) {
	var total, pkts uint64
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := NewDetector(e, Config{})
		total, pkts = 0, 0
		for _, c := range caps {
			rs, err := Replay(bytes.NewReader(c), d, nil)
			if err != nil {
				b.Fatal(err)
			}
			total += rs.Bytes
			pkts += rs.Packets
		}
	}
	b.StopTimer()
	cpu := (cpuTime() - cpu0).Seconds()
	sec := b.Elapsed().Seconds()
	bits := float64(total) * 8 * float64(b.N)
	b.SetBytes(int64(total))
	b.ReportMetric(bits/sec/1e9, "Gbit/s")
	b.ReportMetric(bits/sec/1e6, "Mbit/s")
	b.ReportMetric(float64(pkts)*float64(b.N)/sec, "packets/s")
	b.ReportMetric(float64(total)/float64(max(pkts, 1)), "B/packet")
	// On a shared machine wall time includes waiting for a core; the
	// process's CPU time (the garbage collector's included) does not.
	b.ReportMetric(bits/cpu/1e9, "Gbit/cpu-s")
}

// cpuTime is the CPU time the process has used (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// suricataVerifyCaps reads every suricata-verify capture.
func suricataVerifyCaps(b *testing.B) [][]byte {
	var caps [][]byte
	pcaps, _ := filepath.Glob(filepath.Join(sharedData(b, "suricata-verify"), "*", "*.pcap"))
	for _, p := range pcaps {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		caps = append(caps, data)
	}
	return caps
}

// BenchmarkReplay replays the mix: the suricata-verify captures and 400
// generated HTTP connections, through a Detector with every loadable ET
// Open rule, on one goroutine (one core). It reports MB/s, Gbit/s,
// Mbit/s and packets/s of the whole mix (see replayCaps for what counts).
func BenchmarkReplay(b *testing.B) {
	e, st := etOpenEngine(b)
	caps := append(suricataVerifyCaps(b), genHTTP(400, 1))
	b.Logf("ET Open: %d rules loaded", st.Loaded)
	replayCaps(b, e, caps)
}

// BenchmarkReplayHTTP is the framing of Suricata's published per-core
// figures: whole TCP flows (handshake, request, response in full-size
// 1,514-byte frames with ACKs, FINs) carrying HTTP/1.1 with 1-16 KiB text
// bodies, every loadable ET Open rule, one core, bytes as captured
// (Ethernet header included). It reports Mbit/s and packets/s beside
// Gbit/s.
func BenchmarkReplayHTTP(b *testing.B) {
	e, _ := etOpenEngine(b)
	replayCaps(b, e, [][]byte{genHTTP(400, 1)})
}

// TestBodyFromStreamScan: a verbatim HTTP body's candidates come from the
// stream scans (no scan of the body itself); they must select what a scan
// of the body would, also for a pattern split across segments, a body
// that starts in the headers' segment and one that spans many; a chunked
// body is scanned as before; a pattern only in the headers does not
// match a body rule.
func TestBodyFromStreamScan(t *testing.T) {
	d := newTestDetector(t, `
alert http any any -> any any (msg:"split"; flow:to_client; file.data; content:"secret-token-across"; sid:1;)
alert http any any -> any any (msg:"body"; flow:to_client; http.response_body; content:"needle-in-body"; sid:2;)
alert http any any -> any any (msg:"header only"; flow:to_client; file.data; content:"nginx-server"; sid:3;)
alert http any any -> any any (msg:"request body"; flow:to_server; http.request_body; content:"user=admin"; sid:4;)
alert http any any -> any any (msg:"late"; flow:to_client; file.data; content:"at-the-very-end"; endswith; sid:5;)
alert tcp any any -> any any (msg:"stream"; flow:to_client; content:"secret-token-across"; sid:6;)
`)
	w := newPcapWriter()
	cli, srv := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}
	conn := func(sp uint16, req, resp string) {
		cs, ss := uint32(1000), uint32(5000)
		w.tcp(cli, srv, sp, 80, cs, 0, rules.TCPSyn, nil)
		w.tcp(srv, cli, 80, sp, ss, cs+1, rules.TCPSyn|rules.TCPAck, nil)
		cs, ss = cs+1, ss+1
		w.tcp(cli, srv, sp, 80, cs, ss, rules.TCPAck, nil)
		w.tcp(cli, srv, sp, 80, cs, ss, rules.TCPAck|rules.TCPPsh, []byte(req))
		cs += uint32(len(req))
		for off := 0; off < len(resp); off += 1000 {
			seg := resp[off:min(off+1000, len(resp))]
			w.tcp(srv, cli, 80, sp, ss, cs, rules.TCPAck, []byte(seg))
			ss += uint32(len(seg))
			w.tcp(cli, srv, sp, 80, cs, ss, rules.TCPAck, nil)
		}
		w.tcp(cli, srv, sp, 80, cs, ss, rules.TCPAck|rules.TCPFin, nil)
		w.tcp(srv, cli, 80, sp, ss, cs+1, rules.TCPAck|rules.TCPFin, nil)
		w.tcp(cli, srv, sp, 80, cs+1, ss+1, rules.TCPAck, nil)
	}
	body := strings.Repeat("x", 990) + "secret-token-across" + strings.Repeat("y", 3000) + "needle-in-body" +
		strings.Repeat("z", 2000) + "at-the-very-end"
	hdr := "HTTP/1.1 200 OK\r\nServer: nginx-server\r\nContent-Length: %d\r\n\r\n"
	post := "POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nuser=admin"
	conn(1001, post, fmt.Sprintf(hdr, len(body))+body)
	chunked := fmt.Sprintf("HTTP/1.1 200 OK\r\nServer: nginx-server\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	conn(1002, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", chunked)

	pr, err := NewPcapReader(bytes.NewReader(w.buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint16][]uint32{}
	note := func(as []Alert) {
		for _, a := range as {
			port := a.SrcPort // the client's
			if port == 80 {
				port = a.DstPort
			}
			got[port] = append(got[port], a.Rule.SID)
		}
	}
	for {
		ts, frame, err := pr.Next()
		if err != nil {
			break
		}
		note(d.Frame(pr.LinkType(), ts, frame))
	}
	note(d.Flush())
	for port, want := range map[uint16][]uint32{1001: {1, 2, 4, 5, 6}, 1002: {1, 2, 5, 6}} {
		g := slices.Clone(got[port])
		slices.Sort(g)
		if !slices.Equal(g, want) {
			t.Errorf("connection %d: sids %v, want %v", port, g, want)
		}
	}
}
