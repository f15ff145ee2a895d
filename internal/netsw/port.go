package netsw

import (
	"net"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/portsec"
)

// PortKind tells VM NIC ports from uplinks.
type PortKind uint8

const (
	VMPort PortKind = iota
	UplinkPort
)

func (k PortKind) String() string {
	if k == UplinkPort {
		return "uplink"
	}
	return "vm"
}

// Port is one switch port. Its reader goroutine is the only user of storm,
// icmpErr and fc.
type Port struct {
	ID      int32
	Name    string // "VM/nicN" or "uplink/NETWORK"
	Kind    PortKind
	VM      string
	NIC     int
	net     *network
	binding portsec.Binding
	// groups are written under Switch.mu (SetVMPortGroups) and read
	// lock-free by status; the data path uses the compiled policy only.
	groups atomic.Pointer[[]string]
	storm  *portsec.Storm
	// icmpErr limits the ICMP errors the port sends (VM ports; nil for
	// uplinks, whose errors come from every router outside).
	icmpErr *portsec.Storm
	rates   portRates // VM ports only
	io      portIO
	stats   portStats
	closed  atomic.Bool
	monitor atomic.Bool // a mirror session's monitor port: what it sends is dropped (mirrorport.go)
	// quarantined: nothing to or from this VM port passes (quarantine.go).
	quarantined atomic.Bool
	// fc is the pipeline's context for frames from this port, reused for
	// each (only the port's reader runs them).
	fc FrameContext
}

// groupList returns the port's security groups (nil for none).
func (p *Port) groupList() []string {
	if g := p.groups.Load(); g != nil {
		return *g
	}
	return nil
}

// portIO moves whole frames. write never blocks: a full receiver drops the
// frame (counted), so one slow or hostile peer cannot stall the switch.
type portIO interface {
	read(buf []byte) (int, error)
	write(frame []byte) error
	close() error
}

type portStats struct {
	rxFrames, rxBytes, txFrames, txBytes, txFull atomic.Uint64
	drops                                        [packet.NumReasons]atomic.Uint64
	dropLogs                                     [packet.NumReasons]dropLog
}

func (p *Port) drop(r packet.Reason) { p.stats.drops[r].Add(1) }

// MaxCarriedCounters bounds the counters the switch keeps for VM NICs
// without a port (stopped VMs), so that a VM's counters carry over its
// restarts; past the bound, an arbitrary one is forgotten.
const MaxCarriedCounters = 4096

// portCounters is a snapshot of a port's counters.
type portCounters struct {
	rxFrames, rxBytes, txFrames, txBytes, txFull uint64
	drops                                        [packet.NumReasons]uint64
}

func (st *portStats) snapshot() *portCounters {
	c := &portCounters{rxFrames: st.rxFrames.Load(), rxBytes: st.rxBytes.Load(),
		txFrames: st.txFrames.Load(), txBytes: st.txBytes.Load(), txFull: st.txFull.Load()}
	for i := range st.drops {
		c.drops[i] = st.drops[i].Load()
	}
	return c
}

// restore adds c to a new port's counters (before it is published).
func (st *portStats) restore(c *portCounters) {
	st.rxFrames.Add(c.rxFrames)
	st.rxBytes.Add(c.rxBytes)
	st.txFrames.Add(c.txFrames)
	st.txBytes.Add(c.txBytes)
	st.txFull.Add(c.txFull)
	for i := range st.drops {
		st.drops[i].Add(c.drops[i])
	}
}

// send delivers a frame out of this port.
func (p *Port) send(frame []byte) {
	if p.closed.Load() {
		return
	}
	if p.quarantined.Load() {
		p.drop(packet.Quarantined)
		return
	}
	if err := p.io.write(frame); err != nil {
		p.stats.txFull.Add(1)
		return
	}
	p.stats.txFrames.Add(1)
	p.stats.txBytes.Add(uint64(len(frame)))
}

// PortStatus is a port's public view with its counters.
type PortStatus struct {
	ID       int32             `json:"id"`
	Name     string            `json:"name"`
	Kind     string            `json:"kind"`
	Network  string            `json:"network"`
	VM       string            `json:"vm,omitempty"`
	MAC      string            `json:"mac,omitempty"`
	IPs      []string          `json:"ips,omitempty"`
	Groups   []string          `json:"groups,omitempty"`
	RxFrames uint64            `json:"rx_frames"`
	RxBytes  uint64            `json:"rx_bytes"`
	TxFrames uint64            `json:"tx_frames"`
	TxBytes  uint64            `json:"tx_bytes"`
	TxFull   uint64            `json:"tx_dropped_full"`
	Drops    map[string]uint64 `json:"drops"`
	// Rate is the VM NIC's configured limits (absent: unlimited); frames
	// they refused are in Drops as rate_egress and rate_ingress.
	Rate *PortRate `json:"rate,omitempty"`
}

func (p *Port) status() PortStatus {
	st := PortStatus{ID: p.ID, Name: p.Name, Kind: p.Kind.String(), Network: p.net.cfg.Name, VM: p.VM,
		Groups: p.groupList(), Drops: map[string]uint64{}, Rate: p.rateStatus()}
	if p.Kind == VMPort {
		st.MAC = net.HardwareAddr(p.binding.MAC[:]).String()
		for _, a := range p.binding.IPs {
			st.IPs = append(st.IPs, a.String())
		}
	}
	st.RxFrames, st.RxBytes = p.stats.rxFrames.Load(), p.stats.rxBytes.Load()
	st.TxFrames, st.TxBytes, st.TxFull = p.stats.txFrames.Load(), p.stats.txBytes.Load(), p.stats.txFull.Load()
	for i := 1; i < packet.NumReasons; i++ {
		if n := p.stats.drops[i].Load(); n > 0 {
			st.Drops[packet.Reason(i).String()] = n
		}
	}
	return st
}

// dgramIO is a VM port: the switch's datagram socket and the hypervisor's.
type dgramIO struct {
	conn *net.UnixConn
	raw  syscall.RawConn
	peer *unix.SockaddrUnix
}

func newDgramIO(path, peer string) (*dgramIO, error) {
	os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	// Only root may send frames into this port: the daemon connects the
	// hypervisor's NIC socket here on its behalf, so no VM uid needs (or
	// gets) access to the path. The directory is root-owned.
	if err := os.Chmod(path, 0o600); err != nil {
		conn.Close()
		return nil, err
	}
	// Room for bursts: 4 MiB of frames queued towards the switch.
	conn.SetReadBuffer(4 << 20)
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &dgramIO{conn: conn, raw: raw, peer: &unix.SockaddrUnix{Name: peer}}, nil
}

func (d *dgramIO) read(buf []byte) (int, error) {
	n, _, err := d.conn.ReadFromUnix(buf)
	return n, err
}

func (d *dgramIO) write(frame []byte) error {
	var serr error
	err := d.raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), frame, unix.MSG_DONTWAIT, d.peer)
		return true // never wait for the receiver
	})
	if err != nil {
		return err
	}
	return serr
}

func (d *dgramIO) close() error {
	os.Remove(d.conn.LocalAddr().String())
	return d.conn.Close()
}
