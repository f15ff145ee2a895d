package firewall

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	if err := Validate(testConfig()); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	rule := func(r Rule) func(*Config) {
		return func(c *Config) {
			if r.ID == "" {
				r.ID = "x1"
			}
			if r.Direction == 0 {
				r.Direction = Ingress
			}
			if r.Action == 0 {
				r.Action = Allow
			}
			c.Groups[0].Rules = append(c.Groups[0].Rules, r)
		}
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"bad cidr", rule(Rule{ID: "r9", RemoteCIDR: "10.0.0/8"}), `group "web" rule "r9": remote_cidr "10.0.0/8": invalid CIDR`},
		{"host bits", rule(Rule{RemoteCIDR: "10.1.2.3/8"}), `remote_cidr "10.1.2.3/8": host bits set (did you mean 10.0.0.0/8?)`},
		{"bare address", rule(Rule{RemoteCIDR: "10.1.2.3"}), `invalid CIDR`},
		{"unknown group", rule(Rule{RemoteGroup: "nope"}), `group "web" rule "x1": remote_group "nope": unknown group`},
		{"unknown ip set", rule(Rule{RemoteIPSet: "nope"}), `remote_ip_set "nope": unknown ip set`},
		{"two remotes", rule(Rule{RemoteCIDR: "10.0.0.0/8", RemoteGroup: "db"}), `remote: at most one of remote_cidr, remote_ip_set and remote_group`},
		{"ports on icmp", rule(Rule{Proto: ICMP, PortMin: 1, PortMax: 2}), `port_min: ports apply only to tcp and udp, not icmp`},
		{"ports on any", rule(Rule{PortMin: 80, PortMax: 80}), `ports apply only to tcp and udp, not any`},
		{"min > max", rule(Rule{Proto: TCP, PortMin: 90, PortMax: 80}), `port_min "90": greater than port_max 80`},
		{"max without min", rule(Rule{Proto: UDP, PortMax: 80}), `port_min: must be 1-65535 when port_max is set`},
		{"icmp type on tcp", rule(Rule{Proto: TCP, ICMPType: 8}), `icmp_type "8": applies only to icmp, not tcp`},
		{"icmp type too big", rule(Rule{Proto: ICMP, ICMPType: 256}), `icmp_type "256": must be -1 (any) or 0-255`},
		{"icmp type too small", rule(Rule{Proto: ICMP, ICMPType: -2}), `icmp_type "-2"`},
		{"missing direction", func(c *Config) {
			c.Groups[0].Rules = append(c.Groups[0].Rules, Rule{ID: "x1", Action: Allow})
		}, `group "web" rule "x1": direction: must be ingress or egress`},
		{"missing action", func(c *Config) {
			c.Groups[0].Rules = append(c.Groups[0].Rules, Rule{ID: "x1", Direction: Egress})
		}, `rule "x1": action: must be allow, drop or reject`},
		{"bad action value", rule(Rule{Action: 9}), `action "action(9)": must be allow, drop or reject`},
		{"bad protocol value", rule(Rule{Proto: 9}), `protocol "protocol(9)"`},
		{"duplicate rule id", rule(Rule{ID: "r1"}), `group "web" rule "r1": id "r1": duplicate rule id in the group`},
		{"empty rule id", rule(Rule{ID: " "}), `group "web" rule #8: id " ": must be 1-64 characters`},
		{"long description", rule(Rule{Description: strings.Repeat("x", 256)}), `description: longer than 255 bytes`},
		{"upper-case group", func(c *Config) { c.Groups[0].Name = "Web" }, `group "Web": name "Web": must be a lower-case DNS label`},
		{"group name dash", func(c *Config) { c.Groups[3].Name = "-x" }, `name "-x": must be a lower-case DNS label`},
		{"group name too long", func(c *Config) { c.Groups[3].Name = strings.Repeat("a", 64) }, `must be a lower-case DNS label`},
		{"empty group name", func(c *Config) { c.Groups[3].Name = "" }, `group "": name: must be a lower-case DNS label`},
		{"duplicate group", func(c *Config) { c.Groups = append(c.Groups, Group{Name: "db"}) }, `group "db": name "db": duplicate name`},
		{"bad ip set name", func(c *Config) { c.IPSets[0].Name = "a_b" }, `ip_set "a_b": name "a_b": must be a lower-case DNS label`},
		{"bad ip set cidr", func(c *Config) { c.IPSets[0].CIDRs[1] = "8.8.8.8/33" }, `ip_set "blocked-dns": cidrs "8.8.8.8/33": invalid CIDR`},
		{"port unknown group", func(c *Config) { c.Ports[0].Groups = []string{"web", "ghost"} }, `port 1: groups "ghost": unknown group`},
		{"port group twice", func(c *Config) { c.Ports[0].Groups = []string{"web", "web"} }, `port 1: groups "web": listed twice`},
		{"port duplicate id", func(c *Config) { c.Ports[1].ID = 1 }, `port 1: id: duplicate port id`},
		{"port negative id", func(c *Config) { c.Ports[1].ID = -1 }, `port -1: id: must not be negative`},
		{"port invalid ip", func(c *Config) { c.Ports[1].IPs = []netip.Addr{{}} }, `port 2: ips "invalid IP": invalid address`},
		{"too many groups on a port", func(c *Config) { c.Ports[1].Groups = make([]string, MaxGroupsPerPort+1) }, `port 2: groups: 17 groups; at most 16`},
		{"too many rules", func(c *Config) { c.Groups[3].Rules = make([]Rule, MaxRulesPerGroup+1) }, `group "default": rules: 4097 rules; at most 4096`},
		{"bad default", func(c *Config) { c.NetworkDefaults["lan"] = Defaults{Ingress: 7} }, `network "lan" defaults: ingress "default ingress(7)": unknown default ingress`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig()
			tt.modify(&c)
			err := Validate(c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v\nwant an error containing %s", err, tt.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error is not a *FieldError: %T", err)
			}
			if _, err := Compile(c, 1, nil); err == nil {
				t.Error("Compile accepted what Validate refused")
			}
		})
	}
}

func TestValidateCollectsAll(t *testing.T) {
	c := testConfig()
	c.Groups[0].Rules[0].RemoteCIDR = "x"
	c.Groups[1].Rules[0].RemoteGroup = "ghost"
	err := Validate(c)
	if err == nil || strings.Count(err.Error(), "\n") != 1 {
		t.Fatalf("want two errors, got %v", err)
	}
	c.Groups[3].Rules = make([]Rule, 200) // 200 rules without ids, directions, actions
	for i := range c.Groups[3].Rules {
		c.Groups[3].Rules[i].ID = "r" + strings.Repeat("x", i%50)
	}
	if n := strings.Count(Validate(c).Error(), "\n"); n != maxErrors {
		t.Fatalf("%d error lines, want the cap %d", n+1, maxErrors+1)
	}
}

func TestRuleJSON(t *testing.T) {
	var r Rule
	in := `{"id":"r1","direction":"ingress","action":"allow","protocol":"tcp","port_min":22,"port_max":22,"remote_cidr":"10.0.0.0/8","description":"ssh"}`
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	want := Rule{ID: "r1", Direction: Ingress, Action: Allow, Proto: TCP, PortMin: 22, PortMax: 22, ICMPType: -1,
		RemoteCIDR: "10.0.0.0/8", Description: "ssh"}
	if r != want {
		t.Fatalf("decoded %+v\nwant %+v", r, want)
	}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Rule
	if err := json.Unmarshal(out, &back); err != nil || back != want {
		t.Fatalf("round trip: %s -> %+v, %v", out, back, err)
	}
	if want := `{"id":"r1","direction":"ingress","action":"allow","protocol":"tcp","port_min":22,"port_max":22,"remote_cidr":"10.0.0.0/8","description":"ssh"}`; string(out) != want {
		t.Errorf("Marshal = %s\nwant      %s", out, want)
	}
	if out, err := json.Marshal(Rule{ID: "e", Direction: Egress, Action: Drop, Proto: ICMP, ICMPType: -1}); err != nil ||
		string(out) != `{"id":"e","direction":"egress","action":"drop","protocol":"icmp","icmp_type":-1}` {
		t.Errorf("Marshal(icmp rule) = %s, %v", out, err)
	}
	var icmp Rule
	if err := json.Unmarshal([]byte(`{"id":"p","direction":"egress","action":"reject","protocol":"icmp","icmp_type":8}`), &icmp); err != nil || icmp.ICMPType != 8 || icmp.Action != Reject {
		t.Fatalf("icmp rule: %+v, %v", icmp, err)
	}

	bad := []struct{ in, want string }{
		{`{"id":"r","direction":"in","action":"allow"}`, `unknown direction "in" (want one of ingress, egress)`},
		{`{"id":"r","direction":"ingress","action":"accept"}`, `unknown action "accept" (want one of allow, drop, reject)`},
		{`{"id":"r","direction":"ingress","action":"allow","protocol":"sctp"}`, `unknown protocol "sctp" (want one of any, tcp, udp, icmp)`},
		{`{"id":"r","direction":"ingress","action":"allow","port":80}`, `unknown field "port"`},
		{`{"id":"r","action":"allow"}`, `rule "r": direction: required`},
		{`{"id":"r","direction":"egress"}`, `rule "r": action: required`},
		{`{"id":"r","direction":"egress","action":"allow","port_max":70000}`, `port_max`},
		{`{"id":"r","direction":"egress","action":"allow","protocol":1}`, `protocol`},
	}
	for _, b := range bad {
		var r Rule
		err := json.Unmarshal([]byte(b.in), &r)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Unmarshal(%s) = %v, want error containing %q", b.in, err, b.want)
		}
	}
	// Groups decode their rules strictly too.
	var g Group
	if err := json.Unmarshal([]byte(`{"name":"g","rules":[{"id":"r","direction":"ingress","action":"allow","bogus":1}]}`), &g); err == nil {
		t.Error("unknown rule field inside a group accepted")
	}
	if _, err := json.Marshal(Rule{ID: "r"}); err == nil {
		t.Error("marshalling a rule with unset direction succeeded")
	}
}

func TestDefaultsText(t *testing.T) {
	var d Defaults
	if err := json.Unmarshal([]byte(`{"ingress":"deny","egress":"drop"}`), &d); err != nil || d != (Defaults{DenyAll, Drop}) {
		t.Fatalf("Defaults = %+v, %v", d, err)
	}
	if out, err := json.Marshal(Defaults{}); err != nil || string(out) != `{"ingress":"same_group"}` {
		t.Fatalf("Marshal(Defaults{}) = %s, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"ingress":"sometimes"}`), &d); err == nil {
		t.Fatal("unknown default accepted")
	}
	for _, s := range []string{"same_group", "deny", "allow"} {
		var v DefaultIngress
		if err := v.UnmarshalText([]byte(s)); err != nil || v.String() != s {
			t.Errorf("%s: %v, %v", s, v, err)
		}
	}
}
