package firewall

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
)

// Direction says which way a rule applies, relative to the port.
type Direction uint8

// Directions. The zero value is unset and fails validation, so a rule that
// forgot its direction is an error rather than a guess.
const (
	Ingress Direction = iota + 1 // traffic to the port
	Egress                       // traffic from the port
)

// Action is what a rule does with a flow it matches.
type Action uint8

// Actions. The zero value is unset: it fails validation in a rule, and in
// Defaults.Egress it means the default, Allow.
const (
	Allow  Action = iota + 1
	Drop          // discard silently
	Reject        // discard and answer with a TCP RST or ICMP unreachable
)

// Proto is the protocol a rule matches.
type Proto uint8

// Protocols. ICMP matches ICMPv4 and ICMPv6.
const (
	Any Proto = iota
	TCP
	UDP
	ICMP
)

// DefaultIngress is what happens to ingress traffic that no rule matched.
type DefaultIngress uint8

// Default ingress policies.
const (
	SameGroup DefaultIngress = iota // allow members of the port's groups on its network, deny the rest
	DenyAll
	AllowAll
)

var (
	directionNames = []string{Ingress: "ingress", Egress: "egress"}
	actionNames    = []string{Allow: "allow", Drop: "drop", Reject: "reject"}
	protoNames     = []string{Any: "any", TCP: "tcp", UDP: "udp", ICMP: "icmp"}
	ingressNames   = []string{SameGroup: "same_group", DenyAll: "deny", AllowAll: "allow"}
)

func name(names []string, v uint8, kind string) string {
	if int(v) < len(names) && names[v] != "" {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", kind, v)
}

func marshal(names []string, v uint8, kind string) ([]byte, error) {
	if int(v) < len(names) && names[v] != "" {
		return []byte(names[v]), nil
	}
	return nil, fmt.Errorf("invalid %s %d", kind, v)
}

func unmarshal(names []string, text []byte, kind string) (uint8, error) {
	for i, n := range names {
		if n != "" && string(text) == n {
			return uint8(i), nil
		}
	}
	var want bytes.Buffer
	for _, n := range names {
		if n != "" {
			if want.Len() > 0 {
				want.WriteString(", ")
			}
			want.WriteString(n)
		}
	}
	return 0, fmt.Errorf("unknown %s %q (want one of %s)", kind, text, want.String())
}

func (d Direction) String() string { return name(directionNames, uint8(d), "direction") }
func (a Action) String() string    { return name(actionNames, uint8(a), "action") }
func (p Proto) String() string     { return name(protoNames, uint8(p), "protocol") }
func (d DefaultIngress) String() string {
	return name(ingressNames, uint8(d), "default ingress")
}

// MarshalText implements encoding.TextMarshaler.
func (d Direction) MarshalText() ([]byte, error) {
	return marshal(directionNames, uint8(d), "direction")
}

// MarshalText implements encoding.TextMarshaler.
func (a Action) MarshalText() ([]byte, error) { return marshal(actionNames, uint8(a), "action") }

// MarshalText implements encoding.TextMarshaler.
func (p Proto) MarshalText() ([]byte, error) { return marshal(protoNames, uint8(p), "protocol") }

// MarshalText implements encoding.TextMarshaler.
func (d DefaultIngress) MarshalText() ([]byte, error) {
	return marshal(ingressNames, uint8(d), "default ingress")
}

// UnmarshalText accepts "ingress" or "egress".
func (d *Direction) UnmarshalText(b []byte) error {
	v, err := unmarshal(directionNames, b, "direction")
	*d = Direction(v)
	return err
}

// UnmarshalText accepts "allow", "drop" or "reject".
func (a *Action) UnmarshalText(b []byte) error {
	v, err := unmarshal(actionNames, b, "action")
	*a = Action(v)
	return err
}

// UnmarshalText accepts "any", "tcp", "udp" or "icmp".
func (p *Proto) UnmarshalText(b []byte) error {
	v, err := unmarshal(protoNames, b, "protocol")
	*p = Proto(v)
	return err
}

// UnmarshalText accepts "same_group", "deny" or "allow".
func (d *DefaultIngress) UnmarshalText(b []byte) error {
	v, err := unmarshal(ingressNames, b, "default ingress")
	*d = DefaultIngress(v)
	return err
}

// Rule is one security-group rule. See Validate for the constraints.
type Rule struct {
	ID        string    `json:"id"` // stable id, unique within its group
	Direction Direction `json:"direction"`
	Action    Action    `json:"action"`
	Proto     Proto     `json:"protocol"`
	// PortMin and PortMax bound the destination port for TCP and UDP,
	// inclusive; 0,0 means any port.
	PortMin uint16 `json:"port_min,omitempty"`
	PortMax uint16 `json:"port_max,omitempty"`
	// ICMPType is the ICMP (or ICMPv6) type an ICMP rule matches, or -1 for
	// any. Type numbers differ between the families (echo request is 8 in
	// ICMPv4, 128 in ICMPv6); a rule matches packets of either family that
	// carry its number. Rules for other protocols leave it 0 or -1. When
	// decoded from JSON an absent icmp_type is -1.
	ICMPType int `json:"icmp_type"`
	// At most one remote may be set; none means any address.
	RemoteCIDR  string `json:"remote_cidr,omitempty"`
	RemoteIPSet string `json:"remote_ip_set,omitempty"`
	RemoteGroup string `json:"remote_group,omitempty"`
	Description string `json:"description,omitempty"`
}

// UnmarshalJSON decodes a rule strictly: unknown fields and enum words are
// errors, direction and action are required, and icmp_type defaults to -1.
func (r *Rule) UnmarshalJSON(b []byte) error {
	type plain Rule // without this method
	v := plain{ICMPType: -1}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("rule: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("rule: trailing data")
	}
	switch {
	case v.Direction == 0:
		return fmt.Errorf("rule %q: direction: required (ingress or egress)", v.ID)
	case v.Action == 0:
		return fmt.Errorf("rule %q: action: required (allow, drop or reject)", v.ID)
	}
	*r = Rule(v)
	return nil
}

// MarshalJSON writes icmp_type only for ICMP rules, where it means something.
func (r Rule) MarshalJSON() ([]byte, error) {
	type plain Rule // without this method
	v := struct {
		plain
		ICMPType *int `json:"icmp_type,omitempty"` // shadows plain's
	}{plain: plain(r)}
	if r.Proto == ICMP {
		v.ICMPType = &r.ICMPType
	}
	return json.Marshal(v)
}

// Group is a named, ordered list of rules.
type Group struct {
	Name        string `json:"name"` // lower-case DNS label
	Description string `json:"description,omitempty"`
	Rules       []Rule `json:"rules"`
}

// IPSet is a named list of prefixes that rules can reference.
type IPSet struct {
	Name  string   `json:"name"`  // lower-case DNS label
	CIDRs []string `json:"cidrs"` // canonical prefixes, e.g. "10.0.0.0/8", "192.0.2.7/32"
}

// Port is a VM NIC's membership: its addresses (what remote groups and the
// same-group default match) and its groups, in evaluation order.
type Port struct {
	ID      int32
	Network string
	IPs     []netip.Addr
	Groups  []string
}

// Defaults is a network's policy for traffic no rule matched. The zero
// value is the documented default: SameGroup ingress, Allow egress.
type Defaults struct {
	Ingress DefaultIngress `json:"ingress"`
	Egress  Action         `json:"egress,omitempty"` // 0 means Allow
}

// Config is everything Compile needs. Networks missing from NetworkDefaults
// get the zero Defaults.
type Config struct {
	Groups          []Group
	IPSets          []IPSet
	Ports           []Port
	NetworkDefaults map[string]Defaults
}
