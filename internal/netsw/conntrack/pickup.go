package conntrack

import "github.com/bulwark-project/bulwark/internal/netsw/packet"

// PickUp admits a mid-stream TCP segment (ACK set, no SYN, no RST) as an
// established flow whose original direction is f's. It exists for
// connections that were established before this table did — after a
// restart of the daemon — and is Linux's "loose" pick-up: the caller
// decides when it applies (a window after start) and must have checked the
// firewall for f's direction first. Any other segment is CTInvalid.
func (t *Table) PickUp(now int64, f *packet.Frame, gen uint64, origPort, replyPort int32) (*Flow, packet.Reason) {
	flags := f.TCPFlags & (packet.TCPSyn | packet.TCPAck | packet.TCPRst | packet.TCPFin)
	if !f.IPValid || f.Tuple.Proto != packet.ProtoTCP || flags&packet.TCPAck == 0 || flags&(packet.TCPSyn|packet.TCPRst) != 0 {
		t.countInvalid(&f.Tuple)
		return nil, packet.CTInvalid
	}
	s := t.shardFor(&f.Tuple)
	s.mu.Lock()
	defer s.mu.Unlock()
	if fl := s.flows[f.Tuple]; fl != nil && fl.expires.Load() > now {
		return fl, packet.OK // someone picked it up first
	}
	quota, r := t.admitLocked(s, now, origPort)
	if r != packet.OK {
		return nil, r
	}
	st, bits := StateEstablished, uint8(tcpSynAckSeen)
	if flags&packet.TCPFin != 0 {
		st, bits = StateClosing, bits|tcpFinOrig
	}
	fl := &Flow{Orig: f.Tuple, OrigPort: origPort, ReplyPort: replyPort, Created: now, moved: now, quota: quota, tcp: bits}
	quota.Add(1)
	fl.gen.Store(gen)
	fl.state.Store(uint32(st))
	fl.expires.Store(now + int64(t.timeout(packet.ProtoTCP, st)))
	if old := s.flows[f.Tuple]; old != nil {
		s.removeLocked(old) // expired
	}
	s.flows[fl.Orig] = fl
	s.flows[fl.Orig.Reverse()] = fl
	c := uint8(classOther)
	if st == StateEstablished {
		c = classEstablished
	}
	fl.class = c
	s.lru[c].pushBack(fl)
	s.n++
	s.stats.Created++
	return fl, packet.OK
}
