package access

import (
	"container/list"
	"fmt"
	"sync"
	"time"
)

// Login throttling policy. Failures are counted per user name (existing or
// not, so a lockout does not reveal which names exist) and per source
// address; either reaching the limit locks that key.
const (
	MaxLoginFailures   = 5                // failures within LoginFailureWindow that lock
	LoginFailureWindow = 15 * time.Minute // how long a failure counts
	LoginLockout       = 15 * time.Minute // how long a lock lasts
	// MaxLockoutKeys bounds the user names and, separately, the source
	// addresses tracked; past it the least recently seen key is forgotten.
	MaxLockoutKeys = 10000
)

// LockedError is returned while a user name or a source address is locked
// out. Even the right password is refused until Until.
type LockedError struct {
	Until time.Time
	Wait  time.Duration // Until minus now, rounded up to a second
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("too many failed logins: locked until %s (%s from now)", e.Until.UTC().Format(time.RFC3339), e.Wait)
}

// Lockout is the throttling state: pure logic over an injected clock. It is
// safe for concurrent use.
type Lockout struct {
	now func() time.Time

	mu      sync.Mutex
	users   lockTable
	sources lockTable
}

// NewLockout returns an empty lockout that tracks at most maxKeys users and
// maxKeys sources (MaxLockoutKeys if maxKeys <= 0).
func NewLockout(now func() time.Time, maxKeys int) *Lockout {
	if maxKeys <= 0 {
		maxKeys = MaxLockoutKeys
	}
	return &Lockout{now: now, users: newLockTable(maxKeys), sources: newLockTable(maxKeys)}
}

// Check returns a *LockedError if user or source is locked now.
func (l *Lockout) Check(user, source string) error {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	until := later(l.users.lockedUntil(user, now), l.sources.lockedUntil(source, now))
	if until.IsZero() {
		return nil
	}
	wait := until.Sub(now)
	if r := wait % time.Second; r != 0 {
		wait += time.Second - r
	}
	return &LockedError{Until: until, Wait: wait}
}

// Fail records a failed attempt for user from source.
func (l *Lockout) Fail(user, source string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.users.fail(user, now)
	l.sources.fail(source, now)
}

// Succeed forgets the user's failures. The source's stay: otherwise an
// attacker holding one valid account could reset the count of a source that
// is guessing at others.
func (l *Lockout) Succeed(user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.users.forget(user)
}

// tracked reports how many users and sources are held (for tests).
func (l *Lockout) tracked() (users, sources int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users.byKey), len(l.sources.byKey)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// lockTable is a bounded LRU of per-key failure state.
type lockTable struct {
	max   int
	byKey map[string]*list.Element // value: *lockEntry
	lru   list.List                // front: most recently touched
}

type lockEntry struct {
	key      string
	failures []time.Time // within the window, oldest first; at most MaxLoginFailures
	until    time.Time   // locked before this instant; zero when not locked
}

func newLockTable(max int) lockTable {
	return lockTable{max: max, byKey: map[string]*list.Element{}}
}

func (t *lockTable) lockedUntil(key string, now time.Time) time.Time {
	el, ok := t.byKey[key]
	if !ok {
		return time.Time{}
	}
	e := el.Value.(*lockEntry)
	if now.Before(e.until) {
		return e.until
	}
	return time.Time{}
}

func (t *lockTable) fail(key string, now time.Time) {
	el, ok := t.byKey[key]
	if ok {
		t.lru.MoveToFront(el)
	} else {
		if len(t.byKey) >= t.max {
			oldest := t.lru.Back()
			t.lru.Remove(oldest)
			delete(t.byKey, oldest.Value.(*lockEntry).key)
		}
		el = t.lru.PushFront(&lockEntry{key: key})
		t.byKey[key] = el
	}
	e := el.Value.(*lockEntry)
	if now.Before(e.until) {
		return // already locked; the lock does not extend
	}
	keep := e.failures[:0]
	for _, f := range e.failures {
		if now.Sub(f) < LoginFailureWindow {
			keep = append(keep, f)
		}
	}
	e.failures = append(keep, now)
	if len(e.failures) >= MaxLoginFailures {
		e.until = now.Add(LoginLockout)
		e.failures = e.failures[:0]
	}
}

func (t *lockTable) forget(key string) {
	if el, ok := t.byKey[key]; ok {
		t.lru.Remove(el)
		delete(t.byKey, key)
	}
}
