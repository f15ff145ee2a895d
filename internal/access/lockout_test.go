package access

import (
	"errors"
	"fmt"
	"strings"
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
		locked  LockScope // for "check": the lock wanted, "" for none
	}
	fails := func(n int, user, source string) []step {
		var s []step
		for range n {
			s = append(s, step{op: "fail", user: user, source: source})
		}
		return s
	}
	// spread fails n times, cycling over users and sources so that no
	// pair reaches MaxLoginFailures.
	spread := func(n int, users, sources []string) []step {
		var s []step
		for i := range n {
			s = append(s, step{op: "fail", user: users[i%len(users)], source: sources[(i/len(users))%len(sources)]})
		}
		return s
	}
	many := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprint(prefix, i))
		}
		return out
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
		{"five failures lock the user from that address", join(fails(5, "alice", "10.0.0.1"),
			[]step{{op: "check", user: "alice", source: "10.0.0.1", locked: LockUserSource}})},
		// The defect: everyone on the local socket as one uid (or behind
		// one address) was locked out by one user's failures.
		{"one user's failures do not lock another at the same address", join(fails(5, "alice", "unix:uid=0"), []step{
			{op: "check", user: "bob", source: "unix:uid=0"},
			{op: "check", user: "alice", source: "unix:uid=0", locked: LockUserSource},
		})},
		{"nor the same user at another address", join(fails(5, "alice", "unix:uid=1000"), []step{
			{op: "check", user: "alice", source: "unix:uid=1001"},
			{op: "check", user: "alice", source: "10.0.0.2"},
		})},
		// Login calls Check before the password, so a lock holds even for
		// the right one: nothing but time lifts it.
		{"lock holds until it expires", join(fails(5, "alice", "10.0.0.1"), []step{
			{advance: LoginLockout - time.Second, op: "check", user: "alice", source: "10.0.0.1", locked: LockUserSource},
			{advance: time.Second, op: "check", user: "alice", source: "10.0.0.1"},
		})},
		{"failures outside the window do not count", join(fails(4, "alice", "10.0.0.1"), []step{
			{advance: LoginFailureWindow, op: "fail", user: "alice", source: "10.0.0.1"},
			{op: "check", user: "alice", source: "10.0.0.1"},
		})},
		{"one address cannot try many names", join(spread(MaxSourceFailures-1, many("u", MaxSourceFailures), []string{"10.0.0.1"}), []step{
			{op: "check", user: "f", source: "10.0.0.1"},
			{op: "fail", user: "f", source: "10.0.0.1"},
			{op: "check", user: "g", source: "10.0.0.1", locked: LockSource},
			{op: "check", user: "g", source: "10.0.0.2"},
		})},
		{"many addresses cannot guess one name", join(spread(MaxUserFailures-1, []string{"alice"}, many("10.1.0.", MaxUserFailures)), []step{
			{op: "check", user: "alice", source: "10.2.0.1"},
			{op: "fail", user: "alice", source: "10.2.0.1"},
			{op: "check", user: "alice", source: "10.2.0.2", locked: LockUser},
			{op: "check", user: "bob", source: "10.2.0.2"},
		})},
		{"success resets the pair's count", join(fails(4, "alice", "10.0.0.1"), []step{
			{op: "ok", user: "alice", source: "10.0.0.1"},
		}, fails(4, "alice", "10.0.0.1"), []step{
			{op: "check", user: "alice", source: "10.0.0.1"},
		})},
		{"success elsewhere does not reset the pair's count", join(fails(4, "alice", "10.0.0.1"), []step{
			{op: "ok", user: "alice", source: "10.0.0.2"},
			{op: "fail", user: "alice", source: "10.0.0.1"},
			{op: "check", user: "alice", source: "10.0.0.1", locked: LockUserSource},
		})},
		{"success does not reset the source's count", join(spread(MaxSourceFailures-1, many("u", 10), []string{"10.0.0.1"}), []step{
			{op: "ok", user: "mallory", source: "10.0.0.1"},
			{op: "fail", user: "victim", source: "10.0.0.1"},
			{op: "check", user: "other", source: "10.0.0.1", locked: LockSource},
		})},
		{"success does not reset the name's count", join(spread(MaxUserFailures-1, []string{"alice"}, many("10.1.0.", 20)), []step{
			{op: "ok", user: "alice", source: "10.9.9.9"},
			{op: "fail", user: "alice", source: "10.3.0.1"},
			{op: "check", user: "alice", source: "10.3.0.2", locked: LockUser},
		})},
		{"failing while locked does not extend the lock", join(fails(5, "alice", "10.0.0.1"), []step{
			{advance: 10 * time.Minute, op: "fail", user: "alice", source: "10.0.0.1"},
			{advance: 5 * time.Minute, op: "check", user: "alice", source: "10.0.0.1"},
		})},
		// Keys cannot collide: ("a1", "x") and ("a", "1x") are two pairs.
		{"pair keys are unambiguous", join(fails(5, "a1", "x"), []step{
			{op: "check", user: "a", source: "1x"},
		})},
		// Names past maxNameKey are hashed, not cut: two long names that
		// share a prefix are still two names.
		{"long names stay distinct", join(fails(5, strings.Repeat("n", 1<<20)+"1", "10.0.0.1"), []step{
			{op: "check", user: strings.Repeat("n", 1<<20) + "2", source: "10.0.0.1"},
			{op: "check", user: strings.Repeat("n", 1<<20) + "1", source: "10.0.0.1", locked: LockUserSource},
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
					l.Succeed(s.user, s.source)
				case "check":
					err := l.Check(s.user, s.source)
					var le *LockedError
					errors.As(err, &le)
					switch {
					case s.locked == "" && err != nil:
						t.Fatalf("step %d: check %.20s from %s: %v, want no lock", i, s.user, s.source, err)
					case s.locked != "" && (le == nil || le.Scope != s.locked):
						t.Fatalf("step %d: check %.20s from %s: %v, want a lock on %s", i, s.user, s.source, err, s.locked)
					}
				}
			}
		})
	}
}

// When several locks hold, the one that ends last is reported: Retry-After
// must not invite a retry that is still refused.
func TestLockoutReportsLastLock(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := NewLockout(clk.now, 0)
	for range MaxLoginFailures {
		l.Fail("alice", "10.0.0.1") // pair locked until +15m
	}
	clk.advance(time.Minute)
	for i := range MaxSourceFailures - MaxLoginFailures {
		l.Fail(fmt.Sprint("u", i%4), "10.0.0.1") // source locked until +16m
	}
	var le *LockedError
	if !errors.As(l.Check("alice", "10.0.0.1"), &le) || le.Scope != LockSource || le.Wait != LoginLockout {
		t.Fatalf("check: %v, want the source's lock, %v away", le, LoginLockout)
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
	if want := "too many failed logins (user from this address): locked until 2026-01-01T12:15:00Z (13m30s from now)"; le.Error() != want {
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
		if p, s, u := l.tracked(); p > max || s > max || u > max {
			t.Fatalf("after %d keys: %d pairs, %d sources, %d users tracked, cap %d", i+1, p, s, u, max)
		}
	}
	// The oldest went first; the newest are still counted.
	if err := l.Check("u0", "s0"); err != nil {
		t.Errorf("evicted key still locked: %v", err)
	}
	for range MaxLoginFailures - 1 {
		l.Fail("u299", "s299")
	}
	if l.Check("u299", "s299") == nil {
		t.Error("recent key forgot its failure")
	}
}
