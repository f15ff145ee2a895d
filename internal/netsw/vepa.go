package netsw

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// VEPA: reflective relay through the external switch (802.1Qbg).
//
// On a network with VEPA on, a frame from one VM port to another runs the
// per-destination stages for its real destination (the firewall with the
// receiver's port, inspection, mirror, the receiver's ingress limit), as
// always, and is then sent out the uplink instead of to the receiver. The
// external switch's port is in reflective relay (hairpin) mode: it applies
// its own policy and sends the frame back down the same link. The switch
// delivers the reflected frame to the receiver the stages ran for, without
// running them again.
//
// The uplink is the outside: a frame from it that carries a local VM's
// source MAC is accepted only when it is one the switch sent out for
// hairpin. Before sending, the switch records a keyed hash of the frame in
// the network's hairpinSet: one marker (port 0) saying the frame left, and
// one entry per receiver whose stages passed. A frame from the uplink with
// a VM's source MAC must consume a marker, else it is dropped
// (vepa_spoofed, counted at the uplink, logged naming the VM whose MAC it
// claimed); then it is delivered to each local port whose entry it
// consumes. Each entry is consumed once and lives hairpinTTL, so a
// reflection is accepted once, and a replayed copy of a frame, which is
// byte for byte what the stages passed, at most takes the place of the
// real reflection. VM MACs are static entries of the MAC table, so such
// frames are never learned as uplink MACs.
//
// The check holds on every network, VEPA or not: with VEPA off the switch
// sends nothing for hairpin, so every frame from the uplink with a local
// VM's MAC is vepa_spoofed (a spoof, or a reflection loop outside).
//
// Broadcast and multicast, as 802.1Qbg has it: a VM's group frame runs the
// per-destination stages for every other local port and for the uplink,
// and goes out the uplink once, only if the uplink's stages pass (a frame
// the rules keep from leaving reaches no one on a VEPA network). The
// adjacent bridge reflects it; the switch then delivers it to the local
// ports whose stages passed, never back to its source. Unknown unicast
// from a VM leaves with a marker only, so its reflection (a learning
// bridge floods unknown destinations back down a hairpin port) is absorbed
// silently rather than reported.
//
// A VEPA network whose uplink is gone (not configured at start, or
// removed) delivers nothing between VMs: the frames are dropped as
// port_down at the sender. VEPA is on because the external switch's policy
// must see inter-VM traffic; delivering locally would bypass it.

// Hairpin set limits.
const (
	// HairpinEntries bounds the frames in flight to the external switch
	// per network (markers and receivers together). When a bucket is full
	// its oldest entry is evicted, so an unconsumed entry lives at most
	// hairpinTTL and usually far less under load; a reflection that comes
	// back after its entry was evicted is dropped as vepa_spoofed.
	HairpinEntries = 1 << 16
	hairpinWays    = 4
	hairpinTTL     = int64(2 * time.Second)
	// minWireFrame is the shortest frame on an Ethernet wire (without FCS):
	// shorter frames come back padded with zeros, so they are hashed as if
	// padded.
	minWireFrame = 60
	// hairpinMarker is the port of the marker entry (port ids start at 1).
	hairpinMarker = 0
)

type hairpinEntry struct {
	key     uint64
	port    int32
	expires int64 // switch clock; 0: free
}

// hairpinSet is a set-associative table of (frame hash, port) entries with
// a time to live, consumed once. It allocates nothing after creation.
type hairpinSet struct {
	seed maphash.Seed

	mu      sync.Mutex
	buckets [HairpinEntries / hairpinWays][hairpinWays]hairpinEntry
	evicted uint64 // live entries pushed out by new ones
}

func newHairpinSet() *hairpinSet { return &hairpinSet{seed: maphash.MakeSeed()} }

// hash is the frame's keyed hash over what the frame says it holds: an
// IPv4, IPv6 or ARP frame up to the end of its packet (a NIC or switch
// may pad a short frame with any bytes, zero or not), another frame as if
// zero-padded to minWireFrame.
func (h *hairpinSet) hash(b []byte) uint64 {
	if n := frameContentLen(b); n > 0 {
		return maphash.Bytes(h.seed, b[:n])
	}
	if len(b) < minWireFrame {
		var pad [minWireFrame]byte
		copy(pad[:], b)
		return maphash.Bytes(h.seed, pad[:])
	}
	return maphash.Bytes(h.seed, b)
}

// frameContentLen is the length of an untagged IPv4, IPv6 or ARP frame
// without any padding after its packet, or 0 when it is none of these or
// its length field is inconsistent.
func frameContentLen(b []byte) int {
	if len(b) < 14 {
		return 0
	}
	var n int
	switch binary.BigEndian.Uint16(b[12:14]) {
	case 0x0800:
		if len(b) < 18 {
			return 0
		}
		n = 14 + int(binary.BigEndian.Uint16(b[16:18]))
		if n < 34 {
			return 0
		}
	case 0x86dd:
		if len(b) < 20 {
			return 0
		}
		n = 54 + int(binary.BigEndian.Uint16(b[18:20]))
	case 0x0806:
		n = 42
	default:
		return 0
	}
	if n > len(b) {
		return 0
	}
	return n
}

func (h *hairpinSet) bucket(key uint64, port int32) *[hairpinWays]hairpinEntry {
	x := key ^ (uint64(uint32(port)) * 0x9e3779b97f4a7c15)
	x ^= x >> 29
	return &h.buckets[x%uint64(len(h.buckets))]
}

// add records (key, port) until now+hairpinTTL.
func (h *hairpinSet) add(key uint64, port int32, now int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.bucket(key, port)
	victim := 0
	for i := range b {
		if b[i].expires <= now {
			victim = i
			break
		}
		if b[i].expires < b[victim].expires {
			victim = i
		}
	}
	if b[victim].expires > now {
		h.evicted++
	}
	b[victim] = hairpinEntry{key: key, port: port, expires: now + hairpinTTL}
}

// take consumes a live (key, port) entry and reports whether there was one.
func (h *hairpinSet) take(key uint64, port int32, now int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.bucket(key, port)
	for i := range b {
		if e := &b[i]; e.key == key && e.port == port && e.expires > now {
			*e = hairpinEntry{}
			return true
		}
	}
	return false
}

// hairpinOut sends c's frame, which the per-destination stages for dst
// passed, out the network's uplink for the external switch to reflect.
func (s *Switch) hairpinOut(c *FrameContext, dst *Port) {
	n := c.In.net
	up, set := n.up.Load(), n.hairpin.Load()
	if up == nil || up.closed.Load() || set == nil {
		s.dropAt(c.In, dst, packet.PortDown, c.Frame, c.Now)
		return
	}
	// Recorded before the send: the uplink's reader may see the
	// reflection before send returns.
	h := set.hash(c.Raw)
	set.add(h, dst.ID, c.Now)
	set.add(h, hairpinMarker, c.Now)
	up.send(c.Raw)
}

// floodVEPA is process's flood for a group frame from a VM on a VEPA
// network: the stages run for every other port, and the frame leaves once
// by the uplink, to be delivered locally when it is reflected.
func (s *Switch) floodVEPA(l *stageList, c *FrameContext) {
	n := c.In.net
	set := n.hairpin.Load()
	var up *Port
	var h uint64
	if set != nil {
		h = set.hash(c.Raw)
	}
	for _, dst := range *n.flood.Load() {
		if dst == c.In {
			continue
		}
		if dst.Kind != VMPort {
			up = dst
			continue
		}
		if set != nil && s.admit(l, c, dst) {
			set.add(h, dst.ID, c.Now)
		}
	}
	if up == nil || set == nil {
		s.drop(c.In, packet.PortDown, c.Frame, c.In, nil, c.Now)
		return
	}
	if s.admit(l, c, up) {
		set.add(h, hairpinMarker, c.Now)
		up.send(c.Raw)
	}
}

// markHairpin records that c's frame, about to leave by the uplink with no
// local receiver (unknown unicast), may come back reflected.
func (s *Switch) markHairpin(c *FrameContext) {
	if !c.In.net.vepa.Load() {
		return
	}
	if set := c.In.net.hairpin.Load(); set != nil {
		set.add(set.hash(c.Raw), hairpinMarker, c.Now)
	}
}

// fromUplink handles a frame from the uplink whose source MAC is a local
// VM port's, and reports whether it was one (and so is dealt with): a
// reflection of a frame the switch sent is delivered where its stages
// passed, anything else is vepa_spoofed.
func (s *Switch) fromUplink(c *FrameContext, ports map[int32]*Port) bool {
	f, n, now := c.Frame, c.In.net, c.Now
	id := n.macs.lookup(f.Src, now)
	if id < 0 {
		return false
	}
	claimed := ports[id]
	if claimed == nil || claimed.Kind != VMPort {
		return false
	}
	set := n.hairpin.Load()
	var h uint64
	if set != nil {
		h = set.hash(c.Raw)
	}
	if set == nil || !set.take(h, hairpinMarker, now) {
		s.dropClaimed(c.In, claimed, packet.VEPASpoofed, f, now)
		return true
	}
	if !f.Dst.IsMulticast() {
		if did := n.macs.lookup(f.Dst, now); did >= 0 && set.take(h, did, now) {
			if dst := ports[did]; dst != nil && dst.net == n {
				dst.send(c.Raw)
			}
		}
		return true
	}
	for _, dst := range *n.flood.Load() {
		if dst != claimed && dst.Kind == VMPort && set.take(h, dst.ID, now) {
			dst.send(c.Raw)
		}
	}
	return true
}

// dropClaimed counts a frame dropped at port p (the uplink) and logs it as
// drop does, at most once a second per port and reason, the line naming
// the VM whose port the frame claimed to come from.
func (s *Switch) dropClaimed(p, claimed *Port, r packet.Reason, f *packet.Frame, now int64) {
	p.drop(r)
	if s.fwlog == nil {
		return
	}
	l := &p.stats.dropLogs[r]
	l.pending.Add(1)
	last := l.last.Load()
	if last != 0 && now-last < dropLogInterval {
		return
	}
	if !l.last.CompareAndSwap(last, now) {
		return
	}
	t := time.Now().UTC()
	sup, ok := s.fwlog.admit(t)
	if !ok {
		return
	}
	ev := FirewallEvent{Time: t, Action: "drop", Reason: r.String(), VM: claimed.VM, Frames: l.pending.Swap(0),
		Network: p.net.cfg.Name, InPort: p.Name}
	if f.IPValid {
		tp := f.Tuple
		ev.Proto, ev.Src, ev.Dst, ev.SrcPort, ev.DstPort = tp.Proto, tp.Src.String(), tp.Dst.String(), tp.SrcPort, tp.DstPort
	}
	s.fwlog.emit(ev, sup)
}

// SetNetworkVEPA turns VEPA on or off on a running network. Frames already
// sent out for hairpin are still accepted back after it is turned off,
// until their entries expire.
func (s *Switch) SetNetworkVEPA(name string, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.networks[name]
	if !ok {
		return fmt.Errorf("network %q does not exist in the switch", name)
	}
	s.setVEPALocked(n, on)
	return nil
}

// setVEPALocked sets the network's mode; the hairpin set is made the first
// time VEPA is turned on and kept (1.5 MiB).
func (s *Switch) setVEPALocked(n *network, on bool) {
	n.cfg.VEPA = on
	if on && n.hairpin.Load() == nil {
		n.hairpin.Store(newHairpinSet())
	}
	n.vepa.Store(on)
}
