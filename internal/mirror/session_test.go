package mirror

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

func TestValidate(t *testing.T) {
	ok := func() Session { return pcapSession("s", "web", "db/nic1") }
	tests := []struct {
		name  string
		edit  func(*Session)
		field string // "" when valid
	}{
		{"pcap defaults", func(*Session) {}, ""},
		{"port target", func(s *Session) { s.Target = Target{Kind: TargetPort, Port: "ids"} }, ""},
		{"erspan", func(s *Session) { s.Target = Target{Kind: TargetERSPAN, Remote: "192.0.2.1", SessionID: 1023} }, ""},
		{"filter", func(s *Session) { s.Filter = &Filter{Proto: "tcp", Port: 443, Host: "10.0.0.0/8"} }, ""},
		{"bad name", func(s *Session) { s.Name = "Bad_Name" }, "name"},
		{"long name", func(s *Session) { s.Name = strings.Repeat("a", 64) }, "name"},
		{"no network", func(s *Session) { s.Network = "" }, "network"},
		{"no sources", func(s *Session) { s.Sources = nil }, "sources"},
		{"bad source", func(s *Session) { s.Sources = []string{"web/eth0"} }, "sources[0]"},
		{"nic out of range", func(s *Session) { s.Sources = []string{"web/nic8"} }, "sources[0]"},
		{"nic leading zero", func(s *Session) { s.Sources = []string{"web/nic01"} }, "sources[0]"},
		{"path in source", func(s *Session) { s.Sources = []string{"../x"} }, "sources[0]"},
		{"twice", func(s *Session) { s.Sources = []string{"web", "web"} }, "sources[1]"},
		{"direction", func(s *Session) { s.Direction = "sideways" }, "direction"},
		{"snaplen", func(s *Session) { s.SnapLen = 63 }, "snaplen"},
		{"filter proto", func(s *Session) { s.Filter = &Filter{Proto: "sctp"} }, "filter.proto"},
		{"icmp port", func(s *Session) { s.Filter = &Filter{Proto: "icmp", Port: 1} }, "filter.port"},
		{"filter host", func(s *Session) { s.Filter = &Filter{Host: "example.com"} }, "filter.host"},
		{"no kind", func(s *Session) { s.Target.Kind = "" }, "target.kind"},
		{"kind", func(s *Session) { s.Target.Kind = "file" }, "target.kind"},
		{"max bytes", func(s *Session) { s.Target.MaxBytes = 1000 }, "target.max_bytes"},
		{"max bytes high", func(s *Session) { s.Target.MaxBytes = 5 << 30 }, "target.max_bytes"},
		{"max files", func(s *Session) { s.Target.MaxFiles = 1001 }, "target.max_files"},
		{"pcap with remote", func(s *Session) { s.Target.Remote = "192.0.2.1" }, "target.remote"},
		{"port missing", func(s *Session) { s.Target = Target{Kind: TargetPort} }, "target.port"},
		{"port is a source", func(s *Session) { s.Target = Target{Kind: TargetPort, Port: "web"} }, "sources[0]"},
		{"port's nic is a source", func(s *Session) { s.Target = Target{Kind: TargetPort, Port: "db/nic1"} }, "sources[1]"},
		{"erspan v6", func(s *Session) { s.Target = Target{Kind: TargetERSPAN, Remote: "2001:db8::1"} }, "target.remote"},
		{"erspan broadcast", func(s *Session) { s.Target = Target{Kind: TargetERSPAN, Remote: "255.255.255.255"} }, "target.remote"},
		{"erspan id", func(s *Session) { s.Target = Target{Kind: TargetERSPAN, Remote: "192.0.2.1", SessionID: 1024} }, "target.session_id"},
		{"erspan pps", func(s *Session) { s.Target = Target{Kind: TargetERSPAN, Remote: "192.0.2.1", MaxPPS: MaxMaxPPS + 1} }, "target.max_pps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok()
			tt.edit(&s)
			s.Normalize()
			err := s.Validate()
			var fe *netsw.FieldError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field):
				t.Fatalf("error %v, want one for field %s", err, tt.field)
			}
		})
	}
}

func TestFilterMatch(t *testing.T) {
	fl := packettest.Flow{SrcMAC: packet.MAC{2, 0, 0, 0, 0, 1}, DstMAC: packet.MAC{2, 0, 0, 0, 0, 2},
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("192.168.1.9")}
	tcp := fl.TCP(40000, 443, packet.TCPSyn, 1, 0, nil)
	udp := fl.UDP(53, 40000, nil)
	icmp := fl.ICMP(8, 0, packettest.Echo(1, 1))
	arp := packettest.ARP(packet.Broadcast, fl.SrcMAC, packet.ARPRequest, fl.SrcMAC, fl.Src, packet.MAC{}, fl.Dst)
	tests := []struct {
		f    Filter
		want [4]bool // tcp, udp, icmp, arp
	}{
		{Filter{Proto: "tcp"}, [4]bool{true, false, false, false}},
		{Filter{Proto: "udp", Port: 53}, [4]bool{false, true, false, false}},
		{Filter{Port: 443}, [4]bool{true, false, false, false}},
		{Filter{Proto: "icmp"}, [4]bool{false, false, true, false}},
		{Filter{Host: "192.168.0.0/16"}, [4]bool{true, true, true, false}},
		{Filter{Host: "10.0.0.2"}, [4]bool{false, false, false, false}},
		{Filter{Proto: "tcp", Port: 443, Host: "10.0.0.1"}, [4]bool{true, false, false, false}},
	}
	for _, tt := range tests {
		ff, err := tt.f.compile()
		if err != nil {
			t.Fatal(err)
		}
		for i, raw := range [][]byte{tcp, udp, icmp, arp} {
			var f packet.Frame
			if r := packet.Parse(raw, &f); r != packet.OK {
				t.Fatal(r)
			}
			if got := ff.match(&f); got != tt.want[i] {
				t.Errorf("%+v on frame %d: %v, want %v", tt.f, i, got, tt.want[i])
			}
		}
	}
}

// FuzzSession: any JSON either fails to decode or validate, or gives a
// session that survives a JSON round trip unchanged, validates again, and
// compiles into a matcher.
func FuzzSession(f *testing.F) {
	f.Add([]byte(`{"name":"s","network":"n","sources":["a","b/nic1"],"target":{"kind":"pcap"}}`))
	f.Add([]byte(`{"name":"s","network":"n","sources":["a"],"direction":"in","filter":{"proto":"tcp","port":443,"host":"10.0.0.0/8"},"target":{"kind":"erspan","remote":"192.0.2.1","session_id":5},"snaplen":128}`))
	f.Add([]byte(`{"name":"s","network":"n","sources":["a"],"target":{"kind":"port","port":"m/nic2"}}`))
	f.Add([]byte(`{"name":"s","network":"n","sources":["a"],"filter":{"host":"fe80::1%eth0"},"target":{"kind":"pcap","max_bytes":65536,"max_files":1000}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var s Session
		if json.Unmarshal(in, &s) != nil {
			return
		}
		s.Normalize()
		if err := s.Validate(); err != nil {
			var fe *netsw.FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var again Session
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatal(err)
		}
		again.Normalize()
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip changed the session:\n%+v\n%+v", s, again)
		}
		if err := again.Validate(); err != nil {
			t.Fatalf("valid session refused after a round trip: %v", err)
		}
		m := newMatcher(&s)
		if len(m.vms)+len(m.ports) != len(s.Sources) || (s.Filter != nil) != (m.filter != nil) {
			t.Fatalf("matcher %+v of %+v", m, s)
		}
		if err := checkTogether([]Session{s}); err != nil {
			t.Fatalf("one valid session refused: %v", err)
		}
	})
}
