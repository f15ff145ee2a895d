package rules

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Vars maps rule variables (without the "$") to their values, which are
// themselves address or port expressions and may name other variables.
type Vars map[string]string

// DefaultVars returns the address and port groups of Suricata's default
// suricata.yaml. Callers should replace HOME_NET with the networks they
// protect.
func DefaultVars() Vars {
	return Vars{
		"HOME_NET":        "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]",
		"EXTERNAL_NET":    "!$HOME_NET",
		"HTTP_SERVERS":    "$HOME_NET",
		"SMTP_SERVERS":    "$HOME_NET",
		"SQL_SERVERS":     "$HOME_NET",
		"DNS_SERVERS":     "$HOME_NET",
		"TELNET_SERVERS":  "$HOME_NET",
		"AIM_SERVERS":     "$EXTERNAL_NET",
		"DC_SERVERS":      "$HOME_NET",
		"DNP3_SERVER":     "$HOME_NET",
		"DNP3_CLIENT":     "$HOME_NET",
		"MODBUS_CLIENT":   "$HOME_NET",
		"MODBUS_SERVER":   "$HOME_NET",
		"ENIP_CLIENT":     "$HOME_NET",
		"ENIP_SERVER":     "$HOME_NET",
		"HTTP_PORTS":      "80",
		"SHELLCODE_PORTS": "!80",
		"ORACLE_PORTS":    "1521",
		"SSH_PORTS":       "22",
		"DNP3_PORTS":      "20000",
		"MODBUS_PORTS":    "502",
		"FILE_DATA_PORTS": "[$HTTP_PORTS,110,143]",
		"FTP_PORTS":       "21",
		"GENEVE_PORTS":    "6081",
		"VXLAN_PORTS":     "4789",
		"TEREDO_PORTS":    "3544",
	}
}

// Limits on address and port expressions (after variable expansion).
const (
	maxVarDepth   = 8
	maxGroupDepth = 8
	maxSetItems   = 4096
)

// AddrRange is an inclusive range of addresses of one family.
type AddrRange struct{ Lo, Hi netip.Addr }

// AddrSet is a set of IPv4 and IPv6 addresses, kept as sorted, disjoint,
// non-adjacent ranges so that Contains is a binary search.
type AddrSet struct {
	Ranges []AddrRange
}

var (
	v4Min = netip.IPv4Unspecified()
	v4Max = netip.AddrFrom4([4]byte{255, 255, 255, 255})
	v6Min = netip.IPv6Unspecified()
	v6Max = netip.AddrFrom16([16]byte{255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255})
)

func anyAddr() []AddrRange { return []AddrRange{{v4Min, v4Max}, {v6Min, v6Max}} }

// IsAny reports whether the set holds every address.
func (s AddrSet) IsAny() bool {
	return len(s.Ranges) == 2 && s.Ranges[0] == (AddrRange{v4Min, v4Max}) && s.Ranges[1] == (AddrRange{v6Min, v6Max})
}

// Contains reports whether a is in the set. IPv4-mapped IPv6 addresses are
// looked up as IPv4.
func (s AddrSet) Contains(a netip.Addr) bool {
	a = a.Unmap()
	i := sort.Search(len(s.Ranges), func(i int) bool { return s.Ranges[i].Hi.Compare(a) >= 0 })
	return i < len(s.Ranges) && s.Ranges[i].Lo.Compare(a) <= 0
}

func (s AddrSet) String() string {
	if s.IsAny() {
		return "any"
	}
	parts := make([]string, len(s.Ranges))
	for i, r := range s.Ranges {
		if r.Lo == r.Hi {
			parts[i] = r.Lo.String()
		} else {
			parts[i] = r.Lo.String() + "-" + r.Hi.String()
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func normAddr(rs []AddrRange) []AddrRange {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Lo.Compare(rs[j].Lo) < 0 })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].Lo.Is4() == r.Lo.Is4() {
			last := &out[n-1]
			if last.Hi.Compare(r.Lo) >= 0 || (last.Hi.Next().IsValid() && last.Hi.Next() == r.Lo) {
				if r.Hi.Compare(last.Hi) > 0 {
					last.Hi = r.Hi
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// complementAddr returns every address (both families) not in rs, which
// must be normalised.
func complementAddr(rs []AddrRange) []AddrRange {
	var out []AddrRange
	for _, fam := range anyAddr() {
		cur := fam.Lo
		done := false
		for _, r := range rs {
			if r.Lo.Is4() != fam.Lo.Is4() {
				continue
			}
			if r.Lo.Compare(cur) > 0 {
				out = append(out, AddrRange{cur, r.Lo.Prev()})
			}
			if r.Hi == fam.Hi {
				done = true
				break
			}
			cur = r.Hi.Next()
		}
		if !done {
			out = append(out, AddrRange{cur, fam.Hi})
		}
	}
	return out
}

func subtractAddr(a, b []AddrRange) []AddrRange {
	if len(b) == 0 {
		return a
	}
	return intersectAddr(a, complementAddr(b))
}

func intersectAddr(a, b []AddrRange) []AddrRange {
	var out []AddrRange
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		lo, hi := a[i].Lo, a[i].Hi
		if b[j].Lo.Compare(lo) > 0 {
			lo = b[j].Lo
		}
		if b[j].Hi.Compare(hi) < 0 {
			hi = b[j].Hi
		}
		if lo.Is4() == hi.Is4() && lo.Compare(hi) <= 0 {
			out = append(out, AddrRange{lo, hi})
		}
		if a[i].Hi.Compare(b[j].Hi) < 0 {
			i++
		} else {
			j++
		}
	}
	return out
}

func prefixRange(p netip.Prefix) AddrRange {
	p = p.Masked()
	lo := p.Addr()
	b := lo.AsSlice()
	bits := p.Bits()
	for i := range b {
		for k := 0; k < 8; k++ {
			if i*8+k >= bits {
				b[i] |= 0x80 >> k
			}
		}
	}
	hi, _ := netip.AddrFromSlice(b)
	return AddrRange{lo, hi}
}

// setParser expands variables and parses groups for one expression.
type setParser struct {
	vars  Vars
	items int
}

// splitGroup splits "a,[b,c],d" at top-level commas.
func splitGroup(s string) ([]string, error) {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced ']' in %q", s)
			}
		case ',':
			if depth == 0 {
				parts = append(parts, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced '[' in %q", s)
	}
	return append(parts, strings.TrimSpace(s[start:])), nil
}

// ParseAddrSet parses an address expression such as
// "[$HOME_NET,!10.0.0.0/8]" with the given variables.
func ParseAddrSet(expr string, vars Vars) (AddrSet, error) {
	p := setParser{vars: vars}
	rs, err := p.addr(strings.TrimSpace(expr), 0, 0)
	if err != nil {
		return AddrSet{}, err
	}
	if len(rs) == 0 {
		return AddrSet{}, fmt.Errorf("address %q matches nothing", expr)
	}
	return AddrSet{Ranges: rs}, nil
}

func (p *setParser) addr(s string, depth, varDepth int) ([]AddrRange, error) {
	if depth > maxGroupDepth || varDepth > maxVarDepth {
		return nil, fmt.Errorf("address expression nested too deeply")
	}
	if p.items++; p.items > maxSetItems {
		return nil, fmt.Errorf("address expression has more than %d items", maxSetItems)
	}
	if s == "" {
		return nil, fmt.Errorf("empty address")
	}
	if s[0] == '!' {
		inner, err := p.addr(strings.TrimSpace(s[1:]), depth+1, varDepth)
		if err != nil {
			return nil, err
		}
		return complementAddr(inner), nil
	}
	if s[0] == '[' {
		if s[len(s)-1] != ']' {
			return nil, fmt.Errorf("unterminated address group %q", s)
		}
		parts, err := splitGroup(s[1 : len(s)-1])
		if err != nil {
			return nil, err
		}
		// Suricata's group semantics: the union of the positive items
		// (everything if there are none) minus the union of the negated.
		var pos, neg []AddrRange
		havePos := false
		for _, part := range parts {
			if part == "" {
				return nil, fmt.Errorf("empty item in address group %q", s)
			}
			if part[0] == '!' {
				rs, err := p.addr(strings.TrimSpace(part[1:]), depth+1, varDepth)
				if err != nil {
					return nil, err
				}
				neg = append(neg, rs...)
				continue
			}
			rs, err := p.addr(part, depth+1, varDepth)
			if err != nil {
				return nil, err
			}
			havePos = true
			pos = append(pos, rs...)
		}
		if !havePos {
			pos = anyAddr()
		}
		return subtractAddr(normAddr(pos), normAddr(neg)), nil
	}
	if s[0] == '$' {
		v, ok := p.vars[s[1:]]
		if !ok {
			return nil, fmt.Errorf("undefined variable %s", s)
		}
		return p.addr(strings.TrimSpace(v), depth, varDepth+1)
	}
	if s == "any" {
		return anyAddr(), nil
	}
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			// Suricata also accepts a dotted netmask: 10.0.0.0/255.0.0.0.
			a, m, _ := strings.Cut(s, "/")
			ip, err1 := netip.ParseAddr(a)
			mask, err2 := netip.ParseAddr(m)
			if err1 != nil || err2 != nil || !ip.Is4() || !mask.Is4() {
				return nil, fmt.Errorf("bad address %q", s)
			}
			bits, ok := maskBits(mask.As4())
			if !ok {
				return nil, fmt.Errorf("bad netmask in %q", s)
			}
			pfx = netip.PrefixFrom(ip, bits)
		}
		pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-unmapBits(pfx.Addr()))
		return []AddrRange{prefixRange(pfx)}, nil
	}
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(strings.TrimSpace(lo))
		b, err2 := netip.ParseAddr(strings.TrimSpace(hi))
		if err1 == nil && err2 == nil && a.Is4() == b.Is4() && a.Compare(b) <= 0 {
			return []AddrRange{{a, b}}, nil
		}
		return nil, fmt.Errorf("bad address range %q", s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil, fmt.Errorf("bad address %q", s)
	}
	a = a.Unmap()
	return []AddrRange{{a, a}}, nil
}

func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

func maskBits(m [4]byte) (int, bool) {
	v := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	return n, v == 0
}

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// PortSet is a set of ports as sorted, disjoint ranges.
type PortSet struct {
	Ranges []PortRange
}

// IsAny reports whether the set holds every port.
func (s PortSet) IsAny() bool {
	return len(s.Ranges) == 1 && s.Ranges[0] == PortRange{0, 65535}
}

// Contains reports whether port is in the set.
func (s PortSet) Contains(port uint16) bool {
	i := sort.Search(len(s.Ranges), func(i int) bool { return s.Ranges[i].Hi >= port })
	return i < len(s.Ranges) && s.Ranges[i].Lo <= port
}

func (s PortSet) String() string {
	if s.IsAny() {
		return "any"
	}
	parts := make([]string, len(s.Ranges))
	for i, r := range s.Ranges {
		if r.Lo == r.Hi {
			parts[i] = strconv.Itoa(int(r.Lo))
		} else {
			parts[i] = fmt.Sprintf("%d:%d", r.Lo, r.Hi)
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func normPorts(rs []PortRange) []PortRange {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Lo < rs[j].Lo })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && int(out[n-1].Hi)+1 >= int(r.Lo) {
			if r.Hi > out[n-1].Hi {
				out[n-1].Hi = r.Hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

func complementPorts(rs []PortRange) []PortRange {
	var out []PortRange
	cur := 0
	for _, r := range rs {
		if int(r.Lo) > cur {
			out = append(out, PortRange{uint16(cur), r.Lo - 1})
		}
		cur = int(r.Hi) + 1
	}
	if cur <= 65535 {
		out = append(out, PortRange{uint16(cur), 65535})
	}
	return out
}

// ParsePortSet parses a port expression such as "[80,8000:8100,!8080]".
func ParsePortSet(expr string, vars Vars) (PortSet, error) {
	p := setParser{vars: vars}
	rs, err := p.port(strings.TrimSpace(expr), 0, 0)
	if err != nil {
		return PortSet{}, err
	}
	if len(rs) == 0 {
		return PortSet{}, fmt.Errorf("port %q matches nothing", expr)
	}
	return PortSet{Ranges: rs}, nil
}

func (p *setParser) port(s string, depth, varDepth int) ([]PortRange, error) {
	if depth > maxGroupDepth || varDepth > maxVarDepth {
		return nil, fmt.Errorf("port expression nested too deeply")
	}
	if p.items++; p.items > maxSetItems {
		return nil, fmt.Errorf("port expression has more than %d items", maxSetItems)
	}
	if s == "" {
		return nil, fmt.Errorf("empty port")
	}
	switch s[0] {
	case '!':
		inner, err := p.port(strings.TrimSpace(s[1:]), depth+1, varDepth)
		if err != nil {
			return nil, err
		}
		return complementPorts(inner), nil
	case '[':
		if s[len(s)-1] != ']' {
			return nil, fmt.Errorf("unterminated port group %q", s)
		}
		parts, err := splitGroup(s[1 : len(s)-1])
		if err != nil {
			return nil, err
		}
		var pos, neg []PortRange
		havePos := false
		for _, part := range parts {
			if part == "" {
				return nil, fmt.Errorf("empty item in port group %q", s)
			}
			neg1 := part[0] == '!'
			if neg1 {
				part = strings.TrimSpace(part[1:])
			}
			rs, err := p.port(part, depth+1, varDepth)
			if err != nil {
				return nil, err
			}
			if neg1 {
				neg = append(neg, rs...)
			} else {
				havePos = true
				pos = append(pos, rs...)
			}
		}
		if !havePos {
			pos = []PortRange{{0, 65535}}
		}
		pos = normPorts(pos)
		if len(neg) == 0 {
			return pos, nil
		}
		return intersectPorts(pos, complementPorts(normPorts(neg))), nil
	case '$':
		v, ok := p.vars[s[1:]]
		if !ok {
			return nil, fmt.Errorf("undefined variable %s", s)
		}
		return p.port(strings.TrimSpace(v), depth, varDepth+1)
	}
	if s == "any" {
		return []PortRange{{0, 65535}}, nil
	}
	if lo, hi, ok := strings.Cut(s, ":"); ok {
		a, b := uint64(0), uint64(65535)
		var err error
		if lo = strings.TrimSpace(lo); lo != "" {
			if a, err = strconv.ParseUint(lo, 10, 16); err != nil {
				return nil, fmt.Errorf("bad port %q", s)
			}
		}
		if hi = strings.TrimSpace(hi); hi != "" {
			if b, err = strconv.ParseUint(hi, 10, 16); err != nil {
				return nil, fmt.Errorf("bad port %q", s)
			}
		}
		if a > b {
			return nil, fmt.Errorf("port range %q is empty", s)
		}
		return []PortRange{{uint16(a), uint16(b)}}, nil
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port %q", s)
	}
	return []PortRange{{uint16(n), uint16(n)}}, nil
}

func intersectPorts(a, b []PortRange) []PortRange {
	var out []PortRange
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		lo, hi := max(a[i].Lo, b[j].Lo), min(a[i].Hi, b[j].Hi)
		if lo <= hi {
			out = append(out, PortRange{lo, hi})
		}
		if a[i].Hi < b[j].Hi {
			i++
		} else {
			j++
		}
	}
	return out
}
