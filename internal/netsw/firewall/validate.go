package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Limits on a configuration. They bound the compiled policy's memory and
// the work of evaluating one new flow.
const (
	MaxGroups        = 4096
	MaxRulesPerGroup = 4096
	MaxIPSets        = 4096
	MaxIPSetCIDRs    = 16384
	MaxGroupsPerPort = 16
	MaxRuleIDLen     = 64
	MaxDescription   = 255
	maxErrors        = 50 // Validate stops collecting after this many
)

// FieldError is one validation failure: the object (Path), the field, the
// offending value when there is one, and what is wrong with it.
type FieldError struct {
	Path  string // e.g. `group "web" rule "r2"`
	Field string // JSON field name, e.g. "remote_cidr"
	Value string // offending value; empty when the problem is absence
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Value != "" {
		return fmt.Sprintf("%s: %s %q: %s", e.Path, e.Field, e.Value, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Path, e.Field, e.Msg)
}

// validator collects FieldErrors.
type validator struct {
	errs []error
}

func (v *validator) add(path, field, value, format string, args ...any) {
	if len(v.errs) < maxErrors {
		v.errs = append(v.errs, &FieldError{Path: path, Field: field, Value: value, Msg: fmt.Sprintf(format, args...)})
	} else if len(v.errs) == maxErrors {
		v.errs = append(v.errs, errors.New("too many errors; stopped"))
	}
}

// Validate checks a configuration and returns every problem it finds (up to
// a limit) joined into one error whose parts are *FieldError, or nil.
func Validate(c Config) error {
	var v validator
	groups := map[string]bool{}
	ipsets := map[string]bool{}
	if len(c.Groups) > MaxGroups {
		v.add("config", "groups", "", "%d groups; at most %d", len(c.Groups), MaxGroups)
	}
	if len(c.IPSets) > MaxIPSets {
		v.add("config", "ip_sets", "", "%d ip sets; at most %d", len(c.IPSets), MaxIPSets)
	}
	for _, g := range c.Groups {
		v.name(fmt.Sprintf("group %q", g.Name), g.Name, groups)
	}
	for _, s := range c.IPSets {
		path := fmt.Sprintf("ip_set %q", s.Name)
		v.name(path, s.Name, ipsets)
		if len(s.CIDRs) > MaxIPSetCIDRs {
			v.add(path, "cidrs", "", "%d prefixes; at most %d", len(s.CIDRs), MaxIPSetCIDRs)
			continue
		}
		for _, p := range s.CIDRs {
			v.cidr(path, "cidrs", p)
		}
	}
	for _, g := range c.Groups {
		v.group(g, groups, ipsets)
	}
	v.ports(c.Ports, groups)
	nets := make([]string, 0, len(c.NetworkDefaults))
	for n := range c.NetworkDefaults {
		nets = append(nets, n)
	}
	sort.Strings(nets) // stable error order
	for _, n := range nets {
		d, path := c.NetworkDefaults[n], fmt.Sprintf("network %q defaults", n)
		if d.Ingress > AllowAll {
			v.add(path, "ingress", d.Ingress.String(), "unknown default ingress")
		}
		if d.Egress > Reject {
			v.add(path, "egress", d.Egress.String(), "unknown action")
		}
	}
	return errors.Join(v.errs...)
}

// name checks a group or ip set name and records it in seen.
func (v *validator) name(path, name string, seen map[string]bool) {
	switch {
	case !isLabel(name):
		v.add(path, "name", name, "must be a lower-case DNS label (a-z, 0-9 and '-', 1-63 characters, no leading or trailing '-')")
	case seen[name]:
		v.add(path, "name", name, "duplicate name")
	}
	seen[name] = true
}

func (v *validator) group(g Group, groups, ipsets map[string]bool) {
	gpath := fmt.Sprintf("group %q", g.Name)
	if len(g.Rules) > MaxRulesPerGroup {
		v.add(gpath, "rules", "", "%d rules; at most %d", len(g.Rules), MaxRulesPerGroup)
		return
	}
	if len(g.Description) > MaxDescription {
		v.add(gpath, "description", "", "longer than %d bytes", MaxDescription)
	}
	ids := map[string]bool{}
	for i, r := range g.Rules {
		path := fmt.Sprintf("%s rule %q", gpath, r.ID)
		switch {
		case !isRuleID(r.ID):
			path = fmt.Sprintf("%s rule #%d", gpath, i+1)
			v.add(path, "id", r.ID, "must be 1-%d characters of A-Z, a-z, 0-9, '.', '_' and '-'", MaxRuleIDLen)
		case ids[r.ID]:
			v.add(path, "id", r.ID, "duplicate rule id in the group")
		}
		ids[r.ID] = true
		v.rule(path, r, groups, ipsets)
	}
}

func (v *validator) rule(path string, r Rule, groups, ipsets map[string]bool) {
	if r.Direction != Ingress && r.Direction != Egress {
		v.add(path, "direction", enumValue(uint8(r.Direction), r.Direction.String()), "must be ingress or egress")
	}
	if r.Action < Allow || r.Action > Reject {
		v.add(path, "action", enumValue(uint8(r.Action), r.Action.String()), "must be allow, drop or reject")
	}
	if r.Proto > ICMP {
		v.add(path, "protocol", r.Proto.String(), "must be any, tcp, udp or icmp")
	}
	if r.PortMin != 0 || r.PortMax != 0 {
		switch {
		case r.Proto != TCP && r.Proto != UDP:
			v.add(path, "port_min", "", "ports apply only to tcp and udp, not %s", r.Proto)
		case r.PortMin == 0:
			v.add(path, "port_min", "", "must be 1-65535 when port_max is set (0,0 means any port)")
		case r.PortMin > r.PortMax:
			v.add(path, "port_min", fmt.Sprint(r.PortMin), "greater than port_max %d", r.PortMax)
		}
	}
	switch {
	case r.Proto == ICMP && (r.ICMPType < -1 || r.ICMPType > 255):
		v.add(path, "icmp_type", fmt.Sprint(r.ICMPType), "must be -1 (any) or 0-255")
	case r.Proto != ICMP && r.ICMPType != 0 && r.ICMPType != -1:
		v.add(path, "icmp_type", fmt.Sprint(r.ICMPType), "applies only to icmp, not %s", r.Proto)
	}
	n := 0
	for _, s := range []string{r.RemoteCIDR, r.RemoteIPSet, r.RemoteGroup} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		v.add(path, "remote", "", "at most one of remote_cidr, remote_ip_set and remote_group may be set")
	}
	if r.RemoteCIDR != "" {
		v.cidr(path, "remote_cidr", r.RemoteCIDR)
	}
	if r.RemoteIPSet != "" && !ipsets[r.RemoteIPSet] {
		v.add(path, "remote_ip_set", r.RemoteIPSet, "unknown ip set")
	}
	if r.RemoteGroup != "" && !groups[r.RemoteGroup] {
		v.add(path, "remote_group", r.RemoteGroup, "unknown group")
	}
	if len(r.Description) > MaxDescription {
		v.add(path, "description", "", "longer than %d bytes", MaxDescription)
	}
}

func (v *validator) cidr(path, field, s string) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		v.add(path, field, s, "invalid CIDR")
	case p != p.Masked():
		v.add(path, field, s, "host bits set (did you mean %s?)", p.Masked())
	}
}

func (v *validator) ports(ports []Port, groups map[string]bool) {
	ids := map[int32]bool{}
	for _, p := range ports {
		path := fmt.Sprintf("port %d", p.ID)
		switch {
		case p.ID < 0:
			v.add(path, "id", "", "must not be negative (-1 means no port)")
		case ids[p.ID]:
			v.add(path, "id", "", "duplicate port id")
		}
		ids[p.ID] = true
		if len(p.Groups) > MaxGroupsPerPort {
			v.add(path, "groups", "", "%d groups; at most %d", len(p.Groups), MaxGroupsPerPort)
			continue
		}
		for i, g := range p.Groups {
			if !groups[g] {
				v.add(path, "groups", g, "unknown group")
			}
			for _, h := range p.Groups[:i] {
				if g == h {
					v.add(path, "groups", g, "listed twice")
				}
			}
		}
		for _, a := range p.IPs {
			if !a.IsValid() || a.Zone() != "" {
				v.add(path, "ips", a.String(), "invalid address")
			}
		}
	}
}

func enumValue(v uint8, s string) string {
	if v == 0 {
		return ""
	}
	return s
}

// isLabel reports whether s matches ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$.
func isLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func isRuleID(s string) bool {
	if len(s) == 0 || len(s) > MaxRuleIDLen {
		return false
	}
	return strings.IndexFunc(s, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-')
	}) < 0
}
