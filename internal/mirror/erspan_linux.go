package mirror

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// greConn is a raw IPv4 socket of protocol 47: the kernel adds the IP
// header (source address and route as for any host traffic) to what we
// write. It needs CAP_NET_RAW.
type greConn struct {
	c  *net.IPConn
	to *net.IPAddr
}

// openGRE opens a socket that sends to one host.
func openGRE(to netip.Addr) (*greConn, error) {
	pc, err := net.ListenPacket("ip4:gre", "0.0.0.0")
	if err != nil {
		return nil, err
	}
	c := pc.(*net.IPConn)
	raw, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		// The socket only sends: a filter that accepts nothing keeps every
		// GRE packet the host receives from queueing on it.
		drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: uint16(len(drop)), Filter: &drop[0]})
		if serr != nil {
			serr = fmt.Errorf("SO_ATTACH_FILTER: %w", serr)
			return
		}
		// A full-size frame plus the headers is above a 1500-byte path
		// MTU: let the kernel fragment it rather than refuse it.
		if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT); serr != nil {
			serr = fmt.Errorf("IP_MTU_DISCOVER: %w", serr)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return &greConn{c: c, to: &net.IPAddr{IP: to.AsSlice()}}, nil
}

func (g *greConn) send(payload []byte) error {
	_, err := g.c.WriteTo(payload, g.to)
	if err != nil && !errors.Is(err, unix.EMSGSIZE) {
		// The kernel reports an ICMP error about an earlier packet (a
		// protocol unreachable from a collector's host with no ERSPAN
		// listener, say) on the next send, which then sends nothing:
		// send once more.
		_, err = g.c.WriteTo(payload, g.to)
	}
	return err
}

func (g *greConn) close() error { return g.c.Close() }
