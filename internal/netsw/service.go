package netsw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/bulwark-project/bulwark/internal/netsw/firewall"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/store"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Object kinds in the store.
const (
	kindNetwork = "network"
	kindGroup   = "security-group"
	kindIPSet   = "ip-set"
)

// ErrInUse says an object is still referenced.
var ErrInUse = errors.New("in use")

// ObjectStore is the part of the store the service persists to.
type ObjectStore interface {
	CreateObject(ctx context.Context, kind, name string, spec []byte) error
	UpdateObject(ctx context.Context, kind, name string, spec []byte) error
	GetObject(ctx context.Context, kind, name string) (*store.Object, error)
	ListObjects(ctx context.Context, kind string) ([]*store.Object, error)
	DeleteObject(ctx context.Context, kind, name string) error
	ListVMs(ctx context.Context) ([]*vm.VM, error)
}

// Service is the switch's control plane: it validates and persists
// networks, security groups and IP sets, keeps the running switch in step,
// and attaches VM NICs to ports.
type Service struct {
	sw      *Switch
	st      ObjectStore
	log     *slog.Logger
	portDir string

	mu     sync.Mutex // serialises configuration changes; fields below
	groups map[string]firewall.Group
	ipsets map[string]firewall.IPSet
	nets   map[string]Network
	chains map[string]ServiceChain
}

// NewService loads the stored configuration into sw. portDir holds the
// switch's port sockets (it must be traversable by VM uids).
func NewService(ctx context.Context, sw *Switch, st ObjectStore, portDir string, log *slog.Logger) (*Service, error) {
	if err := os.MkdirAll(portDir, 0o711); err != nil {
		return nil, err
	}
	if err := os.Chmod(portDir, 0o711); err != nil {
		return nil, err
	}
	s := &Service{sw: sw, st: st, log: log, portDir: portDir,
		groups: map[string]firewall.Group{}, ipsets: map[string]firewall.IPSet{}, nets: map[string]Network{},
		chains: map[string]ServiceChain{}}
	if err := store.LoadObjects(ctx, st, kindGroup, func(g firewall.Group) { s.groups[g.Name] = g }); err != nil {
		return nil, err
	}
	if err := store.LoadObjects(ctx, st, kindIPSet, func(x firewall.IPSet) { s.ipsets[x.Name] = x }); err != nil {
		return nil, err
	}
	var nets []Network
	if err := store.LoadObjects(ctx, st, kindNetwork, func(n Network) { nets = append(nets, n) }); err != nil {
		return nil, err
	}
	for _, n := range nets {
		s.nets[n.Name] = n
		if err := sw.AddNetwork(n); err != nil {
			// Keep the network (its VMs' ports still work); report the uplink.
			log.Error("network uplink unavailable", "network", n.Name, "err", err)
			n.Uplink = nil
			if err := sw.AddNetwork(n); err != nil {
				return nil, err
			}
		}
	}
	if err := sw.SetFirewall(s.groupList(nil), s.ipsetList(nil)); err != nil {
		return nil, fmt.Errorf("stored firewall configuration does not compile: %w", err)
	}
	if err := store.LoadObjects(ctx, st, kindChain, func(c ServiceChain) { s.chains[c.Name] = c }); err != nil {
		return nil, err
	}
	if err := sw.SetChains(s.chainList()); err != nil {
		return nil, fmt.Errorf("stored service chains: %w", err)
	}
	return s, nil
}

// Switch returns the running switch.
func (s *Service) Switch() *Switch { return s.sw }

// groupList returns the groups sorted by name, with override replacing or
// adding one (nil: none) — the candidate configuration of a change.
func (s *Service) groupList(override *firewall.Group) []firewall.Group {
	m := map[string]firewall.Group{}
	for k, v := range s.groups {
		m[k] = v
	}
	if override != nil {
		m[override.Name] = *override
	}
	return sortedValues(m, func(g firewall.Group) string { return g.Name })
}

func (s *Service) ipsetList(override *firewall.IPSet) []firewall.IPSet {
	m := map[string]firewall.IPSet{}
	for k, v := range s.ipsets {
		m[k] = v
	}
	if override != nil {
		m[override.Name] = *override
	}
	return sortedValues(m, func(x firewall.IPSet) string { return x.Name })
}

// ---- networks ----

// CreateNetwork validates, installs and persists a network.
func (s *Service) CreateNetwork(ctx context.Context, n Network) (Network, error) {
	n.Normalize()
	if err := n.Validate(); err != nil {
		return n, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.nets[n.Name]; ok {
		return n, fmt.Errorf("network %q: %w", n.Name, store.ErrExists)
	}
	if err := s.sw.AddNetwork(n); err != nil {
		return n, &FieldError{Field: "uplink", Msg: err.Error()}
	}
	blob, _ := json.Marshal(n)
	if err := s.st.CreateObject(ctx, kindNetwork, n.Name, blob); err != nil {
		s.sw.RemoveNetwork(n.Name)
		return n, err
	}
	s.nets[n.Name] = n
	return n, nil
}

// Networks lists networks.
func (s *Service) Networks() []Network {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedValues(s.nets, func(n Network) string { return n.Name })
}

// Network returns one network.
func (s *Service) Network(name string) (Network, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nets[name]
	if !ok {
		return n, fmt.Errorf("network %q: %w", name, store.ErrNotFound)
	}
	return n, nil
}

// SetVEPA turns a network's VEPA mode on or off (Network.VEPA, vepa.go):
// it validates the changed network (VEPA needs an uplink), persists it,
// then applies it to the running switch.
func (s *Service) SetVEPA(ctx context.Context, network string, on bool) (Network, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nets[network]
	if !ok {
		return n, fmt.Errorf("network %q: %w", network, store.ErrNotFound)
	}
	n.VEPA = on
	if err := n.Validate(); err != nil {
		return s.nets[network], err
	}
	blob, err := json.Marshal(n)
	if err != nil {
		return n, err
	}
	if err := s.st.UpdateObject(ctx, kindNetwork, network, blob); err != nil {
		return s.nets[network], err
	}
	s.nets[network] = n
	return n, s.sw.SetNetworkVEPA(network, on)
}

// DeleteNetwork removes a network no VM or service chain refers to.
func (s *Service) DeleteNetwork(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.nets[name]; !ok {
		return fmt.Errorf("network %q: %w", name, store.ErrNotFound)
	}
	for _, c := range s.chainList() {
		if c.Network == name {
			return fmt.Errorf("network %q is used by service chain %q: %w", name, c.Name, ErrInUse)
		}
	}
	vms, err := s.st.ListVMs(ctx)
	if err != nil {
		return err
	}
	for _, v := range vms {
		for _, nic := range v.Spec.NICs {
			if nic.Network == name {
				return fmt.Errorf("network %q is used by vm %q: %w", name, v.Spec.Name, ErrInUse)
			}
		}
	}
	if err := s.sw.RemoveNetwork(name); err != nil {
		return fmt.Errorf("%v: %w", err, ErrInUse)
	}
	if err := s.st.DeleteObject(ctx, kindNetwork, name); err != nil {
		return err
	}
	delete(s.nets, name)
	return nil
}

// ---- NICs of VMs ----

// PrepareNICs checks a VM's NICs against the networks and groups and fills
// in missing IP addresses (lowest free address of the subnet).
func (s *Service) PrepareNICs(ctx context.Context, spec *vm.Spec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	vms, err := s.st.ListVMs(ctx)
	if err != nil {
		return err
	}
	used := map[string]map[netip.Addr]string{} // network -> ip -> vm
	macs := map[string]string{}                // network+mac -> vm
	for _, v := range vms {
		if v.Spec.Name == spec.Name {
			continue
		}
		for _, nic := range v.Spec.NICs {
			macs[nic.Network+"/"+nic.MAC] = v.Spec.Name
			if a, err := netip.ParseAddr(nic.IP); err == nil && nic.Network != "" {
				if used[nic.Network] == nil {
					used[nic.Network] = map[netip.Addr]string{}
				}
				used[nic.Network][a] = v.Spec.Name
			}
		}
	}
	for i := range spec.NICs {
		nic := &spec.NICs[i]
		if err := s.prepareNIC(i, nic, used); err != nil {
			return err
		}
		if nic.Network == "" {
			continue
		}
		if other, ok := macs[nic.Network+"/"+nic.MAC]; ok {
			return &vm.FieldError{Field: fmt.Sprintf("nics[%d].mac", i), Msg: fmt.Sprintf("%s is already used on network %s by vm %q", nic.MAC, nic.Network, other)}
		}
		macs[nic.Network+"/"+nic.MAC] = "this VM"
	}
	return nil
}

func (s *Service) prepareNIC(i int, nic *vm.NIC, used map[string]map[netip.Addr]string) error {
	if nic.Network == "" {
		return nil
	}
	f := fmt.Sprintf("nics[%d]", i)
	n, ok := s.nets[nic.Network]
	if !ok {
		return &vm.FieldError{Field: f + ".network", Msg: fmt.Sprintf("network %q does not exist", nic.Network)}
	}
	for j, g := range nic.Groups {
		if _, ok := s.groups[g]; !ok {
			return &vm.FieldError{Field: fmt.Sprintf("%s.groups[%d]", f, j), Msg: fmt.Sprintf("security group %q does not exist", g)}
		}
	}
	if used[n.Name] == nil {
		used[n.Name] = map[netip.Addr]string{}
	}
	if nic.IP == "" {
		a, err := freeAddress(n, used[n.Name])
		if err != nil {
			return &vm.FieldError{Field: f + ".ip", Msg: err.Error()}
		}
		nic.IP = a.String()
	}
	if err := n.CheckAddress(nic.IP); err != nil {
		return &vm.FieldError{Field: f + ".ip", Msg: err.Error()}
	}
	a := netip.MustParseAddr(nic.IP)
	if other, ok := used[n.Name][a]; ok {
		return &vm.FieldError{Field: f + ".ip", Msg: fmt.Sprintf("%s is already used by vm %q", a, other)}
	}
	used[n.Name][a] = "this VM"
	return nil
}

// freeAddress scans at most 65536 addresses of the subnet.
func freeAddress(n Network, used map[netip.Addr]string) (netip.Addr, error) {
	p := netip.MustParsePrefix(n.Subnet)
	a := p.Addr().Next()
	for i := 0; i < 1<<16 && p.Contains(a); i, a = i+1, a.Next() {
		if _, taken := used[a]; !taken && n.CheckAddress(a.String()) == nil {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address in %s", n.Subnet)
}

// SocketPath is the switch's socket for one VM NIC.
func (s *Service) SocketPath(vmName string, nic int) string {
	return filepath.Join(s.portDir, fmt.Sprintf("%s.%d.sock", vmName, nic))
}

// Attach creates the switch ports of a VM's NICs before its hypervisor
// starts and returns, per NIC, the socket it must send frames to ("" for
// NICs not on a network).
func (s *Service) Attach(vmName string, uid int, runDir string, nics []vm.NIC) ([]string, error) {
	remotes := make([]string, len(nics))
	for i, nic := range nics {
		if nic.Network == "" {
			continue
		}
		hw, err := net.ParseMAC(nic.MAC)
		if err != nil {
			s.sw.DetachVM(vmName)
			return nil, err
		}
		var mac packet.MAC
		copy(mac[:], hw)
		var ips []netip.Addr
		if a, err := netip.ParseAddr(nic.IP); err == nil {
			ips = append(ips, a)
		}
		spec := VMPortSpec{VM: vmName, NIC: i, Network: nic.Network, MAC: mac, IPs: ips, Groups: nic.Groups,
			Socket: s.SocketPath(vmName, i), Peer: filepath.Join(runDir, fmt.Sprintf("net%d.sock", i)), UID: uid}
		if nic.Rate != nil {
			spec.Rate.NICRate = *nic.Rate
		}
		if _, err := s.sw.AttachVMPort(spec); err != nil {
			s.sw.DetachVM(vmName)
			return nil, fmt.Errorf("nic %d: %w", i, err)
		}
		remotes[i] = spec.Socket
	}
	return remotes, nil
}

// Detach removes a VM's ports.
func (s *Service) Detach(vmName string) { s.sw.DetachVM(vmName) }
