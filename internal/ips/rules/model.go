package rules

import (
	"regexp"
)

// Action is what a rule asks for when it matches.
type Action uint8

// Actions, in the order Suricata documents them.
const (
	ActionAlert Action = iota + 1
	ActionDrop
	ActionReject
	ActionPass
)

func (a Action) String() string {
	switch a {
	case ActionAlert:
		return "alert"
	case ActionDrop:
		return "drop"
	case ActionReject:
		return "reject"
	case ActionPass:
		return "pass"
	}
	return "unknown"
}

// Protocol is a rule header's protocol. The app-layer protocols (HTTP, DNS,
// TLS) mean "this transport carrying that protocol, as detected by the engine".
type Protocol uint8

// Supported header protocols. ProtoTCPPkt matches TCP packets only (never
// the reassembled stream); ProtoTCPStream matches the stream only.
const (
	ProtoIP Protocol = iota + 1
	ProtoTCP
	ProtoUDP
	ProtoICMP
	ProtoHTTP
	ProtoDNS
	ProtoTLS
	ProtoTCPPkt
	ProtoTCPStream
	ProtoPktHdr
)

var protoNames = map[string]Protocol{
	"ip": ProtoIP, "tcp": ProtoTCP, "udp": ProtoUDP, "icmp": ProtoICMP,
	"http": ProtoHTTP, "http1": ProtoHTTP, "dns": ProtoDNS, "tls": ProtoTLS,
	"tcp-pkt": ProtoTCPPkt, "tcp-stream": ProtoTCPStream, "pkthdr": ProtoPktHdr,
}

// knownUnsupportedProtos are protocols Suricata knows and this engine does
// not parse; rules for them are skipped with "protocol NAME".
var knownUnsupportedProtos = map[string]bool{
	"smtp": true, "ftp": true, "ftp-data": true, "smb": true, "ssh": true,
	"dcerpc": true, "imap": true, "pop3": true, "nfs": true, "krb5": true,
	"ntp": true, "dhcp": true, "snmp": true, "sip": true, "rdp": true,
	"rfb": true, "mqtt": true, "modbus": true, "dnp3": true, "enip": true,
	"ike": true, "http2": true, "quic": true, "tftp": true, "icmpv6": true,
	"icmpv4": true, "sctp": true, "ipv4": true, "ipv6": true, "ip4": true,
	"ip6": true, "telnet": true, "pgsql": true, "bittorrent-dht": true,
	"websocket": true, "ldap": true, "doh2": true, "arp": true, "template": true,
	"udp-pkt": true,
}

func (p Protocol) String() string {
	for n, q := range protoNames {
		if q == p && n != "http1" {
			return n
		}
	}
	return "unknown"
}

// AppProto reports the application protocol a header protocol implies, or
// AppNone for transport-level protocols.
func (p Protocol) AppProto() AppProto {
	switch p {
	case ProtoHTTP:
		return AppHTTP
	case ProtoDNS:
		return AppDNS
	case ProtoTLS:
		return AppTLS
	}
	return AppNone
}

// AppProto is an application-layer protocol the engine parses.
type AppProto uint8

// Application protocols.
const (
	AppNone AppProto = iota
	AppHTTP
	AppDNS
	AppTLS
)

func (a AppProto) String() string {
	return [...]string{"none", "http", "dns", "tls"}[a]
}

// Header is the part of a rule before the option list.
type Header struct {
	Action   Action
	Proto    Protocol
	Src, Dst AddrSet
	SrcPorts PortSet
	DstPorts PortSet
	// Bidirectional is true for "<>": the rule also matches with source
	// and destination swapped.
	Bidirectional bool
}

// Rule is one parsed, validated rule.
type Rule struct {
	Header
	SID, GID, Rev uint32
	Msg           string
	Classtype     string
	// Priority is the explicit priority keyword, else the classtype's
	// priority, else 3 (Suricata's default).
	Priority   int
	References []Reference
	Metadata   []MetaPair
	Target     Target
	// AppProto is the application protocol the rule needs: from the header
	// protocol or implied by its buffers (an http.uri in a "tcp" rule).
	AppProto AppProto

	Flow     Flow
	Flowbits []Flowbit
	// NoAlert: the rule sets state (flowbits) but never alerts.
	NoAlert bool
	// Threshold and DetectionFilter are nil when absent; a rule has at
	// most one of them.
	Threshold       *Threshold
	DetectionFilter *Threshold

	// Packet-level conditions; nil when absent.
	Dsize *IntMatch
	Flags *TCPFlags
	IType *IntMatch
	ICode *IntMatch
	// URILen is urilen: the length of the normalised URI, or of the raw
	// URI when URILenRaw; nil when absent.
	URILen    *IntMatch
	URILenRaw bool

	// Buffers lists each inspected buffer once, in the order the rule
	// first names it; matches inside a buffer are in rule order.
	Buffers []*BufferMatch

	// Fast is the content the prefilter indexes; nil when the rule has no
	// content at all (the engine must then evaluate it on every packet
	// its header selects).
	Fast *FastPattern

	// Raw is the rule text as given (one line, continuations joined).
	Raw string
}

// Reference is a reference:type,id option.
type Reference struct{ Type, ID string }

// MetaPair is one "key value" item of a metadata option.
type MetaPair struct{ Key, Value string }

// Target says which side of the rule is the target of the attack (EVE's
// alert.source/target); TargetNone when the rule does not say.
type Target uint8

// Targets.
const (
	TargetNone Target = iota
	TargetSrc
	TargetDst
)

// Flow holds the flow keyword's conditions. The zero value matches any.
type Flow struct {
	ToServer, ToClient bool
	Established        bool
	NotEstablished     bool
	Stateless          bool
	OnlyStream         bool
	NoStream           bool
	OnlyFrag, NoFrag   bool
}

// FlowbitCmd is a flowbits operation.
type FlowbitCmd uint8

// Flowbit operations.
const (
	FlowbitSet FlowbitCmd = iota + 1
	FlowbitIsSet
	FlowbitIsNotSet
	FlowbitUnset
	FlowbitToggle
)

func (c FlowbitCmd) String() string {
	return [...]string{"", "set", "isset", "isnotset", "unset", "toggle"}[c]
}

// Flowbit is one flowbits option. Names has several entries for the OR
// form of isset/isnotset ("isset,a|b": true when any is set) and the AND
// form ("isset,a&b": all must be set).
type Flowbit struct {
	Cmd   FlowbitCmd
	Names []string
	// And is true for the "a&b" form; false for a single name or "a|b".
	And bool
}

// ThresholdType is a threshold option's type.
type ThresholdType uint8

// Threshold types; detection_filter uses ThresholdDetectionFilter.
const (
	ThresholdLimit ThresholdType = iota + 1
	ThresholdThreshold
	ThresholdBoth
	ThresholdDetectionFilter
)

// Track says what a threshold counts per.
type Track uint8

// Tracking keys.
const (
	TrackBySrc Track = iota + 1
	TrackByDst
	TrackByRule
	TrackByBoth
	TrackByFlow
)

// Threshold is a threshold or detection_filter option.
type Threshold struct {
	Type    ThresholdType
	Track   Track
	Count   uint32
	Seconds uint32
	// UniqueOn is "src_port" or "dst_port" for detection_filter's
	// unique_on (count distinct ports), else "".
	UniqueOn string
}

// CmpOp is a numeric comparison.
type CmpOp uint8

// Comparisons of IntMatch. CmpRange is exclusive on both ends (A < x < B),
// as Suricata's "A<>B".
const (
	CmpEq CmpOp = iota + 1
	CmpNe
	CmpLt
	CmpLe
	CmpGt
	CmpGe
	CmpRange
)

// IntMatch is a numeric condition such as dsize:>10 or itype:3<>8.
type IntMatch struct {
	Op   CmpOp
	A, B uint64
}

// Match reports whether v satisfies the condition.
func (m IntMatch) Match(v uint64) bool {
	switch m.Op {
	case CmpEq:
		return v == m.A
	case CmpNe:
		return v != m.A
	case CmpLt:
		return v < m.A
	case CmpLe:
		return v <= m.A
	case CmpGt:
		return v > m.A
	case CmpGe:
		return v >= m.A
	case CmpRange:
		return v > m.A && v < m.B
	}
	return false
}

// TCP flag bits as on the wire.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
	TCPUrg = 0x20
	TCPEce = 0x40
	TCPCwr = 0x80
)

// FlagsMod is the flags keyword's modifier.
type FlagsMod uint8

// Modifiers: FlagsExact (no modifier) wants exactly Flags among the bits
// not in Ignore; FlagsAll ("+") wants all of Flags, others allowed;
// FlagsAny ("*") wants any of Flags; FlagsNot ("!") wants none of Flags.
const (
	FlagsExact FlagsMod = iota + 1
	FlagsAll
	FlagsAny
	FlagsNot
)

// TCPFlags is the flags keyword.
type TCPFlags struct {
	Mod    FlagsMod
	Flags  uint8
	Ignore uint8
}

// Match reports whether a TCP header's flag byte satisfies the condition.
func (f TCPFlags) Match(b uint8) bool {
	b &^= f.Ignore
	switch f.Mod {
	case FlagsExact:
		return b == f.Flags
	case FlagsAll:
		return b&f.Flags == f.Flags
	case FlagsAny:
		return b&f.Flags != 0
	case FlagsNot:
		return b&f.Flags == 0
	}
	return false
}

// Transform changes a sticky buffer before its matches run.
type Transform uint8

// Transforms supported.
const (
	TransformDotPrefix Transform = iota + 1
	TransformStripWhitespace
	TransformCompressWhitespace
	TransformToLower
	TransformToUpper
)

// BufferMatch is one inspected buffer of a rule and its ordered matches.
type BufferMatch struct {
	Buffer     Buffer
	Transforms []Transform
	// Bsize is the bsize condition on the buffer's length after
	// transforms; nil when absent.
	Bsize   *IntMatch
	Matches []Match
}

// MatchKind says which field of a Match is set.
type MatchKind uint8

// Match kinds.
const (
	MatchContent MatchKind = iota + 1
	MatchPCRE
	MatchByteTest
	MatchByteJump
	MatchIsDataAt
)

// Match is one step of a buffer's inspection; exactly the field named by
// Kind is non-nil. Steps run in order; a relative step starts from the end
// of the previous step's match (the "detection pointer").
type Match struct {
	Kind     MatchKind
	Content  *Content
	PCRE     *PCRE
	ByteTest *ByteTest
	ByteJump *ByteJump
	IsDataAt *IsDataAt
}

// Content is a content match with its modifiers resolved.
//
// Positions follow Suricata: Offset and Depth are absolute from the start
// of the buffer (the pattern must lie in [Offset, Offset+Depth)); Distance
// and Within are relative to the end of the previous match in the same
// buffer (the pattern must start at or after prev+Distance and end at or
// before prev+Distance+Within). The first relative match of a buffer is
// relative to its start. A rule has either the absolute or the relative
// pair for a content, never both.
type Content struct {
	Pattern  []byte
	Negated  bool
	Nocase   bool
	Rawbytes bool

	HasOffset, HasDepth    bool
	Offset, Depth          int32
	HasDistance, HasWithin bool
	Distance, Within       int32
	StartsWith, EndsWith   bool
	FastPattern            bool
	FastPatternOnly        bool
	HasChop                bool
	ChopOffset, ChopLength uint16
}

// Relative reports whether the content is anchored to the previous match.
func (c *Content) Relative() bool { return c.HasDistance || c.HasWithin }

// PCRE is a pcre option translated to Go's regexp syntax.
type PCRE struct {
	// Source is the option's value as written ("/re/flags").
	Source string
	// Expr is the translated expression Re was compiled from.
	Expr     string
	Re       *regexp.Regexp
	Negated  bool
	Relative bool
	Rawbytes bool
}

// Endian of byte_test/byte_jump reads.
type Endian uint8

// Byte orders; EndianBig is the default.
const (
	EndianBig Endian = iota + 1
	EndianLittle
)

// NumBase is the base of a byte_test/byte_jump "string" read.
type NumBase uint8

// Bases; NumBinary means the bytes are read as a binary integer.
const (
	NumBinary NumBase = iota
	NumDec
	NumHex
	NumOct
)

// ByteOp is byte_test's operator.
type ByteOp uint8

// byte_test operators.
const (
	ByteLT ByteOp = iota + 1
	ByteGT
	ByteEQ
	ByteLE
	ByteGE
	ByteAnd // value & operand != 0
	ByteXor // value ^ operand != 0
)

// ByteTest is byte_test: read NBytes at Offset (NBytes 0 with a string
// base reads all leading digits, as Suricata does) (relative to the previous
// match when Relative) and compare them with Value.
type ByteTest struct {
	NBytes   uint8
	Op       ByteOp
	Negated  bool
	Value    uint64
	Offset   int32
	Relative bool
	Endian   Endian
	Base     NumBase
	// Bitmask is applied (and the result shifted right by its trailing
	// zero count) before comparing; 0 means none.
	Bitmask uint32
}

// ByteJump is byte_jump: read NBytes at Offset, and move the detection
// pointer by the value (times Multiplier, aligned to 4 when Align, plus
// PostOffset), from the read's end, the buffer start (FromBeginning) or
// its end (FromEnd).
type ByteJump struct {
	NBytes        uint8
	Offset        int32
	Relative      bool
	Multiplier    uint32
	Endian        Endian
	Base          NumBase
	Align         bool
	FromBeginning bool
	FromEnd       bool
	PostOffset    int32
	Bitmask       uint32
}

// IsDataAt is isdataat: data exists at Offset (from the previous match when
// Relative); Negated inverts it.
type IsDataAt struct {
	Offset   uint32
	Relative bool
	Negated  bool
	Rawbytes bool
}

// FastPattern is the content a rule contributes to the prefilter.
type FastPattern struct {
	Buffer Buffer
	// Bytes is the pattern to index: the content, or its chop.
	Bytes  []byte
	Nocase bool
	// Negated: the only contents are negated, so the prefilter cannot
	// select this rule (the engine must treat it as always a candidate).
	Negated bool
	// Explicit: chosen by the fast_pattern keyword, not by the default
	// selection.
	Explicit bool
	// BufferIndex and MatchIndex locate the content in Rule.Buffers.
	BufferIndex, MatchIndex int
}
