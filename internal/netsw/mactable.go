package netsw

import (
	"sync"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// MAC table limits. VM ports have one static entry (their bound MAC; anti-
// spoofing drops anything else), so only uplinks learn dynamically.
const (
	DefaultNetworkMACs = 4096
	DefaultPortMACs    = 1024
	macAgeNanos        = int64(300e9) // dynamic entries expire after 5 min unseen
)

type macEntry struct {
	port   int32
	static bool
	seen   int64
}

// macTable maps MAC addresses to ports within one network. It is bounded:
// when the network or the learning port is at its limit, new addresses are
// not learned (frames to them are flooded) and a counter is bumped, so a
// MAC flood from outside cannot evict the VMs' static entries or grow
// memory.
type macTable struct {
	mu       sync.RWMutex
	entries  map[packet.MAC]macEntry
	perPort  map[int32]int
	maxTotal int
	maxPort  int
	refused  uint64
}

func newMACTable(maxTotal, maxPort int) *macTable {
	return &macTable{entries: map[packet.MAC]macEntry{}, perPort: map[int32]int{}, maxTotal: maxTotal, maxPort: maxPort}
}

// lookup returns the port for mac, or -1 (flood).
func (t *macTable) lookup(mac packet.MAC, now int64) int32 {
	t.mu.RLock()
	e, ok := t.entries[mac]
	t.mu.RUnlock()
	if !ok || (!e.static && now-e.seen > macAgeNanos) {
		return -1
	}
	return e.port
}

// setStatic binds mac to port for good (VM ports).
func (t *macTable) setStatic(mac packet.MAC, port int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.entries[mac]; ok && !old.static {
		t.perPort[old.port]--
	}
	t.entries[mac] = macEntry{port: port, static: true}
}

// learn records that mac was seen behind port (uplinks).
func (t *macTable) learn(mac packet.MAC, port int32, now int64) {
	if mac.IsMulticast() {
		return
	}
	t.mu.RLock()
	e, ok := t.entries[mac]
	t.mu.RUnlock()
	if ok && (e.static || (e.port == port && now-e.seen < macAgeNanos/10)) {
		return // fast path: known, recently refreshed
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok = t.entries[mac]
	switch {
	case ok && e.static:
		return
	case ok:
		t.perPort[e.port]--
	default:
		if len(t.entries) >= t.maxTotal {
			t.expireLocked(now)
		}
		if len(t.entries) >= t.maxTotal || t.perPort[port] >= t.maxPort {
			t.refused++
			return
		}
	}
	t.entries[mac] = macEntry{port: port, seen: now}
	t.perPort[port]++
}

// expireLocked drops aged dynamic entries. O(n), run only when full.
func (t *macTable) expireLocked(now int64) {
	for m, e := range t.entries {
		if !e.static && now-e.seen > macAgeNanos {
			delete(t.entries, m)
			t.perPort[e.port]--
		}
	}
}

// forget removes every entry of a port.
func (t *macTable) forget(port int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for m, e := range t.entries {
		if e.port == port {
			delete(t.entries, m)
		}
	}
	delete(t.perPort, port)
}

func (t *macTable) size() (n int, refused uint64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.entries), t.refused
}
