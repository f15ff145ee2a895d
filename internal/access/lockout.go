package access

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Login throttling policy. Failures are counted in three tables, each
// locking only what it counts:
//
//   - per user name and source address together: MaxLoginFailures lock
//     that name from that address. One user's typos lock out neither other
//     users at the same address (everyone on the local socket as root,
//     everyone behind one NAT) nor the same user elsewhere;
//   - per source address, over all names: MaxSourceFailures lock the
//     address, so it cannot try a few passwords on each of many names;
//   - per user name, over all addresses: MaxUserFailures lock the name, so
//     many addresses together cannot guess one password indefinitely.
//
// Names are counted whether they exist or not, so a lockout does not
// reveal which names exist. A source is the remote IP without its port
// (TCP) or "unix:uid=N" (the peer's uid on the Unix socket).
const (
	MaxLoginFailures   = 5                // failures of one name from one source within LoginFailureWindow that lock the pair
	MaxSourceFailures  = 20               // failures from one source, over any names, that lock the source
	MaxUserFailures    = 50               // failures of one name, from any sources, that lock the name
	LoginFailureWindow = 15 * time.Minute // how long a failure counts
	LoginLockout       = 15 * time.Minute // how long a lock lasts
	// MaxLockoutKeys bounds the keys each table tracks (name-source pairs,
	// sources, names); past it the least recently seen key is forgotten.
	MaxLockoutKeys = 10000
	// maxNameKey is the longest user name kept as is in a key; longer
	// ones (no real name is) are kept as a hash, so keys stay small.
	maxNameKey = 128
)

// LockScope says which table's lock refused a login.
type LockScope string

// Lock scopes, most specific first.
const (
	LockUserSource LockScope = "user from this address"
	LockSource     LockScope = "this address"
	LockUser       LockScope = "this user"
)

// LockedError is returned while a name-source pair, a source or a name is
// locked out. Even the right password is refused until Until.
type LockedError struct {
	Scope LockScope
	Until time.Time
	Wait  time.Duration // Until minus now, rounded up to a second
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("too many failed logins (%s): locked until %s (%s from now)", e.Scope, e.Until.UTC().Format(time.RFC3339), e.Wait)
}

// Lockout is the throttling state: pure logic over an injected clock. It is
// safe for concurrent use.
type Lockout struct {
	now func() time.Time

	mu      sync.Mutex
	pairs   lockTable // pairKey(user, source)
	sources lockTable
	users   lockTable // nameKey(user)
}

// NewLockout returns an empty lockout whose tables each track at most
// maxKeys keys (MaxLockoutKeys if maxKeys <= 0).
func NewLockout(now func() time.Time, maxKeys int) *Lockout {
	if maxKeys <= 0 {
		maxKeys = MaxLockoutKeys
	}
	return &Lockout{now: now,
		pairs:   newLockTable(maxKeys, MaxLoginFailures),
		sources: newLockTable(maxKeys, MaxSourceFailures),
		users:   newLockTable(maxKeys, MaxUserFailures)}
}

// Check returns a *LockedError if user from source may not try now: the
// pair, the source or the name is locked. When several locks hold, the
// error names the one that ends last (the most specific on a tie), so
// Wait is how long the caller must really wait.
func (l *Lockout) Check(user, source string) error {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var (
		scope LockScope
		until time.Time
	)
	for _, c := range []struct {
		scope LockScope
		until time.Time
	}{
		{LockUserSource, l.pairs.lockedUntil(pairKey(user, source), now)},
		{LockSource, l.sources.lockedUntil(source, now)},
		{LockUser, l.users.lockedUntil(nameKey(user), now)},
	} {
		if c.until.After(until) {
			scope, until = c.scope, c.until
		}
	}
	if scope == "" {
		return nil
	}
	wait := until.Sub(now)
	if r := wait % time.Second; r != 0 {
		wait += time.Second - r
	}
	return &LockedError{Scope: scope, Until: until, Wait: wait}
}

// Fail records a failed attempt for user from source.
func (l *Lockout) Fail(user, source string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pairs.fail(pairKey(user, source), now)
	l.sources.fail(source, now)
	l.users.fail(nameKey(user), now)
}

// Succeed forgets the failures of user from source. The source's count
// stays: otherwise an attacker holding one valid account could reset the
// count of a source that is guessing at others. The name's count stays
// too: the owner logging in must not reset a count that other addresses
// are running up against their name.
func (l *Lockout) Succeed(user, source string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pairs.forget(pairKey(user, source))
}

// tracked reports how many keys each table holds (for tests).
func (l *Lockout) tracked() (pairs, sources, users int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pairs.byKey), len(l.sources.byKey), len(l.users.byKey)
}

// nameKey is the key of a user name: the name itself, or for a name
// longer than maxNameKey (a request may send up to a MiB) its hash.
func nameKey(user string) string {
	if len(user) <= maxNameKey {
		return user
	}
	sum := sha256.Sum256([]byte(user))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pairKey is the key of a name-source pair. The length prefix makes it
// unambiguous whatever bytes either part holds.
func pairKey(user, source string) string {
	n := nameKey(user)
	return strconv.Itoa(len(n)) + ":" + n + source
}

// lockTable is a bounded LRU of per-key failure state.
type lockTable struct {
	max   int                      // keys held
	limit int                      // failures within LoginFailureWindow that lock a key
	byKey map[string]*list.Element // value: *lockEntry
	lru   list.List                // front: most recently touched
}

type lockEntry struct {
	key      string
	failures []time.Time // within the window, oldest first; fewer than the table's limit
	until    time.Time   // locked before this instant; zero when not locked
}

func newLockTable(max, limit int) lockTable {
	return lockTable{max: max, limit: limit, byKey: map[string]*list.Element{}}
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
	if len(e.failures) >= t.limit {
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
