package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestListenUnixMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "b.sock")
	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// A live daemon on the path is not displaced.
	if _, err := ListenUnix(path); err == nil {
		t.Fatal("second listener displaced a live one")
	}
	ln.Close()
	// A stale socket file (no listener) is replaced.
	os.Remove(path)
	stale, _ := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	stale.SetUnlinkOnClose(false)
	stale.Close()
	ln2, err := ListenUnix(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln2.Close()
}

// TestSlowClients: connections that dribble or stall do not keep the daemon
// from answering others.
func TestSlowClients(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.sock")
	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	srv := newTestServer(h)
	go srv.Serve(ln)
	defer srv.Close()
	var stalled []net.Conn
	for i := 0; i < 64; i++ {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")) // never finished
		stalled = append(stalled, c)
	}
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}}
	resp, err := hc.Get("http://bulwark/api/v1/health")
	if err != nil {
		t.Fatalf("request while 64 clients stall: %v", err)
	}
	resp.Body.Close()
	// The stalled connections are cut after the header timeout.
	stalled[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	n, err := stalled[0].Read(buf)
	if err == nil && n > 0 {
		// net/http answers 408 or just closes; either ends the connection.
		if _, err = stalled[0].Read(buf); err == nil {
			t.Fatal("stalled connection still open after the header timeout")
		}
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("stalled connection not closed by the server")
	}
}

func newTestServer(h http.Handler) *http.Server {
	s := apiHTTPServer(h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.ReadHeaderTimeout = time.Second
	return s
}
