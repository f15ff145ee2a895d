// Package portsec is the switch's port security: it checks that a frame a VM
// sends claims only the MAC and IP addresses bound to the VM's port (anti-
// spoofing for Ethernet, ARP, IPv4, IPv6 and Neighbor Discovery), refuses
// infrastructure roles a VM may not play (DHCP server, IPv6 router), and
// rate-limits the broadcast and multicast a port may flood (Storm).
//
// It is pure: frames come in already parsed by package packet, verdicts go
// out as packet.Reason, and the clock is an argument. Nothing allocates.
package portsec

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// MaxIPs bounds the addresses of one Binding. Ownership checks scan IPs
// linearly: with at most this many addresses a scan of a slice that sits in
// one or two cache lines beats any map or trie and never allocates.
const MaxIPs = 8

// Binding is what a VM port owns.
type Binding struct {
	MAC packet.MAC
	IPs []netip.Addr // IPv4 and/or IPv6 addresses assigned to the NIC
}

// Validate reports whether b can be enforced: a unicast, non-zero MAC, and at
// most MaxIPs addresses, each unicast, without zone, and IPv4 written as
// IPv4 (not IPv4-mapped IPv6). CheckEgress fails closed on a Binding that
// does not validate, but the switch should refuse to attach the port.
func (b *Binding) Validate() error {
	if b.MAC == (packet.MAC{}) || b.MAC.IsMulticast() {
		return fmt.Errorf("port binding: MAC %x is not a unicast address", b.MAC[:])
	}
	if len(b.IPs) > MaxIPs {
		return fmt.Errorf("port binding: %d addresses, at most %d", len(b.IPs), MaxIPs)
	}
	for _, ip := range b.IPs {
		switch {
		case !ip.IsValid():
			return errors.New("port binding: invalid (zero) address")
		case ip.Is4In6():
			return fmt.Errorf("port binding: address %s is IPv4-mapped; write it as IPv4", ip)
		case ip.Zone() != "":
			return fmt.Errorf("port binding: address %s has a zone", ip)
		case ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			return fmt.Errorf("port binding: address %s is not unicast", ip)
		}
	}
	return nil
}

// CheckEgress returns OK or a reason for a frame the VM sends. f must be a
// frame Parse accepted. In order:
//
//   - The Ethernet source must be the port's MAC (SpoofedMAC).
//   - ARP must name the port's MAC and one of its IPv4 addresses as sender;
//     an ARP probe (request from 0.0.0.0, RFC 5227) is allowed (SpoofedARP).
//     This blocks forged replies and gratuitous ARP for foreign addresses.
//   - A DHCP server's or relay's message (Frame.DHCPServer: from UDP port 67,
//     to port 68, or a BOOTREPLY with the DHCP magic cookie on any port) is
//     refused (RogueDHCP): a VM is never the network's DHCP service, which
//     can only sit behind the uplink, where this check does not run. Otherwise
//     the source must be bound, or 0.0.0.0 for a DHCP client's UDP 68→67
//     (SpoofedIP).
//   - IPv6 router advertisements (RogueRA) and DHCPv6 from port 547 or to
//     port 546 (RogueDHCP) are refused. The source must be bound, or the port's
//     EUI-64 link-local address, or :: for duplicate address detection (a
//     neighbour solicitation) and MLD reports (SpoofedIP).
//   - Neighbour advertisements must be for an owned target; solicitations
//     from :: (DAD) too, since a foreign DAD probe makes its owner give up
//     the address. Source and target link-layer address options in router
//     solicitations, neighbour solicitations and advertisements must be the
//     port's MAC, and the option list must be well formed (SpoofedND).
//
// Owned addresses are b.IPs plus, for IPv6, LinkLocal(b.MAC). A Binding with
// no IPs allows no IP source beyond the exceptions above.
func (b *Binding) CheckEgress(f *packet.Frame) packet.Reason {
	// A zero or group MAC in the binding must not turn into a wildcard.
	if f.Src != b.MAC || f.Src.IsMulticast() || f.Src == (packet.MAC{}) {
		return packet.SpoofedMAC
	}
	switch f.EtherType {
	case packet.EtherTypeARP:
		return b.checkARP(f)
	case packet.EtherTypeIPv4:
		if !f.IPValid {
			return packet.BadIPHeader
		}
		return b.checkIPv4(f)
	case packet.EtherTypeIPv6:
		if !f.IPValid {
			return packet.BadIPHeader
		}
		return b.checkIPv6(f)
	}
	return packet.UnknownEther
}

func (b *Binding) checkARP(f *packet.Frame) packet.Reason {
	if f.ARPSenderMAC != b.MAC {
		return packet.SpoofedARP
	}
	if f.ARPOp == packet.ARPRequest && f.ARPSenderIP == unspecified4 {
		return packet.OK // probe: updates no cache (RFC 5227 §2.1.1)
	}
	if !b.owns(f.ARPSenderIP) {
		return packet.SpoofedARP
	}
	return packet.OK
}

var unspecified4 = netip.IPv4Unspecified()

func (b *Binding) checkIPv4(f *packet.Frame) packet.Reason {
	if f.DHCPServer {
		return packet.RogueDHCP
	}
	t := &f.Tuple
	if b.owns(t.Src) {
		return packet.OK
	}
	if t.Src == unspecified4 && t.Proto == packet.ProtoUDP &&
		t.SrcPort == packet.DHCPv4ClientPort && t.DstPort == packet.DHCPv4ServerPort {
		return packet.OK // DHCPDISCOVER/REQUEST before the client has an address
	}
	return packet.SpoofedIP
}

func (b *Binding) checkIPv6(f *packet.Frame) packet.Reason {
	t := &f.Tuple
	icmp := t.Proto == packet.ProtoICMPv6
	if icmp && f.ICMPType == packet.ICMPv6RouterAdvert {
		return packet.RogueRA
	}
	if f.DHCPServer {
		return packet.RogueDHCP
	}
	linkLocal := LinkLocal(b.MAC)
	switch {
	case t.Src == linkLocal || b.owns(t.Src):
	case t.Src.IsUnspecified() && icmp && (f.ICMPType == packet.ICMPv6NeighborSolicit ||
		f.ICMPType == packet.ICMPv6MLDv1Report || f.ICMPType == packet.ICMPv6MLDv2Report):
		// RFC 4862 §5.4.2 (DAD) and RFC 3810 §5.2.13 (MLD before an address).
	default:
		return packet.SpoofedIP
	}
	if !icmp {
		return packet.OK
	}
	var opts []byte // ND options, after the fixed part of the message
	switch f.ICMPType {
	case packet.ICMPv6NeighborAdvert:
		if f.NDTarget != linkLocal && !b.owns(f.NDTarget) {
			return packet.SpoofedND
		}
		opts = f.L4[ndFixedLen:]
	case packet.ICMPv6NeighborSolicit:
		if t.Src.IsUnspecified() && f.NDTarget != linkLocal && !b.owns(f.NDTarget) {
			return packet.SpoofedND
		}
		opts = f.L4[ndFixedLen:]
	case packet.ICMPv6RouterSolicit:
		opts = f.L4[rsFixedLen:]
	default:
		return packet.OK
	}
	if !linkAddrOptionsAre(opts, b.MAC) {
		return packet.SpoofedND
	}
	return packet.OK
}

// Lengths of the fixed parts of ND messages (RFC 4861 §4); Parse guarantees
// L4 holds at least these for the types that use them.
const (
	rsFixedLen = 8  // type, code, checksum, reserved
	ndFixedLen = 24 // type, code, checksum, flags/reserved, target
)

// ND option types carrying a link-layer address (RFC 4861 §4.6.1).
const (
	optSourceLinkAddr = 1
	optTargetLinkAddr = 2
)

// linkAddrOptionsAre reports whether the ND option list opts is well formed
// and every source or target link-layer address option in it is mac.
// Receivers drop a message with a malformed list (RFC 4861 §4.6), so there
// is no legitimate one to pass; and checking every option, not just the
// first, leaves nothing for a receiver that prefers a later duplicate.
// Each option is at least 8 bytes, so the loop runs at most MaxFrame/8 times.
func linkAddrOptionsAre(opts []byte, mac packet.MAC) bool {
	for len(opts) > 0 {
		if len(opts) < 2 {
			return false
		}
		n := int(opts[1]) * 8
		if n == 0 || n > len(opts) {
			return false
		}
		if (opts[0] == optSourceLinkAddr || opts[0] == optTargetLinkAddr) && packet.MAC(opts[2:8]) != mac {
			return false
		}
		opts = opts[n:]
	}
	return true
}

// Owns reports whether a is one of the port's unicast addresses: a bound
// address or its EUI-64 link-local address.
func (b *Binding) Owns(a netip.Addr) bool {
	return b.owns(a) || (a.Is6() && a == LinkLocal(b.MAC))
}

// owns reports whether a is one of b's addresses; see MaxIPs for why a scan.
func (b *Binding) owns(a netip.Addr) bool {
	for _, ip := range b.IPs {
		if ip == a {
			return true
		}
	}
	return false
}

// LinkLocal returns the IPv6 link-local address a NIC with this MAC forms
// with modified EUI-64 (RFC 4291 appendix A): fe80::/64, then the MAC with
// ff:fe in the middle and the universal/local bit flipped. Guests that form
// link-local addresses otherwise (RFC 7217 stable privacy, the default of
// NetworkManager and systemd-networkd on some distributions) must have the
// address bound explicitly, or their link-local traffic is SpoofedIP.
func LinkLocal(mac packet.MAC) netip.Addr {
	return netip.AddrFrom16([16]byte{
		0xfe, 0x80, 0, 0, 0, 0, 0, 0,
		mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5],
	})
}
