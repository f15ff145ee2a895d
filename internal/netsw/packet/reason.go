package packet

// Reason says why the switch dropped (or rejected) a frame. Counters, logs
// and metrics are keyed by it. The zero value means "not dropped".
type Reason uint8

// Drop reasons, grouped by the pipeline stage that gives them.
const (
	OK Reason = iota

	// Parsing (package packet).
	TooShort        // shorter than its headers claim
	TooLong         // over MaxFrame (jumbo)
	VLANTagged      // 802.1Q/802.1ad tag from a guest
	UnknownEther    // EtherType the switch does not forward
	BadARP          // ARP not Ethernet/IPv4 or truncated
	BadIPHeader     // version, IHL or total length inconsistent
	IPFragment      // IPv4 fragment (MF set or offset != 0)
	IPv6ExtHeader   // IPv6 extension header chain
	TruncatedL4     // transport header cut short
	BadICMPEmbedded // ICMP error whose quoted packet is malformed

	// Port security (package portsec).
	SpoofedMAC   // source MAC is not the port's
	SpoofedIP    // source IP is not bound to the port
	SpoofedARP   // ARP claiming an address the port does not own
	SpoofedND    // IPv6 neighbour advertisement for a foreign address
	RogueDHCP    // DHCP server reply from a VM
	RogueRA      // IPv6 router advertisement from a VM
	StormControl // broadcast/multicast (or unknown unicast to an uplink) over the port's rate
	PortDown     // destination port gone

	// L2 forwarding.
	UnknownUnicast // unicast to a MAC no port has, where flooding it would reach only bystanders

	// Connection tracking (package conntrack).
	CTInvalid // packet that fits no state (e.g. mid-stream ACK with no flow)
	CTFull    // flow table full and nothing evictable
	CTQuota   // the sending port already holds its share of the flow table

	// ICMP errors (destination unreachable, time exceeded, ...), judged by
	// the flow they quote.
	ICMPUnrelated // quotes no tracked flow of its recipient
	ICMPForeign   // quotes a flow but comes from neither its peer nor a router it crossed
	ICMPErrorRate // the sender's ICMP errors over their rate

	// Firewall (package firewall).
	FWDrop    // a drop rule matched
	FWReject  // a reject rule matched (a TCP RST or ICMP unreachable was sent)
	FWDefault // no rule matched and the default policy denies
	FWRevoked // an established flow no longer allowed after a rule change

	// Rate limits of a VM's NIC (package ratelimit).
	RateEgress  // the VM sent faster than its NIC's egress bits/s or packets/s
	RateIngress // frames for the VM arrived faster than its ingress limit

	// Intrusion prevention (package ipsstage), in block mode.
	IPSDrop        // a drop or reject rule matched (a reject also answered the sender)
	IPSFlowBlocked // a later packet of a flow dropped for a rule
	IPSStream      // a TCP segment the IPS reassembler refused (e.g. overlapping with different data)
	IPSOverload    // not inspected: the IPS was overloaded and the network fails closed

	// Traffic mirroring (package mirror).
	MirrorPortTx // a frame sent by a mirror session's monitor port, which only receives

	// VEPA and service insertion (issue 15, item 7).
	VEPASpoofed    // from the uplink with a local VM's source MAC, but not a frame the switch sent out for hairpin
	ServiceSpoofed // from an appliance port with foreign addresses, but not a redirected flow leaving the expected port
	ServiceDown    // a service chain's appliance port is absent or down and the chain does not fail open

	// Response to an introspection finding (issue 16).
	Quarantined // to or from a VM whose ports a response isolated (netsw.SetPortQuarantine)

	numReasons
)

var reasonNames = [numReasons]string{
	OK: "ok", TooShort: "too_short", TooLong: "too_long", VLANTagged: "vlan_tagged",
	UnknownEther: "unknown_ethertype", BadARP: "bad_arp", BadIPHeader: "bad_ip_header",
	IPFragment: "ip_fragment", IPv6ExtHeader: "ipv6_ext_header", TruncatedL4: "truncated_l4",
	BadICMPEmbedded: "bad_icmp_embedded",
	SpoofedMAC:      "spoofed_mac", SpoofedIP: "spoofed_ip", SpoofedARP: "spoofed_arp", SpoofedND: "spoofed_nd",
	RogueDHCP: "rogue_dhcp", RogueRA: "rogue_ra", StormControl: "storm_control", PortDown: "port_down",
	UnknownUnicast: "unknown_unicast",
	CTInvalid:      "ct_invalid", CTFull: "ct_full", CTQuota: "ct_port_quota",
	ICMPUnrelated: "icmp_error_unrelated", ICMPForeign: "icmp_error_foreign", ICMPErrorRate: "icmp_error_rate",
	FWDrop: "fw_drop", FWReject: "fw_reject", FWDefault: "fw_default_deny", FWRevoked: "fw_revoked",
	RateEgress: "rate_egress", RateIngress: "rate_ingress",
	IPSDrop: "ips_drop", IPSFlowBlocked: "ips_flow_blocked", IPSStream: "ips_stream", IPSOverload: "ips_overload",
	MirrorPortTx: "mirror_port_tx",
	VEPASpoofed:  "vepa_spoofed", ServiceSpoofed: "service_spoofed", ServiceDown: "service_down",
	Quarantined: "quarantined",
}

// String returns the reason's metric label.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// NumReasons is the number of defined reasons, for counter arrays.
const NumReasons = int(numReasons)
