package netsw

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/conntrack"
	"github.com/bulwark-project/bulwark/internal/netsw/firewall"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/portsec"
)

// Switch is the virtual switch of one host.
type Switch struct {
	log   *slog.Logger
	fwlog *eventLog
	now   func() int64

	policy atomic.Pointer[firewall.Policy]
	stages atomic.Pointer[stageList]       // the pipeline (stage.go), replaced whole
	ports  atomic.Pointer[map[int32]*Port] // data-path view, replaced on change

	mu       sync.Mutex // control plane; fields below
	networks map[string]*network
	byID     map[int32]*Port
	nextID   int32
	gen      uint64
	groups   []firewall.Group
	ipsets   []firewall.IPSet
	counters *firewall.Counters
	// carried holds the counters of VM NICs whose port was removed, by
	// port name ("VM/nicN"), until the VM's next port takes them over: a
	// VM's counters survive its restarts (not the daemon's).
	carried map[string]*portCounters
	stop    chan struct{} // closed by Close
	// inspect and mirror are the plug-in stages of the pipeline.
	inspect, mirror []Stage
	quarantine      map[string]bool // quarantined VMs (quarantine.go)
	// chains are the service chains by name (servicechain.go).
	chains map[string]*chain
	// monitors are the mirror sessions' monitor ports (mirrorport.go).
	monitors map[PortRef]bool
}

type network struct {
	cfg    Network
	macs   *macTable
	ct     *conntrack.Table
	flood  atomic.Pointer[[]*Port] // every port of the network
	uplink *Port
	bcast  netip.Addr // the subnet's directed broadcast address

	// The data path's view of what the control plane sets: the uplink
	// (nil: none), VEPA mode and its hairpin set (vepa.go), the service
	// chains (nil: none) and the flows redirected through them
	// (servicechain.go).
	up        atomic.Pointer[Port]
	vepa      atomic.Bool
	hairpin   atomic.Pointer[hairpinSet]
	chains    atomic.Pointer[chainSet]
	redirects *redirectTable
}

// New returns an empty switch. fwlog receives firewall events (may be nil).
func New(log *slog.Logger, fwlog *eventLog) *Switch {
	s := &Switch{log: log, fwlog: fwlog, now: monotonicNanos(),
		networks: map[string]*network{}, byID: map[int32]*Port{}, counters: firewall.NewCounters(),
		carried: map[string]*portCounters{}}
	empty := map[int32]*Port{}
	s.ports.Store(&empty)
	s.stages.Store(s.buildStages(nil, nil))
	if err := s.recompileLocked(); err != nil {
		panic(err) // an empty configuration always compiles
	}
	s.stop = make(chan struct{})
	go s.expireLoop()
	return s
}

// expireInterval is how often idle flows are collected.
const expireInterval = 5 * time.Second

func (s *Switch) expireLoop() {
	t := time.NewTicker(expireInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		nets := make([]*network, 0, len(s.networks))
		for _, n := range s.networks {
			nets = append(nets, n)
		}
		s.mu.Unlock()
		for _, n := range nets {
			n.ct.Expire(s.now())
			n.redirects.sweep()
		}
	}
}

// AddNetwork creates a network (and opens its uplink, if any).
func (s *Switch) AddNetwork(cfg Network) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.networks[cfg.Name]; ok {
		return fmt.Errorf("network %q already exists in the switch", cfg.Name)
	}
	n := &network{cfg: cfg, macs: newMACTable(DefaultNetworkMACs, DefaultPortMACs), ct: conntrack.New(conntrack.Config{})}
	n.redirects = newRedirectTable(n.ct.Config().MaxFlows)
	s.setVEPALocked(n, cfg.VEPA)
	if p, err := netip.ParsePrefix(cfg.Subnet); err == nil && p.Addr().Is4() {
		n.bcast = lastAddr(p.Masked())
	}
	empty := []*Port{}
	n.flood.Store(&empty)
	s.networks[cfg.Name] = n
	if err := s.recompileLocked(); err != nil {
		delete(s.networks, cfg.Name)
		return err
	}
	if cfg.Uplink != nil {
		if err := s.openUplinkLocked(n); err != nil {
			delete(s.networks, cfg.Name)
			s.recompileLocked()
			return fmt.Errorf("network %q: uplink %s: %w", cfg.Name, cfg.Uplink.Interface, err)
		}
	}
	return nil
}

// RemoveNetwork deletes a network without VM ports.
func (s *Switch) RemoveNetwork(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.networks[name]
	if !ok {
		return nil
	}
	for _, p := range *n.flood.Load() {
		if p.Kind == VMPort {
			return fmt.Errorf("network %q still has port %s", name, p.Name)
		}
	}
	if n.uplink != nil {
		s.removePortLocked(n.uplink)
	}
	delete(s.networks, name)
	return s.recompileLocked()
}

// SetFirewall replaces the security groups and IP sets atomically: the new
// policy is compiled completely before it replaces the old one, and a
// configuration that does not compile changes nothing.
func (s *Switch) SetFirewall(groups []firewall.Group, ipsets []firewall.IPSet) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	oldG, oldI := s.groups, s.ipsets
	s.groups, s.ipsets = groups, ipsets
	if err := s.recompileLocked(); err != nil {
		s.groups, s.ipsets = oldG, oldI
		return err
	}
	return nil
}

// CheckFirewall compiles a candidate configuration without installing it.
func (s *Switch) CheckFirewall(groups []firewall.Group, ipsets []firewall.IPSet) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Fresh counters: a candidate that is never installed must not move
	// the installed rules' counts to the removed list.
	_, err := firewall.Compile(s.configLocked(groups, ipsets), s.gen+1, nil)
	return err
}

func (s *Switch) configLocked(groups []firewall.Group, ipsets []firewall.IPSet) firewall.Config {
	c := firewall.Config{Groups: groups, IPSets: ipsets, NetworkDefaults: map[string]firewall.Defaults{}}
	for name, n := range s.networks {
		c.NetworkDefaults[name] = defaultsOf(n.cfg)
	}
	ids := make([]int32, 0, len(s.byID))
	for id := range s.byID {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		p := s.byID[id]
		if p.Kind != VMPort {
			continue
		}
		// Members are matched by source address, and a port's IPv6
		// link-local address (which anti-spoofing lets it use) is one of
		// its addresses: without it, link-local traffic between members of
		// one group (ping fe80::..., neighbour discovery) fell to the
		// default and was denied. Link-local addresses are unique on the
		// link, and membership is resolved per network, which is the link.
		ips := append(slices.Clip(p.binding.IPs), portsec.LinkLocal(p.binding.MAC))
		c.Ports = append(c.Ports, firewall.Port{ID: p.ID, Network: p.net.cfg.Name, IPs: ips, Groups: p.groupList()})
	}
	return c
}

func defaultsOf(n Network) firewall.Defaults {
	d := firewall.Defaults{Ingress: firewall.SameGroup, Egress: firewall.Allow}
	switch n.DefaultIngress {
	case "deny":
		d.Ingress = firewall.DenyAll
	case "allow":
		d.Ingress = firewall.AllowAll
	}
	if n.DefaultEgress == "deny" {
		d.Egress = firewall.Drop
	}
	return d
}

// recompileLocked builds and installs the policy for the current ports,
// groups and networks, then republishes the data-path port map.
func (s *Switch) recompileLocked() error {
	pol, err := firewall.Compile(s.configLocked(s.groups, s.ipsets), s.gen+1, s.counters)
	if err != nil {
		return err
	}
	s.gen++
	s.policy.Store(pol)
	m := make(map[int32]*Port, len(s.byID))
	for id, p := range s.byID {
		m[id] = p
	}
	s.ports.Store(&m)
	for _, n := range s.networks {
		var list []*Port
		for _, p := range s.byID {
			if p.net == n {
				list = append(list, p)
			}
		}
		sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
		n.flood.Store(&list)
		var up *Port
		for _, p := range list {
			if p.Kind == UplinkPort {
				up = p
			}
		}
		n.up.Store(up)
	}
	s.publishChainsLocked()
	return nil
}

// VMPortSpec describes a VM NIC to attach.
type VMPortSpec struct {
	VM      string
	NIC     int
	Network string
	MAC     packet.MAC
	IPs     []netip.Addr
	Groups  []string
	Socket  string   // the switch's socket for this port (QEMU's remote)
	Peer    string   // QEMU's own socket (QEMU's local)
	UID     int      // the hypervisor's uid (informational: only root can send to Socket)
	Rate    PortRate // the NIC's rate limits (zero: none)
}

// AttachVMPort creates a VM port. The port is in the compiled policy before
// its reader starts, so no frame from it is ever forwarded unfiltered; and
// its socket exists before the port is published to the data path, so
// frames flooded to it always have somewhere to go.
func (s *Switch) AttachVMPort(spec VMPortSpec) (*Port, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.networks[spec.Network]
	if !ok {
		return nil, fmt.Errorf("network %q does not exist", spec.Network)
	}
	b := portsec.Binding{MAC: spec.MAC, IPs: spec.IPs}
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("nic %d: %w", spec.NIC, err)
	}
	if err := spec.Rate.Validate(fmt.Sprintf("nics[%d].rate", spec.NIC)); err != nil {
		return nil, err
	}
	// A second static entry would take over the first port's unicast
	// traffic, and MACs are chosen by VM owners.
	for _, q := range s.byID {
		if q.net == n && q.Kind == VMPort && q.binding.MAC == spec.MAC {
			return nil, fmt.Errorf("nic %d: MAC %s is already used by port %s on network %q",
				spec.NIC, net.HardwareAddr(spec.MAC[:]), q.Name, spec.Network)
		}
	}
	name := fmt.Sprintf("%s/nic%d", spec.VM, spec.NIC)
	io, err := newDgramIO(spec.Socket, spec.Peer)
	if err != nil {
		return nil, fmt.Errorf("port %s: %w", name, err)
	}
	p, err := s.addVMPortLocked(n, name, spec, b, io)
	if err != nil {
		io.close()
		return nil, err
	}
	go s.readLoop(p)
	return p, nil
}

// addVMPortLocked publishes a VM port that moves frames through io: in the
// policy, the data path and the network's MAC table. It starts no reader.
func (s *Switch) addVMPortLocked(n *network, name string, spec VMPortSpec, b portsec.Binding, io portIO) (*Port, error) {
	p := &Port{ID: s.nextID + 1, Name: name, Kind: VMPort, VM: spec.VM, NIC: spec.NIC,
		net: n, binding: b, io: io,
		storm: portsec.NewStorm(n.cfg.StormPPS, n.cfg.StormPPS), icmpErr: portsec.NewStorm(ICMPErrorPPS, ICMPErrorPPS)}
	// Before the port is published: its first frame is already limited.
	if err := p.setRate(spec.Rate); err != nil {
		return nil, err
	}
	if c := s.carried[name]; c != nil {
		p.stats.restore(c)
		delete(s.carried, name)
	}
	s.nextID = p.ID
	p.monitor.Store(s.monitors[PortRef{Network: n.cfg.Name, Name: name}])
	p.quarantined.Store(p.Kind == VMPort && s.quarantine[p.VM])
	groups := slices.Clone(spec.Groups)
	p.groups.Store(&groups)
	s.byID[p.ID] = p
	if err := s.recompileLocked(); err != nil {
		delete(s.byID, p.ID)
		s.recompileLocked()
		return nil, err
	}
	n.macs.setStatic(spec.MAC, p.ID)
	return p, nil
}

// DetachVM removes every port of a VM and the flows through them.
func (s *Switch) DetachVM(vm string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.byID {
		if p.Kind == VMPort && p.VM == vm {
			s.removePortLocked(p)
		}
	}
	if err := s.recompileLocked(); err != nil {
		s.log.Error("recompile after detach", "err", err)
	}
}

func (s *Switch) removePortLocked(p *Port) {
	p.closed.Store(true)
	if p.Kind == VMPort {
		if len(s.carried) >= MaxCarriedCounters {
			for k := range s.carried {
				delete(s.carried, k)
				break
			}
		}
		s.carried[p.Name] = p.stats.snapshot()
	}
	delete(s.byID, p.ID)
	p.net.macs.forget(p.ID)
	if p.net.uplink == p {
		p.net.uplink = nil
	}
	var dead []packet.Tuple
	p.net.ct.Range(func(f *conntrack.Flow) bool {
		if f.OrigPort == p.ID || f.ReplyPort == p.ID {
			dead = append(dead, f.Orig)
		}
		return true
	})
	for _, t := range dead {
		p.net.ct.Delete(t)
	}
	if p.io != nil {
		p.io.close()
	}
}

// Ports returns every port's status, ordered by id.
func (s *Switch) Ports() []PortStatus {
	m := *s.ports.Load()
	out := make([]PortStatus, 0, len(m))
	for _, p := range m {
		out = append(out, p.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// RuleHits returns the per-rule hit counters of the installed policy.
func (s *Switch) RuleHits() []firewall.RuleHit { return s.policy.Load().RuleHits() }

// Close closes every port.
func (s *Switch) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	for _, p := range s.byID {
		s.removePortLocked(p)
	}
	s.recompileLocked()
}

// monotonicNanos returns a clock in nanoseconds that never jumps when the
// wall clock is stepped (timeouts and rate limits depend on it).
func monotonicNanos() func() int64 {
	start := time.Now()
	return func() int64 { return int64(time.Since(start)) + 1 }
}
