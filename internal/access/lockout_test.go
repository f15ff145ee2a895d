package access

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestLockout(t *testing.T) {
	type step struct {
		advance time.Duration
		op      string // "fail", "ok" (success), "check"
		user    string
		source  string
		locked  bool // for "check": want a *LockedError
	}
	fails := func(n int, user, source string) []step {
		var s []step
		for range n {
			s = append(s, step{op: "fail", user: user, source: source})
		}
		return s
	}
	join := func(parts ...[]step) []step {
		var s []step
		for _, p := range parts {
			s = append(s, p...)
		}
		return s
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"four failures do not lock", join(fails(4, "alice", "10.0.0.1"),
			[]step{{op: "check", user: "alice", source: "10.0.0.1"}})},
		{"five failures lock the user", join(fails(5, "alice", "10.0.0.1"),
			[]step{{op: "check", user: "alice", source: "10.0.0.9", locked: true}})},
		// Login calls Check before the password, so a lock holds even for
		// the right one: nothing but time lifts it.
		{"lock holds until it expires", join(fails(5, "alice", "10.0.0.1"), []step{
			{advance: LoginLockout - time.Second, op: "check", user: "alice", source: "10.0.0.2", locked: true},
			{advance: time.Second, op: "check", user: "alice", source: "10.0.0.2"},
		})},
		{"failures outside the window do not count", join(fails(4, "alice", "10.0.0.1"), []step{
			{advance: LoginFailureWindow, op: "fail", user: "alice", source: "10.0.0.1"},
			{op: "check", user: "alice", source: "10.0.0.1"},
		})},
		{"per-source lock across user names", join(
			fails(1, "a", "10.0.0.1"), fails(1, "b", "10.0.0.1"), fails(1, "c", "10.0.0.1"),
			fails(1, "d", "10.0.0.1"), fails(1, "e", "10.0.0.1"), []step{
				{op: "check", user: "f", source: "10.0.0.1", locked: true},
				{op: "check", user: "f", source: "10.0.0.2"},
			})},
		{"success resets the user's count", join(fails(4, "alice", "10.0.0.1"), []step{
			{op: "ok", user: "alice"},
			{op: "fail", user: "alice", source: "10.0.0.2"},
			{op: "check", user: "alice", source: "10.0.0.2"},
		}, fails(3, "alice", "10.0.0.3"), []step{
			{op: "check", user: "alice", source: "10.0.0.3"},
		})},
		{"success does not reset the source's count", join(fails(4, "mallory", "10.0.0.1"), []step{
			{op: "ok", user: "mallory"},
			{op: "fail", user: "victim", source: "10.0.0.1"},
			{op: "check", user: "other", source: "10.0.0.1", locked: true},
		})},
		{"failing while locked does not extend the lock", join(fails(5, "alice", "10.0.0.1"), []step{
			{advance: 10 * time.Minute, op: "fail", user: "alice", source: "10.0.0.1"},
			{advance: 5 * time.Minute, op: "check", user: "alice", source: "10.0.0.1"},
		})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			l := NewLockout(clk.now, 0)
			for i, s := range c.steps {
				clk.advance(s.advance)
				switch s.op {
				case "fail":
					l.Fail(s.user, s.source)
				case "ok":
					l.Succeed(s.user)
				case "check":
					err := l.Check(s.user, s.source)
					var le *LockedError
					if got := errors.As(err, &le); got != s.locked {
						t.Fatalf("step %d: check %s from %s: %v, want locked=%v", i, s.user, s.source, err, s.locked)
					}
				}
			}
		})
	}
}

func TestLockedErrorSaysWhen(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	l := NewLockout(clk.now, 0)
	for range MaxLoginFailures {
		l.Fail("alice", "unix")
	}
	clk.advance(90*time.Second + time.Millisecond)
	var le *LockedError
	if !errors.As(l.Check("alice", "unix"), &le) {
		t.Fatal("not locked")
	}
	if want := time.Date(2026, 1, 1, 12, 15, 0, 0, time.UTC); !le.Until.Equal(want) {
		t.Errorf("until %v, want %v", le.Until, want)
	}
	if le.Wait != 13*time.Minute+30*time.Second {
		t.Errorf("wait %v, want 13m30s (rounded up)", le.Wait)
	}
	if want := "too many failed logins: locked until 2026-01-01T12:15:00Z (13m30s from now)"; le.Error() != want {
		t.Errorf("error %q, want %q", le.Error(), want)
	}
}

func TestLockoutBounded(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	const max = 100
	l := NewLockout(clk.now, max)
	for range MaxLoginFailures {
		l.Fail("u0", "s0") // locked, then the least recently seen
	}
	for i := 1; i < 3*max; i++ {
		clk.advance(time.Millisecond)
		l.Fail(fmt.Sprint("u", i), fmt.Sprint("s", i))
		if u, s := l.tracked(); u > max || s > max {
			t.Fatalf("after %d keys: %d users, %d sources tracked, cap %d", i+1, u, s, max)
		}
	}
	// The oldest went first; the newest are still counted.
	if err := l.Check("u0", "s0"); err != nil {
		t.Errorf("evicted key still locked: %v", err)
	}
	for range MaxLoginFailures - 1 {
		l.Fail("u299", "x")
	}
	if l.Check("u299", "y") == nil {
		t.Error("recent key forgot its failure")
	}
}
