package engine

import (
	"testing"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

// TestNoAllocs: once a flow is set up, inspecting its packets with no
// rule matching allocates nothing (UDP, and TCP data in order on a flow
// without an application parser; the HTTP parser allocates its buffers).
func TestNoAllocs(t *testing.T) {
	d := newTestDetector(t, `
alert udp any any -> any 53 (content:"evil"; sid:1;)
alert tcp any any -> any 80 (content:"attack"; content:"here"; distance:0; sid:2;)
alert ip [192.0.2.0/24] any -> any any (sid:3;)
`)
	u := Packet{Time: t0, Proto: ProtoUDP, Src: cliIP, Dst: srvIP, SrcPort: 1000, DstPort: 9, Payload: []byte("harmless payload of a udp packet")}
	d.Packet(&u)
	if n := testing.AllocsPerRun(200, func() { d.Packet(&u) }); n != 0 {
		t.Errorf("udp: %.1f allocs per packet", n)
	}
	c := newTCPConn(d, 4444)
	payload := []byte("HELO a protocol the engine does not parse; attack? no")
	c.send(true, rules.TCPAck|rules.TCPPsh, string(payload))
	c.send(false, rules.TCPAck, "")
	data := []byte("plain data that matches no rule at all")
	pd := Packet{Time: t0, Proto: ProtoTCP, Src: cliIP, Dst: srvIP, SrcPort: 4444, DstPort: 80,
		TCPFlags: rules.TCPAck | rules.TCPPsh, Window: 65535, Payload: data}
	pa := Packet{Time: t0, Proto: ProtoTCP, Src: srvIP, Dst: cliIP, SrcPort: 80, DstPort: 4444,
		TCPFlags: rules.TCPAck, Window: 65535}
	n := testing.AllocsPerRun(200, func() {
		pd.Seq, pd.Ack = c.cseq, c.sseq
		c.cseq += uint32(len(data))
		pa.Seq, pa.Ack = c.sseq, c.cseq
		d.Packet(&pd)
		d.Packet(&pa)
	})
	if n != 0 {
		t.Errorf("tcp: %.1f allocs per data packet and ack", n)
	}
}
