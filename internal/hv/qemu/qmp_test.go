package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const greeting = `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 9}, "package": ""}, "capabilities": ["oob"]}}` + "\n"

// fakeQEMU is the server side of one QMP connection.
type fakeQEMU struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	// dialed, where a test sets it, is closed once DialQMP has returned.
	dialed <-chan struct{}
}

// request reads one command and returns its name and arguments.
func (f *fakeQEMU) request() (string, json.RawMessage, error) {
	line, err := f.br.ReadBytes('\n')
	if err != nil {
		return "", nil, err
	}
	var req struct {
		Execute   string          `json:"execute"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal(line, &req); err != nil {
		f.t.Errorf("client sent bad JSON %q: %v", line, err)
		return "", nil, err
	}
	return req.Execute, req.Arguments, nil
}

func (f *fakeQEMU) send(s string) {
	if _, err := io.WriteString(f.conn, s+"\n"); err != nil {
		f.t.Logf("fake qemu write: %v", err)
	}
}

// handshake greets and answers qmp_capabilities.
func (f *fakeQEMU) handshake() bool {
	f.send(strings.TrimSuffix(greeting, "\n"))
	cmd, _, err := f.request()
	if err != nil || cmd != "qmp_capabilities" {
		f.t.Errorf("first command %q (%v), want qmp_capabilities", cmd, err)
		return false
	}
	f.send(`{"return": {}}`)
	return true
}

// serveQMP listens on a Unix socket in a temporary directory and runs
// script on the first connection. It returns the socket path and a channel
// closed when script has returned.
func serveQMP(t *testing.T, script func(f *fakeQEMU)) (string, <-chan struct{}) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer conn.Close()
		script(&fakeQEMU{t: t, conn: conn, br: bufio.NewReader(conn)})
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("fake QEMU did not finish")
		}
	})
	return path, done
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, path string) *QMP {
	t.Helper()
	q, err := DialQMP(ctxTimeout(t, 5*time.Second), path)
	if err != nil {
		t.Fatalf("DialQMP: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func TestQMPCommands(t *testing.T) {
	path, _ := serveQMP(t, func(f *fakeQEMU) {
		if !f.handshake() {
			return
		}
		cmd, args, err := f.request()
		if err != nil || cmd != "query-status" || args != nil {
			t.Errorf("got %q %s (%v), want query-status without arguments", cmd, args, err)
		}
		f.send(`{"return": {"status": "running", "singlestep": false, "running": true}}`)

		cmd, args, _ = f.request()
		if cmd != "device_del" || string(args) != `{"id":"net0"}` {
			t.Errorf("got %q %s, want device_del {\"id\":\"net0\"}", cmd, args)
		}
		f.send(`{"error": {"class": "DeviceNotFound", "desc": "Device 'net0' not found"}}`)

		cmd, _, _ = f.request()
		if cmd != "stop" {
			t.Errorf("got %q, want stop", cmd)
		}
		f.send(`{"return": {}}`)
		f.request() // wait for the client to hang up
	})
	q := dial(t, path)
	ctx := ctxTimeout(t, 5*time.Second)

	var st struct {
		Status  string `json:"status"`
		Running bool   `json:"running"`
	}
	if err := q.Execute(ctx, "query-status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Status != "running" || !st.Running {
		t.Errorf("query-status = %+v", st)
	}

	err := q.Execute(ctx, "device_del", map[string]string{"id": "net0"}, nil)
	if err == nil || !strings.Contains(err.Error(), "DeviceNotFound") || !strings.Contains(err.Error(), "Device 'net0' not found") ||
		!strings.Contains(err.Error(), "device_del") {
		t.Errorf("error reply mapped to %v, want command, class and desc", err)
	}

	// A nil out ignores the return value.
	if err := q.Execute(ctx, "stop", nil, nil); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func TestQMPEvents(t *testing.T) {
	path, _ := serveQMP(t, func(f *fakeQEMU) {
		if !f.handshake() {
			return
		}
		f.send(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}`)
		f.send(`{"timestamp": {"seconds": 1, "microseconds": 3}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}`)
		// A flood of events a slow consumer cannot keep up with must not
		// hold up the reply to a command.
		cmd, _, _ := f.request()
		for i := 0; i < 500; i++ {
			f.send(`{"event": "RTC_CHANGE", "data": {"offset": 0}}`)
		}
		if cmd == "query-status" {
			f.send(`{"return": {"status": "running"}}`)
		}
		f.request()
	})
	q := dial(t, path)
	want := []string{"STOP", "SHUTDOWN"}
	for _, name := range want {
		select {
		case ev := <-q.Events():
			if ev.Name != name {
				t.Fatalf("event %q, want %q", ev.Name, name)
			}
			if name == "SHUTDOWN" {
				var d struct {
					Guest  bool   `json:"guest"`
					Reason string `json:"reason"`
				}
				if err := json.Unmarshal(ev.Data, &d); err != nil || !d.Guest || d.Reason != "guest-shutdown" {
					t.Errorf("SHUTDOWN data %s: %+v %v", ev.Data, d, err)
				}
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s event", name)
		}
	}
	var st struct{ Status string }
	if err := q.Execute(ctxTimeout(t, 5*time.Second), "query-status", nil, &st); err != nil || st.Status != "running" {
		t.Errorf("query-status behind an event flood = %+v, %v", st, err)
	}
}

// A line longer than maxQMPLine ends the connection with an error instead of
// growing the reader's buffer.
func TestQMPLineTooLong(t *testing.T) {
	serverErr := make(chan error, 1)
	path, _ := serveQMP(t, func(f *fakeQEMU) {
		if !f.handshake() {
			return
		}
		f.request()
		chunk := []byte(`{"return": "` + strings.Repeat("A", 64<<10))
		var err error
		// Keep writing: with the client no longer reading and the
		// connection closed, a write fails instead of blocking forever.
		for sent := 0; sent < 64<<20 && err == nil; sent += len(chunk) {
			f.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, err = f.conn.Write(chunk)
		}
		serverErr <- err
	})
	q := dial(t, path)
	err := q.Execute(ctxTimeout(t, 10*time.Second), "query-status", nil, nil)
	if err == nil {
		t.Fatal("Execute succeeded on an oversized reply")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Execute = %v: the reader did not give up on the long line", err)
	}
	select {
	case <-q.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after an oversized message")
	}
	q.errMu.Lock()
	rerr := q.err
	q.errMu.Unlock()
	if rerr == nil || !strings.Contains(rerr.Error(), "too long") {
		t.Errorf("reader error %v, want message too long", rerr)
	}
	select {
	case err := <-serverErr:
		if err == nil {
			t.Error("the client read 64 MiB of a single line")
		} else if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			t.Errorf("server write timed out (%v): the client left the connection open", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("server still writing")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestReadLineBound(t *testing.T) {
	tests := []struct {
		desc    string
		in      string
		wantErr bool
	}{
		{"exactly the limit", strings.Repeat("x", maxQMPLine) + "\n", false},
		{"one over", strings.Repeat("x", maxQMPLine+1) + "\n", true},
		{"far over, no newline", strings.Repeat("x", 3*maxQMPLine), true},
	}
	for _, tc := range tests {
		br := bufio.NewReaderSize(strings.NewReader(tc.in), 4096)
		line, err := readLine(br)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: readLine = %d bytes, %v", tc.desc, len(line), err)
		}
		if err == nil && len(line) != maxQMPLine {
			t.Errorf("%s: readLine = %d bytes", tc.desc, len(line))
		}
	}
}

// A server that never answers: Execute honours the context and the
// connection is dropped so a late reply cannot answer the next command.
func TestQMPTimeout(t *testing.T) {
	path, _ := serveQMP(t, func(f *fakeQEMU) {
		if !f.handshake() {
			return
		}
		f.request()
		f.request() // returns once the client closes
	})
	q := dial(t, path)
	start := time.Now()
	err := q.Execute(ctxTimeout(t, 100*time.Millisecond), "query-status", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Execute = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Execute took %v with a 100ms deadline", d)
	}
	select {
	case <-q.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection not dropped after a timed-out command")
	}
	if err := q.Execute(ctxTimeout(t, time.Second), "query-status", nil, nil); err == nil {
		t.Error("Execute on a dropped connection succeeded")
	}
}

// A deadline used for one command does not linger on the connection and
// fail a later command that has none.
func TestQMPDeadlineDoesNotLinger(t *testing.T) {
	path, _ := serveQMP(t, func(f *fakeQEMU) {
		if !f.handshake() {
			return
		}
		for {
			if _, _, err := f.request(); err != nil {
				return
			}
			f.send(`{"return": {}}`)
		}
	})
	q := dial(t, path)
	if err := q.Execute(ctxTimeout(t, 50*time.Millisecond), "stop", nil, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := q.Execute(context.Background(), "cont", nil, nil); err != nil {
		t.Errorf("command without deadline after one with an expired deadline: %v", err)
	}
}

// QEMU answers quit and closes the socket at once, so the reader may have
// queued the reply and closed Done before Execute looks at either: the reply
// must win over the close. Built by hand to reach that interleaving every time.
func TestQMPReplyThenClose(t *testing.T) {
	for i := 0; i < 100; i++ {
		client, server := net.Pipe()
		go io.Copy(io.Discard, server)
		q := &QMP{conn: client, replies: make(chan qmpMsg, 1), events: make(chan Event, 1), done: make(chan struct{})}
		q.replies <- qmpMsg{Return: json.RawMessage(`{}`)}
		close(q.done)
		err := q.Execute(context.Background(), "quit", nil, nil)
		client.Close()
		server.Close()
		if err != nil {
			t.Fatalf("try %d: quit = %v, want the queued reply", i, err)
		}
	}
}

func TestQMPDialFailures(t *testing.T) {
	t.Run("no greeting", func(t *testing.T) {
		path, _ := serveQMP(t, func(f *fakeQEMU) { f.br.ReadByte() })
		start := time.Now()
		q, err := DialQMP(ctxTimeout(t, 200*time.Millisecond), path)
		if err == nil {
			q.Close()
			t.Fatal("DialQMP succeeded without a greeting")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("DialQMP took %v with a 200ms deadline", d)
		}
	})
	t.Run("not a greeting", func(t *testing.T) {
		path, _ := serveQMP(t, func(f *fakeQEMU) {
			f.send(`{"return": {}}`)
			f.br.ReadByte()
		})
		if q, err := DialQMP(ctxTimeout(t, 5*time.Second), path); err == nil || !strings.Contains(err.Error(), "no greeting") {
			if q != nil {
				q.Close()
			}
			t.Fatalf("DialQMP = %v, want no greeting", err)
		}
	})
	t.Run("garbage greeting", func(t *testing.T) {
		path, _ := serveQMP(t, func(f *fakeQEMU) {
			f.send(`SSH-2.0-OpenSSH_9.6`)
			f.br.ReadByte()
		})
		if q, err := DialQMP(ctxTimeout(t, 5*time.Second), path); err == nil {
			q.Close()
			t.Fatal("DialQMP accepted a garbage greeting")
		}
	})
	t.Run("capabilities refused", func(t *testing.T) {
		path, _ := serveQMP(t, func(f *fakeQEMU) {
			f.send(strings.TrimSuffix(greeting, "\n"))
			f.request()
			f.send(`{"error": {"class": "CommandNotFound", "desc": "nope"}}`)
			f.br.ReadByte()
		})
		q, err := DialQMP(ctxTimeout(t, 5*time.Second), path)
		if err == nil || !strings.Contains(err.Error(), "capabilities") || !strings.Contains(err.Error(), "CommandNotFound") {
			if q != nil {
				q.Close()
			}
			t.Fatalf("DialQMP = %v, want a capabilities error", err)
		}
	})
	t.Run("no socket", func(t *testing.T) {
		if q, err := DialQMP(ctxTimeout(t, time.Second), filepath.Join(t.TempDir(), "none.sock")); err == nil {
			q.Close()
			t.Fatal("DialQMP on a missing socket succeeded")
		}
	})
}

func TestQMPConnectionEnds(t *testing.T) {
	tests := []struct {
		desc   string
		script func(f *fakeQEMU)
	}{
		{"server closes", func(f *fakeQEMU) {}},
		{"bad JSON", func(f *fakeQEMU) { f.send(`{"return": `) }},
		{"not JSON", func(f *fakeQEMU) { f.send(`hello`) }},
		{"unsolicited replies", func(f *fakeQEMU) {
			<-f.dialed // the client has taken the capabilities reply
			f.send(`{"return": {}}`)
			f.send(`{"return": {}}`)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			dialed := make(chan struct{})
			path, _ := serveQMP(t, func(f *fakeQEMU) {
				f.dialed = dialed
				if f.handshake() {
					tc.script(f)
				}
			})
			q := dial(t, path)
			close(dialed)
			select {
			case <-q.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("Done not closed")
			}
			// In particular, whatever arrived unasked is not taken as the
			// answer to a later command.
			if err := q.Execute(ctxTimeout(t, 5*time.Second), "query-status", nil, nil); err == nil {
				t.Error("Execute on an ended connection succeeded")
			}
		})
	}
}

// FuzzQMPReadMsg runs the line reader and decoder over arbitrary bytes with
// a tiny buffer, so every line is assembled from several ReadLine fragments.
// It must not panic, never return more than maxQMPLine bytes, and agree with
// a plain split on newlines.
func FuzzQMPReadMsg(f *testing.F) {
	f.Add([]byte(greeting))
	f.Add([]byte(`{"return": {}}` + "\n" + `{"event": "STOP"}` + "\r\n" + `{"error": {"class": "GenericError", "desc": "x"}}`))
	f.Add([]byte("\n\n\r\n{\"return\": 1}\r"))
	f.Add([]byte(`{"return": "` + strings.Repeat("A", 100) + `"}` + "\n"))
	f.Add([]byte(`{"QMP": null}` + "\n" + `[1,2]` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Reference: lines end at '\n' and a '\r' just before it is
		// dropped. Bytes after the last newline are a message cut off by
		// the connection's end: returned as a last line or dropped.
		var want [][]byte
		rest := data
		for {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			want = append(want, bytes.TrimSuffix(rest[:i], []byte("\r")))
			rest = rest[i+1:]
		}

		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		for i := 0; ; i++ {
			line, err := readLine(br)
			if err != nil {
				if err != io.EOF {
					t.Fatalf("readLine: %v", err)
				}
				if i < len(want) {
					t.Fatalf("got %d lines, want %d", i, len(want))
				}
				break
			}
			if len(line) > maxQMPLine {
				t.Fatalf("line of %d bytes", len(line))
			}
			switch {
			case i < len(want):
				if !bytes.Equal(line, want[i]) {
					t.Fatalf("line %d = %q, want %q", i, line, want[i])
				}
			case i == len(want) && len(rest) > 0:
				if !bytes.Equal(line, rest) {
					t.Fatalf("last line %q, want %q", line, rest)
				}
			default:
				t.Fatalf("extra line %d: %q", i, line)
			}
		}

		br = bufio.NewReaderSize(bytes.NewReader(data), 16)
		for n := 0; n <= len(want); n++ {
			m, err := readMsg(br)
			if err == io.EOF {
				break
			}
			if err != nil && !strings.HasPrefix(err.Error(), "qmp: bad message") {
				t.Fatalf("readMsg: %v", err)
			}
			if err == nil && m.Error != nil && m.Return != nil && m.Event != "" {
				// All three at once is legal JSON; the reader must still
				// classify it without panicking (an event wins).
				_ = m
			}
		}
	})
}
