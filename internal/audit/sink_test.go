package audit

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rfc5424 matches the messages Bulwark sends: PRI authpriv.notice, version
// 1, a UTC timestamp to the microsecond, and the checkpoint's JSON as MSG.
var rfc5424 = regexp.MustCompile(`^<85>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z h1 bulwark \d+ checkpoint - (\{.*\})$`)

// checkRemoteCheckpoint checks that msg carries checkpoint seq of l as a
// verifiable anchor with the log's key.
func checkRemoteCheckpoint(t *testing.T, l *Log, msg []byte, seq uint64) {
	t.Helper()
	set := readSet(t, msg)
	if len(set.Anchors) != 1 || set.Anchors[0].Type != AnchorCheckpoint || set.Anchors[0].Seq != seq ||
		!set.Anchors[0].Checkpoint().ValidSig(l.PublicKey()) {
		t.Fatalf("message %q: anchors %+v", msg, set)
	}
	var extra struct{ Key, Host string }
	json.Unmarshal(msg[strings.IndexByte(string(msg), '{'):], &extra)
	if extra.Key != hex.EncodeToString(l.PublicKey()) || extra.Host != "h1" {
		t.Errorf("key %q host %q", extra.Key, extra.Host)
	}
}

func openWithSink(t *testing.T, every int, s Sink, log *slog.Logger) *Log {
	t.Helper()
	if log == nil {
		log = slog.Default()
	}
	l, err := Open(context.Background(), t.TempDir(), testKey(4), every, WithSink(s), WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestSyslogSinkDatagram(t *testing.T) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	sock := filepath.Join(t.TempDir(), "log")
	unixgram, err := net.ListenPacket("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer unixgram.Close()
	for name, tt := range map[string]struct {
		addr string
		conn net.PacketConn
	}{"udp": {"udp://" + udp.LocalAddr().String(), udp}, "unixgram": {sock, unixgram}} {
		t.Run(name, func(t *testing.T) {
			s, err := NewSyslogSink(SyslogConfig{Addr: tt.addr, PublicKey: testKey(4).Public().(ed25519.PublicKey), Hostname: "h1"})
			if err != nil {
				t.Fatal(err)
			}
			l := openWithSink(t, 3, s, nil)
			fill(t, l, 3) // three heads, which syslog does not get, and a checkpoint
			buf := make([]byte, 4096)
			tt.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := tt.conn.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			m := rfc5424.FindSubmatch(buf[:n])
			if m == nil {
				t.Fatalf("not an RFC 5424 checkpoint message: %q", buf[:n])
			}
			checkRemoteCheckpoint(t, l, buf[:n], 3)
			// The heads were not sent: nothing else arrives.
			tt.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if n, _, err := tt.conn.ReadFrom(buf); err == nil {
				t.Errorf("unexpected message %q", buf[:n])
			}
		})
	}
}

// Over TCP each message is framed by its length (RFC 6587 octet counting).
func TestSyslogSinkTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		n, _ := br.ReadString(' ')
		size, _ := strconv.Atoi(strings.TrimSpace(n))
		msg := make([]byte, size)
		io.ReadFull(br, msg)
		got <- msg
	}()
	s, err := NewSyslogSink(SyslogConfig{Addr: "tcp://" + ln.Addr().String(), PublicKey: testKey(4).Public().(ed25519.PublicKey), Hostname: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	l := openWithSink(t, 2, s, nil)
	fill(t, l, 2)
	select {
	case msg := <-got:
		if !rfc5424.Match(msg) {
			t.Fatalf("not an RFC 5424 message: %q", msg)
		}
		checkRemoteCheckpoint(t, l, msg, 2)
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
}

// A syslog receiver that is not there costs a logged drop, not an error.
func TestSyslogSinkUnreachable(t *testing.T) {
	var logs syncBuffer
	s, err := NewSyslogSink(SyslogConfig{Addr: filepath.Join(t.TempDir(), "nobody"), Hostname: "h1",
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	l := openWithSink(t, 1, s, nil)
	fill(t, l, 1)
	waitFor(t, "a drop", func() bool { return s.Dropped() == 1 })
	if out := logs.String(); !strings.Contains(out, "AUDIT ANCHOR DROPPED") || !strings.Contains(out, "no such file") {
		t.Errorf("log: %s", out)
	}
}

// anchorReceiver is an HTTPS receiver whose handler answers with the
// status codes given in turn (200 after they run out), and a PEM file of
// its certificate for the sink's CAFile.
type anchorReceiver struct {
	srv    *httptest.Server
	caFile string
	mu     sync.Mutex
	codes  []int
	bodies [][]byte
	hold   chan struct{} // when set, each request waits for it
}

func newAnchorReceiver(t *testing.T, codes ...int) *anchorReceiver {
	rc := &anchorReceiver{codes: codes}
	rc.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rc.hold != nil {
			<-rc.hold
		}
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		code := http.StatusOK
		if len(rc.codes) > 0 {
			code, rc.codes = rc.codes[0], rc.codes[1:]
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			code = http.StatusBadRequest
		}
		if code == http.StatusOK {
			rc.bodies = append(rc.bodies, body)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.srv.Close)
	rc.caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rc.srv.Certificate().Raw})
	if err := os.WriteFile(rc.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return rc
}

func (rc *anchorReceiver) received() [][]byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([][]byte(nil), rc.bodies...)
}

func TestHTTPSSink(t *testing.T) {
	rc := newAnchorReceiver(t, http.StatusServiceUnavailable, http.StatusInternalServerError) // then 200
	var logs syncBuffer
	s, err := NewHTTPSSink(HTTPSConfig{URL: rc.srv.URL + "/anchors", CAFile: rc.caFile, Hostname: "h1",
		PublicKey: testKey(4).Public().(ed25519.PublicKey), Backoff: time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	l := openWithSink(t, 2, s, nil)
	fill(t, l, 4) // checkpoints at 2 and 4
	waitFor(t, "two checkpoints", func() bool { return len(rc.received()) == 2 })
	for i, body := range rc.received() {
		checkRemoteCheckpoint(t, l, body, uint64(2*(i+1)))
	}
	if s.Dropped() != 0 || logs.String() != "" {
		t.Errorf("%d dropped after retries that should have succeeded; log: %s", s.Dropped(), logs.String())
	}
}

func TestHTTPSSinkDrops(t *testing.T) {
	tests := []struct {
		name   string
		codes  []int
		noCA   bool
		reason string
	}{
		{"server error on every attempt", []int{500, 500, 500}, false, "after 3 attempt(s): HTTP 500"},
		{"refused, not retried", []int{403}, false, "after 1 attempt(s): HTTP 403"},
		{"certificate not trusted", nil, true, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newAnchorReceiver(t, tt.codes...)
			var logs syncBuffer
			cfg := HTTPSConfig{URL: rc.srv.URL, CAFile: rc.caFile, Attempts: 3, Backoff: time.Millisecond,
				Log: slog.New(slog.NewTextHandler(&logs, nil))}
			if tt.noCA {
				cfg.CAFile = ""
			}
			s, err := NewHTTPSSink(cfg)
			if err != nil {
				t.Fatal(err)
			}
			l := openWithSink(t, 1, s, nil)
			fill(t, l, 1)
			waitFor(t, "a drop", func() bool { return s.Dropped() == 1 })
			if out := logs.String(); !strings.Contains(out, "AUDIT ANCHOR DROPPED") || !strings.Contains(out, tt.reason) || !strings.Contains(out, "seq=1") {
				t.Errorf("log lacks %q: %s", tt.reason, out)
			}
		})
	}
}

// A receiver that hangs fills the queue; what does not fit is dropped,
// with its reason, and Append never waits for it.
func TestRemoteSinkQueueFull(t *testing.T) {
	rc := newAnchorReceiver(t)
	rc.hold = make(chan struct{})
	var logs syncBuffer
	s, err := NewHTTPSSink(HTTPSConfig{URL: rc.srv.URL, CAFile: rc.caFile, Queue: 1, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.drain = 50 * time.Millisecond
	l := openWithSink(t, 1, s, nil)
	start := time.Now()
	fill(t, l, 1) // taken by the sender, which hangs
	waitFor(t, "the sender to take the first", func() bool { return len(s.q) == 0 })
	fill(t, l, 3) // one queued, two dropped
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("appends took %v with a hung receiver", d)
	}
	if s.Dropped() != 2 || !strings.Contains(logs.String(), "queue full") {
		t.Errorf("%d dropped; log: %s", s.Dropped(), logs.String())
	}
	close(rc.hold)
	waitFor(t, "two delivered", func() bool { return len(rc.received()) == 2 })
}

func TestNewSinksRefuse(t *testing.T) {
	for _, u := range []string{"http://example.com/a", "ftp://x", "https://", "://"} {
		if _, err := NewHTTPSSink(HTTPSConfig{URL: u}); err == nil {
			t.Errorf("NewHTTPSSink(%q) accepted", u)
		}
	}
	if _, err := NewHTTPSSink(HTTPSConfig{URL: "https://x", CAFile: filepath.Join(t.TempDir(), "none")}); err == nil {
		t.Error("missing CA file accepted")
	}
	for _, a := range []string{"dev/log", "udp:host:514", "http://x"} {
		if _, err := NewSyslogSink(SyslogConfig{Addr: a}); err == nil {
			t.Errorf("NewSyslogSink(%q) accepted", a)
		}
	}
}

// With the append-only attribute the file cannot be truncated, rewritten
// or removed, even by its owner, while appends go on.
func TestAnchorFileAppendOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "anchors.jsonl")
	af, err := OpenAnchorFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer af.Close()
	if ok, why := af.AppendOnly(); !ok {
		t.Skipf("append-only attribute not available here: %v", why)
	}
	t.Cleanup(func() { // before TempDir's cleanup, which could not remove it
		f, err := os.Open(path)
		if err == nil {
			err = clearAppendOnlyFlag(f)
			f.Close()
		}
		if err != nil {
			t.Errorf("chattr -a %s: %v", path, err)
		}
	})
	recs, _ := buildLog(2, 0, testKey(1))
	for _, r := range recs {
		if err := af.Anchor(context.Background(), HeadAnchor(r)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0); !errors.Is(err, syscall.EPERM) {
		t.Errorf("open for rewrite: %v, want EPERM", err)
	}
	if err := os.Remove(path); !errors.Is(err, syscall.EPERM) {
		t.Errorf("remove: %v, want EPERM", err)
	}
	if set, err := ReadAnchorFile(path); err != nil || len(set.Anchors) != 2 {
		t.Errorf("read back %+v, %v", set, err)
	}
	// Reopening a file that already has the attribute works.
	again, err := OpenAnchorFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := again.AppendOnly(); !ok {
		t.Error("reopened file: AppendOnly false")
	}
	again.Close()
}

func TestAnchorFileRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, nil, 0o600)
	link := filepath.Join(dir, "anchors.jsonl")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAnchorFile(link, false); err == nil {
		t.Error("OpenAnchorFile followed a symlink")
	}
	if _, err := ReadAnchorFile(link); err == nil {
		t.Error("ReadAnchorFile followed a symlink")
	}
}
