package firewall

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// fuzzBytes hands out fuzz input a byte at a time, then zeros.
type fuzzBytes []byte

func (b *fuzzBytes) next() byte {
	if len(*b) == 0 {
		return 0
	}
	v := (*b)[0]
	*b = (*b)[1:]
	return v
}

func (b *fuzzBytes) pick(options []string) string { return options[int(b.next())%len(options)] }

var (
	fuzzNames = []string{"", "a", "b", "c", "Bad", "-x"}
	fuzzCIDRs = []string{"", "10.0.0.0/8", "10.0.0.1/32", "fd00::/8", "0.0.0.0/0", "10.0.0/8", "10.1.2.3/8", "::/0", "garbage"}
	fuzzAddrs = []string{"10.0.0.1", "10.0.0.2", "10.9.9.9", "fd00::1", "192.0.2.1", "::ffff:10.0.0.1"}
)

// rule builds a rule that is usually valid; one in eight takes raw values
// for every field, which are usually not.
func (b *fuzzBytes) rule(i int) Rule {
	if b.next()%8 == 0 {
		r := Rule{
			ID:        b.pick([]string{"r1", "r2", "r3", ""}),
			Direction: Direction(b.next() % 4),
			Action:    Action(b.next() % 5),
			Proto:     Proto(b.next() % 5),
			PortMin:   uint16(b.next()) * 4,
			PortMax:   uint16(b.next()) * 4,
			ICMPType:  int(int8(b.next())),
		}
		r.RemoteCIDR = b.pick(fuzzCIDRs)
		if b.next()%2 == 0 {
			r.RemoteGroup = b.pick(fuzzNames)
		}
		return r
	}
	r := Rule{ID: fmt.Sprintf("r%d", i), Direction: Direction(1 + b.next()%2), Action: Action(1 + b.next()%3),
		Proto: Proto(b.next() % 4), ICMPType: -1}
	switch r.Proto {
	case TCP, UDP:
		if lo := uint16(b.next()); lo != 0 {
			r.PortMin, r.PortMax = lo*4, lo*4+uint16(b.next())
		}
	case ICMP:
		r.ICMPType = int(b.next()) - 1
	}
	switch b.next() % 4 {
	case 1:
		r.RemoteCIDR = b.pick(fuzzCIDRs[1:5])
	case 2:
		r.RemoteIPSet = b.pick([]string{"a", "b"})
	case 3:
		r.RemoteGroup = b.pick([]string{"a", "b"})
	}
	return r
}

// fuzzConfig builds a small configuration from fuzz bytes; many of them are
// invalid on purpose.
func fuzzConfig(b *fuzzBytes) Config {
	var c Config
	for g := range int(b.next() % 4) {
		grp := Group{Name: []string{"a", "b", "c"}[g]}
		if b.next()%8 == 0 {
			grp.Name = b.pick(fuzzNames)
		}
		for i := range int(b.next() % 6) {
			r := b.rule(i)
			grp.Rules = append(grp.Rules, r)
		}
		c.Groups = append(c.Groups, grp)
	}
	for i := range int(b.next() % 3) {
		s := IPSet{Name: []string{"a", "b"}[i], CIDRs: []string{b.pick(fuzzCIDRs[1:5]), b.pick(fuzzCIDRs[1:5])}}
		if b.next()%8 == 0 {
			s.Name, s.CIDRs[0] = b.pick(fuzzNames), b.pick(fuzzCIDRs)
		}
		c.IPSets = append(c.IPSets, s)
	}
	for i := range int(b.next() % 4) {
		p := Port{ID: int32(i), Network: b.pick([]string{"n1", "n2"})}
		for range int(b.next() % 3) {
			p.IPs = append(p.IPs, netip.MustParseAddr(b.pick(fuzzAddrs)))
		}
		for range int(b.next() % 3) {
			p.Groups = append(p.Groups, b.pick(fuzzNames[:4]))
		}
		c.Ports = append(c.Ports, p)
	}
	c.NetworkDefaults = map[string]Defaults{"n1": {Ingress: DefaultIngress(b.next() % 3), Egress: Action(b.next() % 4)}}
	if b.next()%8 == 0 {
		c.NetworkDefaults["n2"] = Defaults{Ingress: DefaultIngress(b.next()), Egress: Action(b.next())}
	}
	return c
}

func FuzzCompileEvaluate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 0, 1, 1, 1, 0, 20, 1, 0, 0, 0, 0, 1, 1, 1, 2, 2})
	f.Add([]byte("\x03\x05\x01\x01\x02\x01\x00\x00\xff\x01\x02\x00\x02\x01\x01\x00\x00\x00\x03\x03"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := fuzzBytes(data)
		c := fuzzConfig(&b)
		verr := Validate(c)
		p, err := Compile(c, 1, nil)
		if (verr == nil) != (err == nil) {
			t.Fatalf("Validate %v but Compile %v", verr, err)
		}
		if err != nil {
			return
		}
		for range 8 {
			tp := packet.Tuple{
				Src: netip.MustParseAddr(b.pick(fuzzAddrs)), Dst: netip.MustParseAddr(b.pick(fuzzAddrs)),
				SrcPort: uint16(b.next()) * 4, DstPort: uint16(b.next()) * 4,
				Proto: []uint8{packet.ProtoTCP, packet.ProtoUDP, packet.ProtoICMP, packet.ProtoICMPv6, 47}[b.next()%5],
			}
			icmp, src, dst := b.next(), int32(b.next()%6)-1, int32(b.next()%6)-1
			v := p.Evaluate(tp, icmp, src, dst)
			if (v.Action == Allow) != (v.Reason == packet.OK) || v.Action == 0 {
				t.Fatalf("inconsistent verdict %+v", v)
			}
			if v.RuleID != "" && v.Reason == packet.FWDefault {
				t.Fatalf("default verdict names rule: %+v", v)
			}
			if a := p.Allows(tp, icmp, src, dst); a != v.Allowed() {
				t.Fatalf("Allows %v but Evaluate %+v", a, v)
			}
		}
		_ = fmt.Sprint(p.RuleHits())
	})
}
