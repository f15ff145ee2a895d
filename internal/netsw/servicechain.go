package netsw

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/bulwark-project/bulwark/internal/netsw/conntrack"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/store"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Service insertion: chosen flows between two VMs pass through an
// appliance VM (a bump in the wire: an IDS, a WAF, a bridge with a
// filter) before they are delivered.
//
// A new flow from VM port a to VM port b of one network is matched against
// the network's chains in name order, after the per-destination stages for
// b (firewall, inspection, mirror, ingress limit) passed it; the first
// chain that matches redirects it, and the decision is remembered per
// flow (the redirect table, as large as the network's flow table). Frames
// of a redirected flow, in the original direction, go to the chain's
// InPort instead of b; the appliance sends them back out of its OutPort
// and the switch delivers them to b, the port the flow was decided for,
// whatever their Ethernet destination. Replies from b go to OutPort and
// come back from InPort to a. Frames the appliance does not send back are
// its verdict.
//
// An appliance port forwards others' frames, so what it sends is exempt
// from the anti-spoofing of source MAC and address, but only for the flows
// the switch redirected through it: a frame with foreign addresses must
// belong to a live redirected flow of a chain the port serves, and leave
// by the port and in the direction that flow expects; anything else it
// sends with foreign addresses is dropped (service_spoofed). Its own
// frames (its MAC and addresses) go through the whole pipeline like any
// VM's.
//
// When an appliance port is absent (its VM is not running) or closed, a
// redirected flow's frames are dropped (service_down) unless the chain
// fails open (FailOpen), in which case they are delivered directly.
//
// Limits: only unicast IP flows tracked by conntrack are redirected (not
// ARP, broadcast, multicast, or ICMP errors, which go direct); flows that
// exist when a chain is created keep going direct unless they are still
// new; after a daemon restart the redirect table is empty, so flows picked
// up mid-stream go direct; the appliance's own flows, and flows to or from
// it, are never redirected through it; on a VEPA network the appliance's
// leg stays inside the switch (the redirect comes first).

// MaxChains bounds the service chains of a host; each new flow between
// VMs is matched against its network's chains.
const MaxChains = 256

// ServiceChain redirects matching flows between two VMs of a network
// through an appliance VM.
type ServiceChain struct {
	Name    string `json:"name"`
	Network string `json:"network"`
	// Match: which new flows are redirected. Every field is optional and
	// all must match: the security group of the sender and of the
	// receiver, the protocol ("tcp", "udp", "icmp"; empty: any) and the
	// destination port (TCP and UDP only; 0: any).
	SrcGroup string `json:"src_group,omitempty"`
	DstGroup string `json:"dst_group,omitempty"`
	Proto    string `json:"proto,omitempty"`
	Port     uint16 `json:"port,omitempty"`
	// The appliance's ports ("VM/nicN"): frames of matched flows in the
	// client-to-server direction go to InPort and come back out of
	// OutPort; the reply direction enters OutPort and comes back from
	// InPort. They must differ.
	InPort  string `json:"in_port"`
	OutPort string `json:"out_port"`
	// FailOpen: when an appliance port is absent or down, deliver
	// directly (true) or drop with reason service_down (false, the default).
	FailOpen bool `json:"fail_open,omitempty"`
}

// Validate checks a chain on its own (not that its network, groups or
// appliance exist).
func (c *ServiceChain) Validate() error {
	if err := ValidName("name", c.Name); err != nil {
		return err
	}
	if err := ValidName("network", c.Network); err != nil {
		return err
	}
	for _, g := range []struct{ field, name string }{{"src_group", c.SrcGroup}, {"dst_group", c.DstGroup}} {
		if g.name == "" {
			continue
		}
		if err := ValidName(g.field, g.name); err != nil {
			return err
		}
	}
	if _, ok := chainProtos[c.Proto]; !ok {
		return ferr("proto", "%q is not one of tcp, udp, icmp (or empty for any)", c.Proto)
	}
	if c.Port != 0 && c.Proto != "tcp" && c.Proto != "udp" {
		return ferr("port", "a destination port needs proto tcp or udp")
	}
	if err := validPortName("in_port", c.InPort); err != nil {
		return err
	}
	if err := validPortName("out_port", c.OutPort); err != nil {
		return err
	}
	if c.InPort == c.OutPort {
		return ferr("out_port", "%q is also the in_port: an appliance needs two ports (a one-armed appliance is not supported)", c.OutPort)
	}
	return nil
}

// chainProtos maps a chain's protocol to the IP protocol it matches (0:
// any; ICMP matches ICMPv6 too).
var chainProtos = map[string]uint8{"": 0, "tcp": packet.ProtoTCP, "udp": packet.ProtoUDP, "icmp": packet.ProtoICMP}

// validPortName checks a VM port name as the switch spells it: "VM/nicN".
func validPortName(field, s string) error {
	vmName, nic, ok := strings.Cut(s, "/nic")
	if !ok {
		return ferr(field, "%q is not a VM port (VM/nicN)", s)
	}
	if vm.ValidateName(field, vmName) != nil {
		return ferr(field, "%q: %q is not a VM name (1-%d lower-case letters, digits and '-', starting and ending with a letter or digit)", s, vmName, vm.MaxNameLen)
	}
	i, err := strconv.Atoi(nic)
	if err != nil || i < 0 || i >= vm.MaxNICs || strconv.Itoa(i) != nic {
		return ferr(field, "%q: the NIC must be nic0 to nic%d", s, vm.MaxNICs-1)
	}
	return nil
}

// chain is a configured chain as the data path sees it. It lives as long
// as the chain's configuration is unchanged; its appliance ports are
// re-resolved whenever ports change.
type chain struct {
	cfg     ServiceChain
	proto   uint8
	in, out atomic.Pointer[Port] // nil: absent
	deleted atomic.Bool          // its flows go direct, its ports serve it no more
}

// matches reports whether a new flow of f from a to b is the chain's.
func (ch *chain) matches(a, b *Port, f *packet.Frame) bool {
	c := &ch.cfg
	switch {
	case a.Name == c.InPort || a.Name == c.OutPort || b.Name == c.InPort || b.Name == c.OutPort:
		return false // the appliance's own traffic
	case ch.proto != 0 && f.Tuple.Proto != ch.proto && (ch.proto != packet.ProtoICMP || f.Tuple.Proto != packet.ProtoICMPv6):
		return false
	case c.Port != 0 && f.Tuple.DstPort != c.Port:
		return false
	case c.SrcGroup != "" && !slices.Contains(a.groupList(), c.SrcGroup):
		return false
	case c.DstGroup != "" && !slices.Contains(b.groupList(), c.DstGroup):
		return false
	}
	return true
}

// chainSet is a network's chains, replaced whole when chains or ports
// change.
type chainSet struct {
	chains  []*chain       // in name order
	service map[int32]bool // the present appliance ports
}

func (cs *chainSet) match(a, b *Port, f *packet.Frame) *chain {
	for _, ch := range cs.chains {
		if ch.matches(a, b, f) {
			return ch
		}
	}
	return nil
}

// SetChains replaces the switch's service chains. A chain whose
// configuration is unchanged keeps its redirected flows; the flows of a
// removed or changed chain go direct from their next frame.
func (s *Switch) SetChains(list []ServiceChain) error {
	if len(list) > MaxChains {
		return fmt.Errorf("%d service chains, at most %d", len(list), MaxChains)
	}
	seen := map[string]bool{}
	for i := range list {
		if err := list[i].Validate(); err != nil {
			return fmt.Errorf("service chain %q: %w", list[i].Name, err)
		}
		if seen[list[i].Name] {
			return fmt.Errorf("service chain %q: defined twice", list[i].Name)
		}
		seen[list[i].Name] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]*chain, len(list))
	for _, c := range list {
		if old := s.chains[c.Name]; old != nil && old.cfg == c {
			next[c.Name] = old
			continue
		}
		next[c.Name] = &chain{cfg: c, proto: chainProtos[c.Proto]}
	}
	for name, old := range s.chains {
		if next[name] != old {
			old.deleted.Store(true)
		}
	}
	s.chains = next
	s.publishChainsLocked()
	return nil
}

// publishChainsLocked resolves the chains' appliance ports and publishes
// each network's chain set (nil where it has none).
func (s *Switch) publishChainsLocked() {
	byName := make(map[string]*Port, len(s.byID))
	for _, p := range s.byID {
		if p.Kind == VMPort {
			byName[p.Name] = p
		}
	}
	per := map[*network][]*chain{}
	for _, ch := range s.chains {
		n := s.networks[ch.cfg.Network]
		in, out := byName[ch.cfg.InPort], byName[ch.cfg.OutPort]
		if n == nil || in == nil || in.net != n {
			in = nil
		}
		if n == nil || out == nil || out.net != n {
			out = nil
		}
		ch.in.Store(in)
		ch.out.Store(out)
		if n != nil {
			per[n] = append(per[n], ch)
		}
	}
	for _, n := range s.networks {
		list := per[n]
		if len(list) == 0 {
			n.chains.Store(nil)
			continue
		}
		sort.Slice(list, func(i, j int) bool { return list[i].cfg.Name < list[j].cfg.Name })
		cs := &chainSet{chains: list, service: map[int32]bool{}}
		for _, ch := range list {
			for _, p := range []*Port{ch.in.Load(), ch.out.Load()} {
				if p != nil {
					cs.service[p.ID] = true
				}
			}
		}
		n.chains.Store(cs)
	}
}

// redirect is one redirected flow.
type redirect struct {
	fl             *conntrack.Flow
	chain          *chain
	client, server int32 // the flow's original sender and receiver ports
}

// redirectTable maps the original tuple of each redirected flow of a
// network to its redirect. It is bounded by the network's flow table size:
// every entry is a live flow's or is swept (expireLoop, or when full).
type redirectTable struct {
	n   atomic.Int64 // len(m): the established path skips the lock when 0
	max int

	mu sync.RWMutex
	m  map[packet.Tuple]*redirect
}

func newRedirectTable(max int) *redirectTable {
	return &redirectTable{max: max, m: map[packet.Tuple]*redirect{}}
}

func (t *redirectTable) get(orig packet.Tuple) *redirect {
	if t.n.Load() == 0 {
		return nil
	}
	t.mu.RLock()
	r := t.m[orig]
	t.mu.RUnlock()
	return r
}

// find returns the redirect of the flow a packet with tuple tp belongs to,
// and the packet's direction in it.
func (t *redirectTable) find(tp packet.Tuple) (*redirect, conntrack.Dir) {
	if r := t.get(tp); r != nil {
		return r, conntrack.Original
	}
	if r := t.get(tp.Reverse()); r != nil {
		return r, conntrack.Reply
	}
	return nil, conntrack.Original
}

// put records a redirected flow; nil when the table is full of live flows.
func (t *redirectTable) put(fl *conntrack.Flow, ch *chain, client, server int32) *redirect {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[fl.Orig]; !ok && len(t.m) >= t.max {
		t.sweepLocked()
		if len(t.m) >= t.max {
			return nil
		}
	}
	r := &redirect{fl: fl, chain: ch, client: client, server: server}
	t.m[fl.Orig] = r
	t.n.Store(int64(len(t.m)))
	return r
}

// sweep forgets the redirects of removed flows and deleted chains.
func (t *redirectTable) sweep() {
	if t.n.Load() == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked()
}

func (t *redirectTable) sweepLocked() {
	for k, r := range t.m {
		if r.fl.Removed() || r.chain.deleted.Load() {
			delete(t.m, k)
		}
	}
	t.n.Store(int64(len(t.m)))
}

// redirect sends a frame between two VMs that the stages for dst passed to
// its chain's appliance, when its flow is redirected, and reports whether
// it took the frame (sent or dropped); false: deliver it directly. It
// decides new flows. On the established path of a flow that is not
// redirected it costs an atomic load (no redirected flow in the network)
// or a read-locked map lookup.
func (s *Switch) redirect(c *FrameContext, dst *Port, cs *chainSet) bool {
	fl, rt := c.Flow, c.In.net.redirects
	r := rt.get(fl.Orig)
	if r != nil && (r.fl != fl || r.chain.deleted.Load()) {
		r = nil // an ended flow with the same tuple, or a removed chain's: swept later
	}
	if r == nil {
		if c.Dir != conntrack.Original || (fl.State() != conntrack.StateNew && fl.Created != c.Now) {
			return false // decided while it was new: direct
		}
		ch := cs.match(c.In, dst, c.Frame)
		if ch == nil {
			return false
		}
		if r = rt.put(fl, ch, c.In.ID, dst.ID); r == nil {
			return s.applianceDown(c, dst, ch)
		}
	}
	ch := r.chain
	via, back := ch.in.Load(), ch.out.Load()
	if c.Dir == conntrack.Reply {
		via, back = back, via
	}
	if via == nil || back == nil || via.closed.Load() || back.closed.Load() {
		return s.applianceDown(c, dst, ch)
	}
	via.send(c.Raw)
	return true
}

// applianceDown handles a redirected frame whose appliance cannot take
// it: direct delivery for a chain that fails open, else service_down.
func (s *Switch) applianceDown(c *FrameContext, dst *Port, ch *chain) bool {
	if ch.cfg.FailOpen {
		return false
	}
	s.dropAt(c.In, dst, packet.ServiceDown, c.Frame, c.Now)
	return true
}

// applianceFrame runs the per-frame stages for a frame from an appliance
// port and reports whether it goes on through the forwarding core (the
// appliance's own frames). A frame that fails anti-spoofing is not
// dropped for it: fromAppliance decides whether it is a redirected flow's.
func (s *Switch) applianceFrame(l *stageList, c *FrameContext) bool {
	foreign := false
	for i := range l.perFrame {
		if l.perFrame[i].Name() == StagePortSecurity && c.In.binding.CheckEgress(c.Frame) != packet.OK {
			foreign = true
			continue
		}
		if !s.run(l.perFrame[i:i+1], c) {
			return false
		}
	}
	if foreign {
		s.fromAppliance(c)
		return false
	}
	return true
}

// fromAppliance delivers a frame with foreign addresses that an appliance
// port sent, if it belongs to a live flow redirected through a chain of
// that port and leaves by the port its direction expects (OutPort towards
// the server, InPort towards the client), to the flow's port on the other
// side; anything else is service_spoofed.
func (s *Switch) fromAppliance(c *FrameContext) {
	f, src, n := c.Frame, c.In, c.In.net
	if f.IPValid {
		if r, dir := n.redirects.find(f.Tuple); r != nil {
			ch := r.chain
			want, to := ch.out.Load(), r.server
			if dir == conntrack.Reply {
				want, to = ch.in.Load(), r.client
			}
			if want == src && !ch.deleted.Load() && !r.fl.Removed() {
				if dst := (*s.ports.Load())[to]; dst != nil && dst.net == n {
					dst.send(c.Raw)
				} else {
					s.drop(src, packet.PortDown, f, src, nil, c.Now)
				}
				return
			}
		}
	}
	s.drop(src, packet.ServiceSpoofed, f, src, nil, c.Now)
}

// ---- control plane ----

const kindChain = "service-chain"

// CreateChain validates, persists and installs a service chain.
func (s *Service) CreateChain(ctx context.Context, c ServiceChain) (ServiceChain, error) {
	if err := c.Validate(); err != nil {
		return c, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.chains[c.Name]; ok {
		return c, fmt.Errorf("service chain %q: %w", c.Name, store.ErrExists)
	}
	if _, ok := s.nets[c.Network]; !ok {
		return c, ferr("network", "network %q does not exist", c.Network)
	}
	for _, g := range []struct{ field, name string }{{"src_group", c.SrcGroup}, {"dst_group", c.DstGroup}} {
		if _, ok := s.groups[g.name]; g.name != "" && !ok {
			return c, ferr(g.field, "security group %q does not exist", g.name)
		}
	}
	if len(s.chains) >= MaxChains {
		return c, ferr("name", "%d service chains exist, at most %d", len(s.chains), MaxChains)
	}
	list := append(s.chainList(), c)
	blob, err := json.Marshal(c)
	if err != nil {
		return c, err
	}
	if err := s.st.CreateObject(ctx, kindChain, c.Name, blob); err != nil {
		return c, err
	}
	s.chains[c.Name] = c
	return c, s.sw.SetChains(list)
}

// DeleteChain removes a service chain; its flows go direct from their
// next frame.
func (s *Service) DeleteChain(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.chains[name]; !ok {
		return fmt.Errorf("service chain %q: %w", name, store.ErrNotFound)
	}
	if err := s.st.DeleteObject(ctx, kindChain, name); err != nil {
		return err
	}
	delete(s.chains, name)
	return s.sw.SetChains(s.chainList())
}

// Chains lists the service chains by name.
func (s *Service) Chains() []ServiceChain {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chainList()
}

func (s *Service) chainList() []ServiceChain {
	return sortedValues(s.chains, func(c ServiceChain) string { return c.Name })
}
