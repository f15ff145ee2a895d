package netsw

import "github.com/bulwark-project/bulwark/internal/netsw/packet"

// What plug-in stages (stage.go) may read of a port, and the one thing
// they may send: an answer to the sender of the frame they refused.

// Groups returns the port's security groups (nil for none). The slice is
// shared: read it, never modify it. It is safe from any goroutine and
// allocates nothing.
func (p *Port) Groups() []string { return p.groupList() }

// Network returns the name of the network the port is on.
func (p *Port) Network() string { return p.net.cfg.Name }

// RejectToSender answers the sender of c's frame, as a firewall reject
// rule does: a TCP RST for TCP, else a destination unreachable with code
// (packet.ICMPv4PortUnreachable, ICMPv4AdminProhibited, ICMPv4HostUnreachable;
// over IPv6 the ICMPv6 code of the same meaning). Nothing is sent for
// frames that cannot be answered (not IP, a RST, an ICMP error, neighbour
// discovery, from or to a group address). It reports
// whether an answer was sent. Only the stage running c may call it, during
// Process: the answer is built in c's scratch buffer and sent at once on
// c.In, counted there as a transmitted frame.
func (c *FrameContext) RejectToSender(code uint8) bool {
	f := c.Frame
	if f == nil || !f.IPValid {
		return false
	}
	var out []byte
	if f.Tuple.Proto == packet.ProtoTCP {
		out = packet.BuildTCPReset(c.scratch[:0], f)
	} else {
		code6 := uint8(packet.ICMPv6AdminProhibited)
		switch code {
		case packet.ICMPv4PortUnreachable:
			code6 = packet.ICMPv6PortUnreachable
		case packet.ICMPv4HostUnreachable:
			code6 = 3 // address unreachable
		}
		out = packet.BuildUnreachable(c.scratch[:0], f, code, code6)
	}
	if out == nil {
		return false
	}
	c.In.send(out)
	c.scratch = out[:0]
	return true
}
