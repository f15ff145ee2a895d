package swtpmtest

import (
	"net"
	"testing"
	"time"
)

// WaitReady waits until swtpm accepts connections on its server socket.
// Start returns once the socket file exists, which swtpm creates (bind)
// a moment before it listens: a client that dials at once can be refused.
func (in *Instance) WaitReady(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("unix", in.Socket, time.Second)
		if err == nil {
			// swtpm serves one connection at a time: hang up at once so
			// the real client is next.
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("swtpm does not accept connections on %s within %v: %v\n%s", in.Socket, startTimeout, err, in.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
