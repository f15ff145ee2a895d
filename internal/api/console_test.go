package api

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/console"
)

type discardInput struct{}

func (discardInput) ConsoleWrite(string, []byte) error { return nil }

// A client that speaks broken WebSocket after the upgrade is dropped and
// its session ends; the broker and the console are unharmed.
func TestConsoleMalformedFrames(t *testing.T) {
	b, err := console.New(console.Config{RecordDir: t.TempDir()}, discardInput{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ServeConsoleWS(w, r, b, console.OpenRequest{VM: "v", User: "u", Source: "test", Client: "cli", Policy: console.DefaultPolicy()})
	}))
	defer srv.Close()
	for name, frame := range map[string][]byte{
		"reserved opcode":       {0x8f, 0x80, 1, 2, 3, 4},
		"unmasked client frame": {0x82, 0x01, 'x'},
		"reserved bits":         {0xf2, 0x80, 1, 2, 3, 4},
		"64-bit length 2^63":    {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4},
		"fragmented control":    {0x09, 0x80, 1, 2, 3, 4},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade: %v %v", err, resp)
			}
			deadline := time.Now().Add(5 * time.Second)
			for len(b.Status("v").Holders) != 1 {
				if time.Now().After(deadline) {
					t.Fatal("session not admitted")
				}
				time.Sleep(10 * time.Millisecond)
			}
			c.Write(frame)
			// The server closes the connection: reads reach EOF.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 4096)
			for {
				if _, err := br.Read(buf); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatal("server kept the connection open")
					}
					break
				}
			}
			for len(b.Status("v").Holders) != 0 {
				if time.Now().After(deadline.Add(5 * time.Second)) {
					t.Fatal("session still held after a protocol error")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
