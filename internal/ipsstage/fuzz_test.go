package ipsstage

import (
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// FuzzProcess feeds arbitrary frames, as a guest sends them, through the
// stage (after the switch's parser, as in the pipeline), in block mode with
// a group override, alternating directions: no panic, and every verdict is
// a pass or a drop with an IPS reason.
func FuzzProcess(f *testing.F) {
	pol := blockPolicy()
	pol.Groups = map[string]Mode{"lab": ModeAlert}
	l := newLab(f, pol, Options{Shards: 2})
	a, b := l.attach("a", 1), l.attach("b", 2, "web", "lab")
	fl := a.flow(b)
	f.Add(fl.TCP(1, 80, packet.TCPSyn, 1, 0, nil))
	f.Add(fl.TCP(1, 80, packet.TCPAck|packet.TCPPsh, 2, 1, []byte("GET /?ATTACK-7f3a9 HTTP/1.1\r\nHost: x\r\n\r\n")))
	f.Add(fl.TCP(1, 8080, packet.TCPAck, 2, 1, []byte("REJECT-ME")))
	f.Add(fl.UDP(5, 53, dnsQuery("a.evil.example")))
	f.Add(fl.UDP(5, 9999, []byte("UDP-BAD")))
	f.Add(fl.ICMP(8, 0, []byte{0, 1, 0, 1}))
	var fr packet.Frame
	now := int64(1)
	f.Fuzz(func(t *testing.T, data []byte) {
		if packet.Parse(data, &fr) != packet.OK {
			return // the parse stage drops it before any inspection
		}
		in, out := a.port, b.port
		if len(data) > 0 && data[len(data)-1]&1 == 1 {
			in, out = out, in
		}
		now += 1000
		c := netsw.FrameContext{Raw: data, Frame: &fr, In: in, Out: out, Now: now}
		v := l.ips.Process(&c)
		switch {
		case v.Action == netsw.Pass:
		case v.Action == netsw.Drop && (v.Reason == packet.IPSDrop || v.Reason == packet.IPSFlowBlocked || v.Reason == packet.IPSStream):
		default:
			t.Fatalf("verdict %+v", v)
		}
	})
}
