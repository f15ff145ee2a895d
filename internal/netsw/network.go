package netsw

import (
	"fmt"
	"net/netip"
	"regexp"
)

// Network is an isolated L2 segment with a subnet. Frames never cross from
// one network to another inside the switch.
type Network struct {
	Name    string `json:"name"`
	Subnet  string `json:"subnet"`            // IPv4 CIDR, e.g. 10.10.0.0/24
	Gateway string `json:"gateway,omitempty"` // an address in Subnet, informational for guests
	// DefaultIngress is what a VM port does with new inbound flows no rule
	// matched: "same-group" (allow from members of any of the port's groups,
	// the default), "deny" or "allow".
	DefaultIngress string `json:"default_ingress,omitempty"`
	// DefaultEgress for new outbound flows no rule matched: "allow" (default) or "deny".
	DefaultEgress string `json:"default_egress,omitempty"`
	// StormPPS limits broadcast and multicast frames per VM port (frames/s,
	// burst of the same size). Default 100; 0 after normalisation never happens.
	StormPPS int     `json:"storm_pps,omitempty"`
	Uplink   *Uplink `json:"uplink,omitempty"`
	// VEPA (802.1Qbg Virtual Ethernet Port Aggregator): a frame from one
	// VM of the network to another is not delivered inside the switch but
	// sent out the uplink, after the receiver's firewall, inspection and
	// mirror stages, for the external switch to reflect (hairpin); the
	// switch accepts it back only as a frame it sent itself (vepa.go).
	// Needs an uplink. Default off.
	VEPA bool `json:"vepa,omitempty"`
}

// Uplink connects a network to the outside through a host interface.
type Uplink struct {
	// Kind "interface" binds a raw packet socket to an existing interface
	// (for example a veth whose peer is in another namespace); "tap" creates
	// or attaches the named TAP device and the host stack sees the network
	// through it.
	Kind      string `json:"kind"`
	Interface string `json:"interface"`
}

// Defaults applied by Normalize.
const (
	DefaultStormPPS = 100
	MaxStormPPS     = 1_000_000
)

var ifnameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// FieldError names the offending field of a switch object.
type FieldError struct{ Field, Msg string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func ferr(field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// ValidName checks an object name (network, group, IP set).
func ValidName(field, name string) error {
	if !nameRE.MatchString(name) {
		return ferr(field, "%q must be 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// Normalize fills defaults.
func (n *Network) Normalize() {
	if n.DefaultIngress == "" {
		n.DefaultIngress = "same-group"
	}
	if n.DefaultEgress == "" {
		n.DefaultEgress = "allow"
	}
	if n.StormPPS == 0 {
		n.StormPPS = DefaultStormPPS
	}
}

// Validate checks a normalized network.
func (n *Network) Validate() error {
	if err := ValidName("name", n.Name); err != nil {
		return err
	}
	p, err := netip.ParsePrefix(n.Subnet)
	if err != nil || !p.Addr().Is4() || p.Bits() > 30 || p.Bits() < 8 {
		return ferr("subnet", "%q must be an IPv4 CIDR between /8 and /30", n.Subnet)
	}
	if p.Masked() != p {
		return ferr("subnet", "%q has host bits set (did you mean %s?)", n.Subnet, p.Masked())
	}
	if n.Gateway != "" {
		g, err := netip.ParseAddr(n.Gateway)
		if err != nil || !p.Contains(g) {
			return ferr("gateway", "%q is not an address in %s", n.Gateway, n.Subnet)
		}
	}
	switch n.DefaultIngress {
	case "same-group", "deny", "allow":
	default:
		return ferr("default_ingress", "%q is not one of same-group, deny, allow", n.DefaultIngress)
	}
	switch n.DefaultEgress {
	case "allow", "deny":
	default:
		return ferr("default_egress", "%q is not one of allow, deny", n.DefaultEgress)
	}
	if n.StormPPS < 1 || n.StormPPS > MaxStormPPS {
		return ferr("storm_pps", "%d out of range 1..%d", n.StormPPS, MaxStormPPS)
	}
	if u := n.Uplink; u != nil {
		if u.Kind != "interface" && u.Kind != "tap" {
			return ferr("uplink.kind", "%q is not one of interface, tap", u.Kind)
		}
		if !ifnameRE.MatchString(u.Interface) {
			return ferr("uplink.interface", "%q is not an interface name", u.Interface)
		}
	}
	if n.VEPA && n.Uplink == nil {
		return ferr("vepa", "needs an uplink: the external switch on it reflects the frames between VMs")
	}
	return nil
}

// CheckAddress verifies that ip is a usable host address of the network.
func (n *Network) CheckAddress(ip string) error {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return fmt.Errorf("%q is not an IP address", ip)
	}
	p := netip.MustParsePrefix(n.Subnet)
	if !p.Contains(a) {
		return fmt.Errorf("%s is outside network %s (%s)", ip, n.Name, n.Subnet)
	}
	if a == p.Addr() || a == lastAddr(p) {
		return fmt.Errorf("%s is the network or broadcast address of %s", ip, n.Subnet)
	}
	if n.Gateway != "" && ip == n.Gateway {
		return fmt.Errorf("%s is the gateway of %s", ip, n.Name)
	}
	return nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
