package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type sink struct {
	mu  sync.Mutex
	got []byte
}

func (s *sink) ConsoleWrite(vm string, p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, p...)
	return nil
}

type events struct {
	mu  sync.Mutex
	evs []Event
}

func (e *events) add(ev Event) { e.mu.Lock(); e.evs = append(e.evs, ev); e.mu.Unlock() }
func (e *events) kinds() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var k []string
	for _, ev := range e.evs {
		k = append(k, ev.Kind+":"+ev.User)
	}
	return strings.Join(k, ",")
}

func newTestBroker(t *testing.T, clock ...func() time.Time) (*Broker, *sink, *events) {
	t.Helper()
	in, evs := &sink{}, &events{}
	cfg := Config{RecordDir: t.TempDir(), OutQueue: 4096}
	if len(clock) > 0 {
		cfg.Clock = clock[0]
	}
	b, err := New(cfg, in, evs.add)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, in, evs
}

func open(t *testing.T, b *Broker, user string, mod func(*OpenRequest)) (*Session, error) {
	t.Helper()
	req := OpenRequest{VM: "web", User: user, Source: "test", Client: "cli", Policy: DefaultPolicy()}
	if mod != nil {
		mod(&req)
	}
	return b.Open(req)
}

// drain reads messages until the final "closed" one and returns the
// control messages' types and the close reason.
func drain(t *testing.T, s *Session) (types []string, reason string, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		m, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("next: %v (so far %v)", err, types)
		}
		if !m.Text {
			out += string(m.Data)
			continue
		}
		var c struct{ Type, Reason string }
		json.Unmarshal(m.Data, &c)
		types = append(types, c.Type)
		if c.Type == "closed" {
			reason = c.Reason
		}
	}
}

func TestExclusiveAndTakeover(t *testing.T) {
	b, _, evs := newTestBroker(t)
	alice, err := open(t, b, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = open(t, b, "bob", nil)
	var held *HeldError
	if !errors.As(err, &held) || held.Holder != "alice" || !strings.Contains(err.Error(), "held by alice (cli) since") {
		t.Fatalf("second user: %v", err)
	}
	if _, err := open(t, b, "bob", func(r *OpenRequest) { r.Force = true }); !errors.Is(err, ErrTakeoverDenied) {
		t.Fatalf("takeover without privilege: %v", err)
	}
	carol, err := open(t, b, "carol", func(r *OpenRequest) { r.Force, r.CanTakeover = true, true })
	if err != nil {
		t.Fatalf("takeover: %v", err)
	}
	_, reason, _ := drain(t, alice)
	if !strings.Contains(reason, "taken over by carol") {
		t.Fatalf("alice told %q", reason)
	}
	if msg, code := alice.CloseReason(); code != CodeTakenOver || msg != reason {
		t.Fatalf("alice close %q %d", msg, code)
	}
	if st := b.Status("web"); len(st.Holders) != 1 || st.Holders[0].User != "carol" {
		t.Fatalf("status %+v", st)
	}
	carol.Close("bye")
	if got := evs.kinds(); got != "open:alice,refused:bob,refused:bob,close:alice,takeover:carol,open:carol,close:carol" {
		t.Fatalf("events %s", got)
	}
}

func TestWaitingIsPromoted(t *testing.T) {
	b, _, _ := newTestBroker(t)
	alice, _ := open(t, b, "alice", nil)
	bob, err := open(t, b, "bob", func(r *OpenRequest) { r.Wait = true })
	if err != nil || bob.Holding() {
		t.Fatalf("bob should wait: %v", err)
	}
	if err := bob.Input([]byte("x")); err == nil {
		t.Fatal("a waiter's input was accepted")
	}
	if st := b.Status("web"); len(st.Waiting) != 1 || st.Waiting[0].User != "bob" {
		t.Fatalf("status %+v", st)
	}
	alice.Close("done")
	if !bob.Holding() {
		t.Fatal("bob not promoted")
	}
	// The line is bounded.
	for i := 0; i < MaxWaiting; i++ {
		if _, err := open(t, b, fmt.Sprintf("w%d", i), func(r *OpenRequest) { r.Wait = true }); err != nil {
			t.Fatalf("waiter %d: %v", i, err)
		}
	}
	if _, err := open(t, b, "late", func(r *OpenRequest) { r.Wait = true }); !errors.Is(err, ErrLineFull) {
		t.Fatalf("waiter beyond the bound: %v", err)
	}
}

func TestRevocationEndsSession(t *testing.T) {
	b, _, evs := newTestBroker(t)
	var revoked atomic.Bool
	s, err := open(t, b, "alice", func(r *OpenRequest) {
		r.Authorized = func() error {
			if revoked.Load() {
				return errors.New("user alice lacks VM.Console on /vms/web")
			}
			return nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	revoked.Store(true)
	b.Recheck()
	_, reason, _ := drain(t, s)
	if !strings.Contains(reason, "access revoked") {
		t.Fatalf("reason %q", reason)
	}
	if _, code := s.CloseReason(); code != CodeRevoked {
		t.Fatalf("code %d", code)
	}
	// The close event is recorded by the session's own goroutine, which
	// may finish just after the client saw the end.
	for deadline := time.Now().Add(5 * time.Second); !strings.HasSuffix(evs.kinds(), "close:alice"); {
		if time.Now().After(deadline) {
			t.Fatal(evs.kinds())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestIdleAndMaxDuration(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(10000, 0)
	b, _, _ := newTestBroker(t, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	pol := DefaultPolicy()
	pol.IdleTimeout, pol.MaxDuration = time.Minute, 3*time.Minute
	s, _ := open(t, b, "alice", func(r *OpenRequest) { r.Policy = pol })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock(); b.enforce() }
	for i := 0; i < 5; i++ { // typing keeps it alive, up to the maximum length
		advance(50 * time.Second)
		if err := s.Input([]byte("a")); err != nil {
			break
		}
	}
	if _, reason, _ := drain(t, s); !strings.Contains(reason, "maximum session length") {
		t.Fatalf("reason %q", reason)
	}
	s2, _ := open(t, b, "alice", func(r *OpenRequest) { r.Policy = pol })
	advance(61 * time.Second)
	if _, reason, _ := drain(t, s2); !strings.Contains(reason, "idle timeout") {
		t.Fatalf("reason %q", reason)
	}
}

func TestOutputFloodIsBounded(t *testing.T) {
	b, _, _ := newTestBroker(t)
	s, _ := open(t, b, "alice", nil)
	chunk := []byte(strings.Repeat("x", 1000) + "\n")
	for i := 0; i < 10000; i++ { // 10 MB, the client reads nothing
		b.Output("web", chunk)
	}
	s.q.mu.Lock()
	queued := s.q.bytes
	s.q.mu.Unlock()
	if queued > 4096 {
		t.Fatalf("queue holds %d bytes, limit 4096", queued)
	}
	s.Close("bye")
	_, _, out := drain(t, s)
	if !strings.Contains(out, "bytes of output dropped: this client reads too slowly") {
		t.Fatalf("no drop marker in %d bytes of output", len(out))
	}
}

func TestInputPolicyAndRecording(t *testing.T) {
	b, in, evs := newTestBroker(t)
	pol := DefaultPolicy()
	pol.RecordInput = true
	s, _ := open(t, b, "alice", func(r *OpenRequest) { r.Policy = pol })
	if err := s.Input([]byte("l")); err != nil {
		t.Fatal(err)
	}
	var r *Refusal
	if err := s.Input([]byte("\x1b[200~secret\x1b[201~")); !errors.As(err, &r) {
		t.Fatalf("paste: %v", err)
	}
	b.Output("web", []byte("guest says \x1b]52;c;ZXZpbA==\x07hi\r\n"))
	s.Close("bye")
	types, _, out := drain(t, s)
	if out != "guest says hi\r\n" {
		t.Fatalf("client saw %q", out)
	}
	if !strings.Contains(strings.Join(types, ","), "notice") {
		t.Fatalf("no notice for the refused paste: %v", types)
	}
	if string(in.got) != "l" {
		t.Fatalf("guest got %q", in.got)
	}
	f, err := os.Open(filepath.Join(b.cfg.RecordDir, s.ID+".cast"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, cast, err := ParseCast(f, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if h.Bulwark == nil || h.Bulwark.User != "alice" || h.Bulwark.Session != s.ID {
		t.Fatalf("header %+v", h)
	}
	var o, i string
	for _, e := range cast {
		switch e.Code {
		case "o":
			o += e.Data
		case "i":
			i += e.Data
		}
	}
	if o != "guest says hi\r\n" || i != "l" {
		t.Fatalf("recorded output %q input %q", o, i)
	}
	recs, err := b.Recordings()
	if err != nil || len(recs) != 1 || recs[0].Info.VM != "web" || recs[0].Active {
		t.Fatalf("recordings %+v %v", recs, err)
	}
	if !strings.Contains(evs.kinds(), "open:alice") {
		t.Fatal(evs.kinds())
	}
}

func TestVMStopEndsSessions(t *testing.T) {
	b, _, _ := newTestBroker(t)
	s, _ := open(t, b, "alice", nil)
	w, _ := open(t, b, "bob", func(r *OpenRequest) { r.Wait = true })
	b.VMStopped("web")
	for _, x := range []*Session{s, w} {
		if _, code := x.CloseReason(); code != CodeVMStopped {
			t.Fatalf("%s code %d", x.User, code)
		}
	}
}

func FuzzParseCast(f *testing.F) {
	f.Add([]byte("{\"version\":2,\"width\":80,\"height\":24}\n[0.5, \"o\", \"hi\"]\n"))
	f.Add([]byte("{\"version\":2}\n[1,2,3]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, evs, _ := ParseCast(strings.NewReader(string(b)), 100)
		if len(evs) > 100 {
			t.Fatal("event bound exceeded")
		}
	})
}

func TestRetentionSweep(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "cs-20200101T000000Z-aaaaaaaaaaaa.cast")
	fresh := filepath.Join(dir, "cs-20990101T000000Z-bbbbbbbbbbbb.cast")
	other := filepath.Join(dir, "notes.txt")
	for _, p := range []string{old, fresh, other} {
		os.WriteFile(p, []byte("{\"version\":2,\"width\":80,\"height\":24}\n"), 0o600)
	}
	past := time.Now().Add(-48 * time.Hour)
	os.Chtimes(old, past, past)
	os.Chtimes(other, past, past)
	b, err := New(Config{RecordDir: dir, Retention: 24 * time.Hour}, &sink{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Close() // the sweep runs when the broker starts
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatal("an expired recording was kept")
	}
	for _, p := range []string{fresh, other} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s removed: %v", p, err)
		}
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"cs-20261126T075938Z-687585f3e925": true,
		"":                                 false,
		"cs-":                              true,
		"cs-../../etc/passwd":              false,
		"cs-a/b":                           false,
		"xx-20261126":                      false,
		"cs-" + strings.Repeat("a", 80):    false,
		"cs-a.cast":                        false,
	} {
		if ValidID(id) != want {
			t.Errorf("ValidID(%q) = %v", id, !want)
		}
	}
	b, _, _ := newTestBroker(t)
	if b.RecordingPath("cs-../x") != "" {
		t.Fatal("a path was made from an invalid id")
	}
}
