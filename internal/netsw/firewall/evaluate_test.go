package firewall

import (
	"net/netip"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func ips(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, ip(s))
	}
	return out
}

// testConfig is the configuration the evaluation table runs against.
func testConfig() Config {
	tcpIn := func(id string, a Action, lo, hi uint16) Rule {
		return Rule{ID: id, Direction: Ingress, Action: a, Proto: TCP, PortMin: lo, PortMax: hi, ICMPType: -1}
	}
	return Config{
		Groups: []Group{
			{Name: "web", Rules: []Rule{
				tcpIn("r1", Allow, 80, 80),
				{ID: "r2", Direction: Ingress, Action: Allow, Proto: TCP, PortMin: 443, PortMax: 443, RemoteCIDR: "10.0.0.0/24"},
				tcpIn("r3", Reject, 22, 22),
				{ID: "r4", Direction: Ingress, Action: Allow, Proto: ICMP, ICMPType: 8},
				{ID: "r5", Direction: Egress, Action: Drop, Proto: UDP, PortMin: 53, PortMax: 53, RemoteIPSet: "blocked-dns"},
				{ID: "r6", Direction: Egress, Action: Allow, Proto: TCP, PortMin: 5432, PortMax: 5432, RemoteGroup: "db"},
				{ID: "r7", Direction: Ingress, Action: Allow, Proto: ICMP, ICMPType: 128},
			}},
			{Name: "db", Rules: []Rule{
				{ID: "d1", Direction: Ingress, Action: Allow, Proto: TCP, PortMin: 5432, PortMax: 5432, RemoteGroup: "web"},
				tcpIn("d2", Drop, 5432, 5432),
				{ID: "d3", Direction: Ingress, Action: Allow, Proto: UDP, PortMin: 1000, PortMax: 2000, RemoteIPSet: "admins"},
				{ID: "d4", Direction: Egress, Action: Reject, Proto: Any, ICMPType: -1, RemoteCIDR: "192.0.2.0/24"},
			}},
			{Name: "admin", Rules: []Rule{
				{ID: "a1", Direction: Ingress, Action: Allow, RemoteIPSet: "admins"},
			}},
			{Name: "default"},
			{Name: "order", Rules: []Rule{
				{ID: "o1", Direction: Ingress, Action: Drop, Proto: TCP, PortMin: 8080, PortMax: 8080, RemoteCIDR: "10.0.0.30/32"},
				tcpIn("o2", Allow, 8000, 9000),
			}},
		},
		IPSets: []IPSet{
			{Name: "blocked-dns", CIDRs: []string{"10.0.0.53/32", "8.8.8.0/24"}},
			{Name: "admins", CIDRs: []string{"10.0.0.30/32", "172.16.0.0/12"}},
		},
		Ports: []Port{
			{ID: 1, Network: "lan", IPs: ips("10.0.0.10"), Groups: []string{"web"}},
			{ID: 2, Network: "lan", IPs: ips("10.0.0.20"), Groups: []string{"db"}},
			{ID: 3, Network: "lan", IPs: ips("10.0.0.30"), Groups: []string{"admin"}},
			{ID: 4, Network: "lan", IPs: ips("10.0.0.40"), Groups: []string{"default"}},
			{ID: 5, Network: "other", IPs: ips("10.0.0.99"), Groups: []string{"web"}},
			{ID: 6, Network: "strict", IPs: ips("10.9.0.6"), Groups: []string{"default"}},
			{ID: 7, Network: "open", IPs: ips("10.8.0.7")},
			{ID: 8, Network: "lan", IPs: ips("fd00::8"), Groups: []string{"web"}},
			{ID: 9, Network: "lan", IPs: ips("10.0.0.90"), Groups: []string{"order"}},
			{ID: 10, Network: "other", IPs: ips("10.0.0.11"), Groups: []string{"db"}},
			{ID: 11, Network: "strict", IPs: ips("10.9.0.11"), Groups: []string{"default"}},
			{ID: 12, Network: "lan", IPs: ips("10.0.0.12")},
			{ID: 13, Network: "lan", IPs: ips("10.0.0.13"), Groups: []string{"default"}},
			{ID: 14, Network: "rej", IPs: ips("10.7.0.14")},
			{ID: 15, Network: "lan", IPs: ips("10.0.0.15"), Groups: []string{"order", "web"}},
		},
		NetworkDefaults: map[string]Defaults{
			"strict": {Ingress: DenyAll, Egress: Drop},
			"open":   {Ingress: AllowAll},
			"rej":    {Egress: Reject},
		},
	}
}

func tup(proto uint8, src, dst string, sp, dp uint16) packet.Tuple {
	return packet.Tuple{Src: ip(src), Dst: ip(dst), SrcPort: sp, DstPort: dp, Proto: proto}
}

const (
	pTCP  = packet.ProtoTCP
	pUDP  = packet.ProtoUDP
	pICMP = packet.ProtoICMP
	pV6   = packet.ProtoICMPv6
	pGRE  = 47
)

func TestEvaluate(t *testing.T) {
	allow := func(group, id string, d Direction) Verdict {
		return Verdict{Action: Allow, Reason: packet.OK, Group: group, RuleID: id, Direction: d}
	}
	drop := func(group, id string, d Direction) Verdict {
		return Verdict{Action: Drop, Reason: packet.FWDrop, Group: group, RuleID: id, Direction: d}
	}
	reject := func(group, id string, d Direction) Verdict {
		return Verdict{Action: Reject, Reason: packet.FWReject, Group: group, RuleID: id, Direction: d}
	}
	deny := func(d Direction) Verdict { return Verdict{Action: Drop, Reason: packet.FWDefault, Direction: d} }
	const up = -1
	tests := []struct {
		name     string
		t        packet.Tuple
		icmp     uint8
		src, dst int32
		want     Verdict
	}{
		{"uplink to web:80", tup(pTCP, "203.0.113.5", "10.0.0.10", 40000, 80), 0, up, 1, allow("web", "r1", Ingress)},
		{"uplink to web:443 outside cidr", tup(pTCP, "203.0.113.5", "10.0.0.10", 40000, 443), 0, up, 1, deny(Ingress)},
		{"admin vm to web:443 inside cidr", tup(pTCP, "10.0.0.30", "10.0.0.10", 40000, 443), 0, 3, 1, allow("web", "r2", Ingress)},
		{"web:22 rejected", tup(pTCP, "203.0.113.5", "10.0.0.10", 40000, 22), 0, up, 1, reject("web", "r3", Ingress)},
		{"web:8080 default deny", tup(pTCP, "203.0.113.5", "10.0.0.10", 40000, 8080), 0, up, 1, deny(Ingress)},
		{"udp to tcp-only port", tup(pUDP, "203.0.113.5", "10.0.0.10", 40000, 80), 0, up, 1, deny(Ingress)},
		{"same-group member by default (v6)", tup(pTCP, "fd00::8", "fd00::1", 40000, 8080), 0, 8, 1, allow("", "", Ingress)},
		{"web to db: egress and ingress remote groups", tup(pTCP, "10.0.0.10", "10.0.0.20", 40000, 5432), 0, 1, 2, allow("db", "d1", Ingress)},
		{"admin to db:5432 dropped", tup(pTCP, "10.0.0.30", "10.0.0.20", 40000, 5432), 0, 3, 2, drop("db", "d2", Ingress)},
		{"web member of another network is not a member here", tup(pTCP, "10.0.0.99", "10.0.0.20", 40000, 5432), 0, up, 2, drop("db", "d2", Ingress)},
		{"remote group on the other network", tup(pTCP, "10.0.0.99", "10.0.0.11", 40000, 5432), 0, 5, 10, allow("db", "d1", Ingress)},
		{"egress to blocked dns prefix", tup(pUDP, "10.0.0.10", "8.8.8.8", 5000, 53), 0, 1, up, drop("web", "r5", Egress)},
		{"egress to blocked dns host", tup(pUDP, "10.0.0.10", "10.0.0.53", 5000, 53), 0, 1, up, drop("web", "r5", Egress)},
		{"egress default allow to uplink", tup(pUDP, "10.0.0.10", "1.1.1.1", 5000, 53), 0, 1, up, allow("", "", Egress)},
		{"egress rule named when ingress default allows", tup(pTCP, "10.0.0.10", "10.0.0.20", 40000, 5432), 0, 1, up, allow("web", "r6", Egress)},
		{"icmp echo request", tup(pICMP, "203.0.113.5", "10.0.0.10", 7, 7), 8, up, 1, allow("web", "r4", Ingress)},
		{"icmp other type", tup(pICMP, "203.0.113.5", "10.0.0.10", 0, 0), 13, up, 1, deny(Ingress)},
		{"icmpv6 echo request", tup(pV6, "2001:db8::5", "fd00::1", 7, 7), 128, up, 1, allow("web", "r7", Ingress)},
		{"egress reject any protocol (tcp)", tup(pTCP, "10.0.0.20", "192.0.2.5", 40000, 80), 0, 2, up, reject("db", "d4", Egress)},
		{"egress reject any protocol (gre)", tup(pGRE, "10.0.0.20", "192.0.2.5", 0, 0), 0, 2, up, reject("db", "d4", Egress)},
		{"port range low bound", tup(pUDP, "10.0.0.30", "10.0.0.20", 5000, 1000), 0, 3, 2, allow("db", "d3", Ingress)},
		{"port range high bound", tup(pUDP, "10.0.0.30", "10.0.0.20", 5000, 2000), 0, 3, 2, allow("db", "d3", Ingress)},
		{"port range below", tup(pUDP, "10.0.0.30", "10.0.0.20", 5000, 999), 0, 3, 2, deny(Ingress)},
		{"port range above", tup(pUDP, "10.0.0.30", "10.0.0.20", 5000, 2001), 0, 3, 2, deny(Ingress)},
		{"any-protocol rule, ip set prefix", tup(pGRE, "172.16.5.5", "10.0.0.30", 0, 0), 0, up, 3, allow("admin", "a1", Ingress)},
		{"any-protocol rule, outside set", tup(pGRE, "203.0.113.1", "10.0.0.30", 0, 0), 0, up, 3, deny(Ingress)},
		{"first match: drop before allow", tup(pTCP, "10.0.0.30", "10.0.0.90", 40000, 8080), 0, 3, 9, drop("order", "o1", Ingress)},
		{"first match: allow when drop misses", tup(pTCP, "10.0.0.10", "10.0.0.90", 40000, 8080), 0, 1, 9, allow("order", "o2", Ingress)},
		{"range end", tup(pTCP, "10.0.0.10", "10.0.0.90", 40000, 9000), 0, 1, 9, allow("order", "o2", Ingress)},
		{"past range", tup(pTCP, "10.0.0.10", "10.0.0.90", 40000, 9001), 0, 1, 9, deny(Ingress)},
		{"multiple groups: second group's rule", tup(pTCP, "203.0.113.5", "10.0.0.15", 40000, 80), 0, up, 15, allow("web", "r1", Ingress)},
		{"multiple groups: first group wins", tup(pTCP, "10.0.0.30", "10.0.0.15", 40000, 8080), 0, 3, 15, drop("order", "o1", Ingress)},
		{"default egress drop", tup(pTCP, "10.9.0.6", "1.1.1.1", 40000, 80), 0, 6, up, deny(Egress)},
		{"default ingress deny even for members", tup(pTCP, "10.9.0.11", "10.9.0.6", 40000, 80), 0, up, 6, deny(Ingress)},
		{"default ingress allow", tup(pUDP, "203.0.113.1", "10.8.0.7", 1, 2), 0, up, 7, allow("", "", Ingress)},
		{"default egress reject", tup(pTCP, "10.7.0.14", "1.1.1.1", 40000, 80), 0, 14, up,
			Verdict{Action: Reject, Reason: packet.FWDefault, Direction: Egress}},
		{"same group default", tup(pTCP, "10.0.0.13", "10.0.0.40", 40000, 9999), 0, 13, 4, allow("", "", Ingress)},
		{"other group denied by default", tup(pTCP, "10.0.0.10", "10.0.0.40", 40000, 9999), 0, 1, 4, deny(Ingress)},
		{"port without groups: ingress denied", tup(pTCP, "10.0.0.40", "10.0.0.12", 40000, 80), 0, 4, 12, deny(Ingress)},
		{"port without groups: egress allowed", tup(pTCP, "10.0.0.12", "1.1.1.1", 40000, 80), 0, 12, up, allow("", "", Egress)},
		{"unknown destination port", tup(pTCP, "10.0.0.10", "10.0.0.77", 40000, 80), 0, 1, 42, deny(Ingress)},
		{"unknown source port", tup(pTCP, "10.0.0.77", "10.0.0.10", 40000, 80), 0, 42, 1, deny(Egress)},
		{"no vm port at all", tup(pTCP, "1.1.1.1", "2.2.2.2", 1, 2), 0, up, up, allow("", "", Ingress)},
	}
	p, err := Compile(testConfig(), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.Evaluate(tt.t, tt.icmp, tt.src, tt.dst)
			if got != tt.want {
				t.Errorf("Evaluate = %+v\n                want %+v", got, tt.want)
			}
			if a := p.Allows(tt.t, tt.icmp, tt.src, tt.dst); a != tt.want.Allowed() {
				t.Errorf("Allows = %v, want %v", a, tt.want.Allowed())
			}
		})
	}
}

func TestCountersSurviveRecompile(t *testing.T) {
	ctr := NewCounters()
	c := testConfig()
	p1, err := Compile(c, 1, ctr)
	if err != nil {
		t.Fatal(err)
	}
	web80 := tup(pTCP, "203.0.113.5", "10.0.0.10", 40000, 80)
	for range 3 {
		p1.Evaluate(web80, 0, -1, 1)
	}
	p1.Allows(web80, 0, -1, 1) // does not count
	// Web to db counts on both stages.
	p1.Evaluate(tup(pTCP, "10.0.0.10", "10.0.0.20", 40000, 5432), 0, 1, 2)
	hits := func(p *Policy, group, id string) (uint64, bool) {
		for _, h := range p.RuleHits() {
			if h.Group == group && h.RuleID == id {
				return h.Hits, true
			}
		}
		return 0, false
	}
	for _, w := range []struct {
		g, id string
		n     uint64
	}{{"web", "r1", 3}, {"web", "r6", 1}, {"db", "d1", 1}, {"db", "d2", 0}} {
		if n, _ := hits(p1, w.g, w.id); n != w.n {
			t.Errorf("%s/%s hits = %d, want %d", w.g, w.id, n, w.n)
		}
	}
	// Recompile with r1 moved, its port changed, and r6 removed.
	web := &c.Groups[0]
	r1 := web.Rules[0]
	r1.PortMin, r1.PortMax = 8080, 8080
	web.Rules = append(web.Rules[1:5], web.Rules[6], r1)
	p2, err := Compile(c, 2, ctr)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := hits(p2, "web", "r1"); n != 3 {
		t.Errorf("r1 hits after recompile = %d, want 3", n)
	}
	// The removed rule keeps its count, marked removed, after the
	// configured rules.
	if got := p2.RuleHits(); got[len(got)-1] != (RuleHit{Group: "web", RuleID: "r6", Hits: 1, Removed: true}) {
		t.Errorf("last hit %+v, want r6's final count marked removed", got[len(got)-1])
	}
	// Added again, a rule of the same id counts afresh; the old record stays.
	web.Rules = append(web.Rules, Rule{ID: "r6", Direction: Ingress, Action: Allow, Proto: TCP, PortMin: 9, PortMax: 9, ICMPType: -1})
	p3, err := Compile(c, 3, ctr)
	if err != nil {
		t.Fatal(err)
	}
	var r6 []RuleHit
	for _, h := range p3.RuleHits() {
		if h.RuleID == "r6" {
			r6 = append(r6, h)
		}
	}
	if len(r6) != 2 || r6[0].Removed || r6[0].Hits != 0 || !r6[1].Removed || r6[1].Hits != 1 {
		t.Errorf("r6 after re-adding: %+v", r6)
	}
	web.Rules = web.Rules[:len(web.Rules)-1]
	if _, err := Compile(c, 2, ctr); err != nil {
		t.Fatal(err)
	}
	p2.Evaluate(tup(pTCP, "203.0.113.5", "10.0.0.10", 40000, 8080), 0, -1, 1)
	if n, _ := hits(p2, "web", "r1"); n != 4 {
		t.Errorf("r1 hits = %d, want 4", n)
	}
	if p2.Gen() != 2 || p1.Gen() != 1 || p2.Counters() != ctr {
		t.Error("generation or counters not kept")
	}
	// A failed compile leaves counters alone.
	c.Groups[0].Rules[0].RemoteCIDR = "bad"
	if _, err := Compile(c, 3, ctr); err == nil {
		t.Fatal("bad config compiled")
	}
	if n, _ := hits(p2, "web", "r1"); n != 4 {
		t.Errorf("r1 hits after failed compile = %d, want 4", n)
	}
	// The old policy, still in use by a reader, keeps working.
	if v := p1.Evaluate(web80, 0, -1, 1); v.RuleID != "r1" {
		t.Errorf("old policy: %+v", v)
	}
}

func TestEvaluateNoAllocs(t *testing.T) {
	p, err := Compile(testConfig(), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	tp := tup(pTCP, "10.0.0.10", "10.0.0.20", 40000, 5432)
	allocs := testing.AllocsPerRun(1000, func() {
		if v := p.Evaluate(tp, 0, 1, 2); v.Action != Allow {
			t.Fatalf("not allowed: %+v", v)
		}
		p.Allows(tp, 0, 1, 2)
	})
	if allocs != 0 {
		t.Fatalf("Evaluate: %v allocs, want 0", allocs)
	}
}
