package conntrack

import (
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// TCP progress bits kept in Flow.tcp.
const (
	tcpSynAckSeen = 1 << iota // the replier sent SYN+ACK
	tcpFinOrig                // the originator sent FIN
	tcpFinReply               // the replier sent FIN
)

// step is the outcome of one packet in a flow's state machine.
type step uint8

const (
	stepOK      step = iota // accept and refresh the timeout
	stepInvalid             // refuse with CTInvalid; the flow is unchanged
	stepReopen              // a new connection reuses a finished flow's tuple
)

// tcpStep advances the TCP machine by one segment with the given flags sent
// in direction dir. It is a pure function of its inputs so that the table of
// transitions can be tested directly.
func tcpStep(st State, bits uint8, dir Dir, flags uint8) (State, uint8, step) {
	flags &= packet.TCPFin | packet.TCPSyn | packet.TCPRst | packet.TCPAck // PSH, URG, ECE, CWR do not matter
	syn, ack := flags&packet.TCPSyn != 0, flags&packet.TCPAck != 0
	fin, rst := flags&packet.TCPFin != 0, flags&packet.TCPRst != 0
	if syn && (fin || rst) {
		return st, bits, stepInvalid // never valid; a scanner's probe
	}
	if rst {
		// Without sequence tracking any RST closes the flow; anti-spoofing
		// confines a guest to RSTs for its own connections.
		return StateClosed, bits, stepOK
	}
	switch st {
	case StateNew:
		if dir == Reply {
			if syn && ack {
				return st, bits | tcpSynAckSeen, stepOK
			}
			return st, bits, stepInvalid // replier data before its SYN-ACK, or simultaneous open
		}
		if syn {
			if ack {
				return st, bits, stepInvalid
			}
			return st, bits, stepOK // SYN retransmission
		}
		if !ack || bits&tcpSynAckSeen == 0 {
			return st, bits, stepInvalid // originator ACK before the SYN-ACK
		}
		st = StateEstablished
		if fin {
			st, bits = StateClosing, bits|tcpFinOrig
		}
		return st, bits, stepOK
	case StateEstablished, StateClosing:
		if syn {
			switch {
			case dir == Reply && ack:
				return st, bits, stepOK // SYN-ACK retransmitted: the final ACK was lost downstream
			case dir == Original && !ack && st == StateClosing && bits&(tcpFinOrig|tcpFinReply) == tcpFinOrig|tcpFinReply:
				return st, bits, stepReopen // new connection from TIME_WAIT
			}
			return st, bits, stepInvalid // new ISN on a live connection
		}
		if !ack {
			return st, bits, stepInvalid // every segment after the handshake carries ACK
		}
		if fin {
			st = StateClosing
			if dir == Original {
				bits |= tcpFinOrig
			} else {
				bits |= tcpFinReply
			}
		}
		return st, bits, stepOK
	case StateClosed:
		if syn && !ack && dir == Original {
			return st, bits, stepReopen
		}
	}
	return st, bits, stepInvalid
}

// isICMP reports whether proto is ICMPv4 or ICMPv6.
func isICMP(proto uint8) bool { return proto == packet.ProtoICMP || proto == packet.ProtoICMPv6 }

// isEchoRequest and isEchoReply check an ICMP type against proto's family.
func isEchoRequest(proto, typ uint8) bool {
	return proto == packet.ProtoICMP && typ == packet.ICMPv4EchoRequest ||
		proto == packet.ProtoICMPv6 && typ == packet.ICMPv6EchoRequest
}

func isEchoReply(proto, typ uint8) bool {
	return proto == packet.ProtoICMP && typ == packet.ICMPv4EchoReply ||
		proto == packet.ProtoICMPv6 && typ == packet.ICMPv6EchoReply
}

// advanceLocked runs f through fl's state machine. The caller holds the
// shard lock; on stepOK the flow's state and timeout are updated.
func (t *Table) advanceLocked(s *shard, fl *Flow, dir Dir, now int64, f *packet.Frame) step {
	st := fl.State()
	switch proto := fl.Orig.Proto; {
	case proto == packet.ProtoTCP:
		nst, bits, r := tcpStep(st, fl.tcp, dir, f.TCPFlags)
		if r != stepOK {
			return r
		}
		st, fl.tcp = nst, bits
	case isICMP(proto):
		if dir == Original && isEchoReply(proto, f.ICMPType) && fl.Orig == fl.Orig.Reverse() {
			dir = Reply // echo to oneself: the tuple cannot tell the directions apart
		}
		if dir == Original && !isEchoRequest(proto, f.ICMPType) || dir == Reply && !isEchoReply(proto, f.ICMPType) {
			return stepInvalid
		}
		if dir == Reply {
			st = StateEstablished
		}
	default: // UDP and other protocols
		if dir == Reply {
			st = StateEstablished
		}
	}
	if st != fl.State() {
		fl.state.Store(uint32(st))
	}
	fl.expires.Store(now + int64(t.timeout(fl.Orig.Proto, st)))
	s.touchLocked(fl, now)
	return stepOK
}

// timeout returns how long a flow of proto in state st lives without traffic.
func (t *Table) timeout(proto uint8, st State) time.Duration {
	c := &t.cfg
	switch {
	case proto == packet.ProtoTCP:
		switch st {
		case StateNew:
			return c.TCPSynTimeout
		case StateEstablished:
			return c.TCPEstablishedTimeout
		case StateClosing:
			return c.TCPClosingTimeout
		}
		return c.TCPClosedTimeout
	case isICMP(proto):
		return c.ICMPTimeout
	case st == StateEstablished:
		return c.UDPStreamTimeout
	}
	return c.UDPTimeout
}
