package firewall

import (
	"fmt"
	"net/netip"
	"testing"
)

// bigConfig has one port whose ingress rules are 1,000 rules, of which only
// the last matches the benchmark's packet, plus a 1,000-member remote group.
func bigConfig(tb testing.TB) (*Policy, func(i int) Verdict) {
	var rules []Rule
	for i := range 999 {
		r := Rule{ID: fmt.Sprintf("r%d", i), Direction: Ingress, Action: Allow, ICMPType: -1}
		switch i % 4 {
		case 0:
			r.Proto, r.PortMin, r.PortMax = TCP, uint16(1000+i), uint16(1000+i)
		case 1:
			r.Proto, r.PortMin, r.PortMax, r.RemoteCIDR = TCP, 443, 443, fmt.Sprintf("10.%d.0.0/16", i%256)
		case 2:
			r.Proto, r.RemoteGroup = TCP, "clients"
			r.PortMin, r.PortMax = 8000, 8999
		case 3:
			r.Proto, r.ICMPType = ICMP, i%256
		}
		rules = append(rules, r)
	}
	rules = append(rules, Rule{ID: "last", Direction: Ingress, Action: Allow, Proto: TCP, PortMin: 443, PortMax: 443, RemoteGroup: "clients"})
	c := Config{Groups: []Group{{Name: "big", Rules: rules}, {Name: "clients"}},
		Ports: []Port{{ID: 1, Network: "lan", IPs: ips("192.168.0.1"), Groups: []string{"big"}}}}
	for i := range 1000 {
		c.Ports = append(c.Ports, Port{ID: int32(100 + i), Network: "lan",
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)})}, Groups: []string{"clients"}})
	}
	p, err := Compile(c, 1, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return p, func(i int) Verdict {
		i %= 1000
		t := tup(pTCP, "172.16.0.0", "192.168.0.1", uint16(i), 443)
		t.Src = netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)})
		return p.Evaluate(t, 0, int32(100+i), 1)
	}
}

func BenchmarkEvaluate1000Rules(b *testing.B) {
	_, eval := bigConfig(b)
	if v := eval(0); v.RuleID != "last" {
		b.Fatalf("verdict %+v", v)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		eval(i)
	}
}

func BenchmarkEvaluateSmall(b *testing.B) {
	p, err := Compile(testConfig(), 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	t := tup(pTCP, "10.0.0.10", "10.0.0.20", 40000, 5432)
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(t, 0, 1, 2)
	}
}

func BenchmarkCompile1000Rules(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		bigConfig(b)
	}
}
