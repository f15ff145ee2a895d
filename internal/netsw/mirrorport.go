package netsw

import (
	"errors"
	"sort"
)

// Mirror ports: what the traffic mirror (internal/mirror) needs of the
// switch to deliver copies to a monitoring VM's NIC.
//
// A monitor port is a tap: it receives the copies a mirror session sends
// it, outside the pipeline (no firewall, inspection, mirror or rate-limit
// stage sees them, so a copy is never mirrored again), and it only
// receives: every frame it sends is dropped by the port-security stage
// with reason mirror_port_tx, counted at the port and logged like the
// other drops (droplog.go). A port is a monitor port by name, so a VM that
// starts after its session was configured is one from its first frame.

// PortRef names a port: its network and its name ("VM/nicN").
type PortRef struct{ Network, Name string }

// SetMonitorPorts makes exactly the ports refs name monitor ports (on
// ports attached later too) and every other port an ordinary one.
func (s *Switch) SetMonitorPorts(refs []PortRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[PortRef]bool, len(refs))
	for _, r := range refs {
		m[r] = true
	}
	s.monitors = m
	for _, p := range s.byID {
		p.monitor.Store(p.Kind == VMPort && m[PortRef{Network: p.net.cfg.Name, Name: p.Name}])
	}
}

// MonitorPorts lists the configured monitor ports, sorted.
func (s *Switch) MonitorPorts() []PortRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PortRef, 0, len(s.monitors))
	for r := range s.monitors {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Network != out[j].Network {
			return out[i].Network < out[j].Network
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// LookupPort returns the VM port named name on network, or nil. It walks
// the data path's port map (no lock, no allocation); callers on a frame
// path cache the result and look again only when Closed says the port
// went away.
func (s *Switch) LookupPort(network, name string) *Port {
	for _, p := range *s.ports.Load() {
		if p.Kind == VMPort && p.Name == name && p.net.cfg.Name == network {
			return p
		}
	}
	return nil
}

// Closed reports whether the port was removed (its VM stopped); a VM that
// starts again gets a new Port.
func (p *Port) Closed() bool { return p.closed.Load() }

// Monitor reports whether p is a monitor port (SetMonitorPorts).
func (p *Port) Monitor() bool { return p.monitor.Load() }

// Errors of SendMirrorCopy.
var (
	ErrPortClosed = errors.New("port closed")
	ErrPortFull   = errors.New("receiver full")
)

// SendMirrorCopy delivers a mirrored frame to p as it is, outside the
// pipeline, without blocking: a receiver that is full or gone loses the
// copy (ErrPortFull, counted as tx_dropped_full; ErrPortClosed). A
// delivered copy counts as a transmitted frame of p. frame is not kept.
func (p *Port) SendMirrorCopy(frame []byte) error {
	if p.closed.Load() {
		return ErrPortClosed
	}
	if err := p.io.write(frame); err != nil {
		p.stats.txFull.Add(1)
		return ErrPortFull
	}
	p.stats.txFrames.Add(1)
	p.stats.txBytes.Add(uint64(len(frame)))
	return nil
}
