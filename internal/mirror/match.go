package mirror

import (
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// flowFilter is a compiled Filter.
type flowFilter struct {
	proto   uint8 // 0: any; packet.ProtoTCP, ProtoUDP or ProtoICMP (ICMPv6 too)
	port    uint16
	host    netip.Prefix
	hasHost bool
}

func (f *Filter) compile() (*flowFilter, error) {
	ff := &flowFilter{port: f.Port}
	switch f.Proto {
	case "":
	case "tcp":
		ff.proto = packet.ProtoTCP
	case "udp":
		ff.proto = packet.ProtoUDP
	case "icmp":
		ff.proto = packet.ProtoICMP
		if f.Port != 0 {
			return nil, ferr("filter.port", "ICMP has no ports")
		}
	default:
		return nil, ferr("filter.proto", "%q must be tcp, udp, icmp or empty", f.Proto)
	}
	if f.Host != "" {
		var err error
		if strings.Contains(f.Host, "/") {
			ff.host, err = netip.ParsePrefix(f.Host)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(f.Host); err == nil {
				ff.host = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil || ff.host.Addr().Zone() != "" {
			return nil, ferr("filter.host", "%q must be an IP address or CIDR prefix", f.Host)
		}
		ff.host = ff.host.Masked()
		ff.hasHost = true
	}
	return ff, nil
}

// match reports whether the parsed frame passes the filter; only IP
// packets do.
func (ff *flowFilter) match(f *packet.Frame) bool {
	if !f.IPValid {
		return false
	}
	t := &f.Tuple
	switch ff.proto {
	case 0:
		if ff.port != 0 && t.Proto != packet.ProtoTCP && t.Proto != packet.ProtoUDP {
			return false
		}
	case packet.ProtoICMP:
		if t.Proto != packet.ProtoICMP && t.Proto != packet.ProtoICMPv6 {
			return false
		}
	default:
		if t.Proto != ff.proto {
			return false
		}
	}
	if ff.port != 0 && t.SrcPort != ff.port && t.DstPort != ff.port {
		return false
	}
	return !ff.hasHost || ff.host.Contains(t.Src) || ff.host.Contains(t.Dst)
}

// matcher decides which frames a session copies. It is immutable once
// built, except for its dedupe slots.
type matcher struct {
	network string
	vms     []string // whole VMs
	ports   []string // "VM/nicN"
	in, out bool     // the directions copied
	filter  *flowFilter
	// seen remembers, per sending port (by ID, modulo its size), the last
	// frame copied: each slot holds Seq<<24 | ID&0xffffff (see firstCopy).
	seen [256]atomic.Uint64
}

func newMatcher(s *Session) *matcher {
	m := &matcher{network: s.Network, in: s.Direction != DirOut, out: s.Direction != DirIn}
	for _, src := range s.Sources {
		if strings.Contains(src, "/") {
			m.ports = append(m.ports, src)
		} else {
			m.vms = append(m.vms, src)
		}
	}
	if s.Filter != nil {
		m.filter, _ = s.Filter.compile() // validated
	}
	return m
}

// source reports whether p is one of the session's sources. Linear: a
// session has a few sources, and comparing strings of different lengths
// costs one comparison.
func (m *matcher) source(p *netsw.Port) bool {
	if p.Kind != netsw.VMPort {
		return false
	}
	for _, v := range m.vms {
		if p.VM == v {
			return true
		}
	}
	for _, n := range m.ports {
		if p.Name == n {
			return true
		}
	}
	return false
}

// match reports whether the session copies c's frame on its way to c.Out,
// and which source port it is copied for.
func (m *matcher) match(c *netsw.FrameContext) (*netsw.Port, bool) {
	if c.In.Network() != m.network {
		return nil, false
	}
	var src *netsw.Port
	switch {
	case m.out && m.source(c.In):
		src = c.In
	case m.in && m.source(c.Out):
		src = c.Out
	default:
		return nil, false
	}
	if m.filter != nil && !m.filter.match(c.Frame) {
		return nil, false
	}
	return src, m.firstCopy(c)
}

// firstCopy reports whether c's frame is seen for the first time, and
// remembers it. The frames of one sending port are handed to the stages
// one at a time, each to all its destinations in a row, numbered by
// FrameContext.Seq; so the slot of the port needs to hold only the last
// frame copied. Only that port's reader writes the slot, unless two live
// ports share it (IDs equal modulo 256): then a frame may be copied twice,
// never lost, as a slot only ever holds a key that was copied. The key
// keeps 40 bits of Seq and 24 of the port ID: a false match needs one port
// to send 2^40 frames with no other copy in between, or two ports whose IDs
// differ by a multiple of 2^24 live at once.
func (m *matcher) firstCopy(c *netsw.FrameContext) bool {
	slot := &m.seen[uint32(c.In.ID)%uint32(len(m.seen))]
	key := c.Seq<<24 | uint64(uint32(c.In.ID))&0xffffff
	if slot.Load() == key {
		return false
	}
	slot.Store(key)
	return true
}
