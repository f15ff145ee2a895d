package packet

// Protocol constants the pipeline looks at. Implementation limits live in
// frame.go (MinFrame, MaxFrame).

// ARP operations.
const (
	ARPRequest = 1
	ARPReply   = 2
)

// ICMPv4 types.
const (
	ICMPv4EchoReply    = 0
	ICMPv4Unreachable  = 3
	ICMPv4EchoRequest  = 8
	ICMPv4TimeExceeded = 11
	ICMPv4ParamProblem = 12
)

// ICMPv4 destination-unreachable codes a REJECT may use.
const (
	ICMPv4HostUnreachable = 1
	ICMPv4PortUnreachable = 3
	ICMPv4AdminProhibited = 13 // RFC 1812: communication administratively prohibited
)

// ICMPv6 destination-unreachable codes a REJECT may use (RFC 4443 §3.1).
const (
	ICMPv6AdminProhibited = 1 // communication with destination administratively prohibited
	ICMPv6PortUnreachable = 4
)

// ICMPv6 types (RFC 4443, RFC 4861, RFC 2710, RFC 3810).
const (
	ICMPv6Unreachable     = 1
	ICMPv6PacketTooBig    = 2
	ICMPv6TimeExceeded    = 3
	ICMPv6ParamProblem    = 4
	ICMPv6EchoRequest     = 128
	ICMPv6EchoReply       = 129
	ICMPv6MLDv1Report     = 131
	ICMPv6RouterSolicit   = 133
	ICMPv6RouterAdvert    = 134
	ICMPv6NeighborSolicit = 135
	ICMPv6NeighborAdvert  = 136
	ICMPv6MLDv2Report     = 143
)

// UDP ports of DHCP. Servers and relay agents send from the server port.
const (
	DHCPv4ServerPort = 67
	DHCPv4ClientPort = 68
	DHCPv6ClientPort = 546
	DHCPv6ServerPort = 547
)

// BOOTP/DHCPv4 message layout (RFC 951, RFC 2131 §2): op is the first byte,
// the magic cookie follows the 236-byte fixed part.
const (
	bootReply       = 2 // op of server messages (BOOTREQUEST is 1)
	bootpCookieEnd  = 240
	dhcpMagicCookie = 0x63825363
)

// Header sizes.
const (
	ethHeaderLen  = 14
	arpLen        = 28 // Ethernet/IPv4 ARP body
	ipv4MinHeader = 20
	ipv6HeaderLen = 40
	tcpMinHeader  = 20
	udpHeaderLen  = 8
	icmpHeaderLen = 8  // type, code, checksum, 4 bytes of "rest of header"
	ndMinLen      = 24 // ICMPv6 header, 4 reserved/flag bytes, 16-byte target
	quotedL4Len   = 8  // bytes of the offending transport header an ICMP error quotes
)

// IPv4 flags/fragment-offset field.
const (
	ipv4DF         = 0x4000
	ipv4MF         = 0x2000
	ipv4OffsetMask = 0x1fff
)

// isIPv6ExtHeader reports whether next is an IPv6 extension header (RFC 8200
// §4 and the IANA list), including ESP and AH. The parser does not walk
// extension chains: a guest can make them arbitrarily long and they hide the
// transport header from the firewall, so they are dropped.
func isIPv6ExtHeader(next uint8) bool {
	switch next {
	case 0, // hop-by-hop options
		43,       // routing
		44,       // fragment
		50,       // ESP
		51,       // AH
		60,       // destination options
		135,      // mobility
		139,      // HIP
		140,      // shim6
		253, 254: // experimentation
		return true
	}
	return false
}
