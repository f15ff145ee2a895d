package engine

import (
	"testing"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

// Bytes the reassembler delivers to one direction while it processes a
// packet of the other direction: the receiver acknowledged bytes the
// engine never saw (capture loss, a segment passed fail-open), so the
// out-of-order bytes behind that hole are handed over at the ACK. They
// must be stream-inspected in their own direction, exactly once.

// unseen advances c's sequence number of one side by n bytes the engine
// never sees.
func (c *tcpConn) unseen(toServer bool, n uint32) {
	if toServer {
		c.cseq += n
	} else {
		c.sseq += n
	}
}

// sendAt sends payload at sequence number seq of one side (out of order),
// without moving c's counters; the ACK is the other side's counter.
func (c *tcpConn) sendAt(toServer bool, seq uint32, payload string) {
	save := c.cseq
	if !toServer {
		save = c.sseq
	}
	if toServer {
		c.cseq = seq
	} else {
		c.sseq = seq
	}
	c.send(toServer, rules.TCPAck|rules.TCPPsh, payload)
	if toServer {
		c.cseq = save
	} else {
		c.sseq = save
	}
}

// ackTo sends a packet from the other side of toServer's direction that
// acknowledges it up to seq, carrying payload of its own.
func (c *tcpConn) ackTo(toServer bool, seq uint32, payload string) {
	if toServer {
		save := c.cseq
		c.cseq = seq
		c.send(false, rules.TCPAck, payload)
		c.cseq = save
		return
	}
	save := c.sseq
	c.sseq = seq
	c.send(true, rules.TCPAck, payload)
	c.sseq = save
}

const ackRules = `
alert tcp any any -> any any (msg:"split"; content:"ATTACK-PATTERN"; sid:1;)
alert tcp 10.0.0.1 any -> 10.0.0.2 80 (msg:"oriented"; flow:to_server,established; content:"ATTACK-PATTERN"; sid:2;)
alert tcp 10.0.0.2 80 -> 10.0.0.1 any (msg:"reply"; flow:to_client; content:"REPLY-PATTERN"; sid:3;)
`

func TestAckDeliveredStream(t *testing.T) {
	for _, tt := range []struct {
		name string
		run  func(c *tcpConn)
		// alerts wanted of sids 1, 2 and 3
		want [3]int
	}{
		{"ack between segments", func(c *tcpConn) {
			c.unseen(true, 4)
			c.send(true, rules.TCPAck|rules.TCPPsh, "ATTACK-") // behind a hole
			c.ackTo(true, c.cseq, "")                          // hole and "ATTACK-" delivered
			c.send(true, rules.TCPAck|rules.TCPPsh, "PATTERN") // in order
			c.ackTo(true, c.cseq, "")
		}, [3]int{1, 1, 0}},
		{"one ack for both segments", func(c *tcpConn) {
			c.unseen(true, 4)
			c.send(true, rules.TCPAck|rules.TCPPsh, "ATTACK-")
			c.send(true, rules.TCPAck|rules.TCPPsh, "PATTERN")
			c.ackTo(true, c.cseq, "") // both delivered here
		}, [3]int{1, 1, 0}},
		{"one ack, then more data", func(c *tcpConn) {
			c.unseen(true, 4)
			c.send(true, rules.TCPAck|rules.TCPPsh, "ATTACK-")
			c.send(true, rules.TCPAck|rules.TCPPsh, "PATTERN")
			c.ackTo(true, c.cseq, "")
			c.send(true, rules.TCPAck|rules.TCPPsh, "after") // would turn it into old context
			c.ackTo(true, c.cseq, "")
		}, [3]int{1, 1, 0}},
		{"out of order behind a hole", func(c *tcpConn) {
			c.unseen(true, 4)
			start := c.cseq
			c.sendAt(true, start+7, "PATTERN")
			c.sendAt(true, start, "ATTACK-")
			c.cseq = start + 14
			c.ackTo(true, c.cseq, "")
		}, [3]int{1, 1, 0}},
		{"the acking packet carries its own data", func(c *tcpConn) {
			c.unseen(true, 4)
			c.send(true, rules.TCPAck|rules.TCPPsh, "ATTACK-")
			c.send(true, rules.TCPAck|rules.TCPPsh, "PATTERN")
			c.ackTo(true, c.cseq, "REPLY-PATTERN") // server data and the client's bytes
			c.ackTo(false, c.sseq, "")
		}, [3]int{1, 1, 1}},
		{"the acking packet carries the same pattern", func(c *tcpConn) {
			c.unseen(true, 4)
			c.send(true, rules.TCPAck|rules.TCPPsh, "ATTACK-")
			c.send(true, rules.TCPAck|rules.TCPPsh, "PATTERN")
			c.ackTo(true, c.cseq, "ATTACK-PATTERN") // sid 1 once per direction
			c.ackTo(false, c.sseq, "")
		}, [3]int{2, 1, 0}},
		{"server bytes delivered at the client's ack", func(c *tcpConn) {
			c.send(true, rules.TCPAck|rules.TCPPsh, "GO")
			c.unseen(false, 3)
			c.send(false, rules.TCPAck|rules.TCPPsh, "REPLY-")
			c.send(false, rules.TCPAck|rules.TCPPsh, "PATTERN")
			c.ackTo(false, c.sseq, "")
		}, [3]int{0, 0, 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDetector(t, ackRules)
			c := newTCPConn(d, 41000)
			tt.run(c)
			d.Flush()
			for i, w := range tt.want {
				if got := count(c.alerts, uint32(i+1)); got != w {
					t.Fatalf("alerts %v (to_server %v), want sids 1-3 %v times", c.alerts, c.alertsToServer, tt.want)
				}
			}
			for i, sid := range c.alerts {
				if sid == 2 && !c.alertsToServer[i] || sid == 3 && c.alertsToServer[i] {
					t.Errorf("alert %d (sid %d): to_server %v", i, sid, c.alertsToServer[i])
				}
			}
		})
	}
}

// The alert raised at the other side's ACK carries the addresses of the
// stream's direction, and Inline blocks the flow for a drop rule matched
// there.
func TestAckDeliveredAlertAddresses(t *testing.T) {
	d := newTestDetector(t, ackRules)
	c := newTCPConn(d, 41001)
	c.unseen(true, 4)
	c.send(true, rules.TCPAck|rules.TCPPsh, "ATTACK-PATTERN")
	p := Packet{Time: c.now, Proto: ProtoTCP, TCPFlags: rules.TCPAck, Window: 65535,
		Src: srvIP, Dst: cliIP, SrcPort: 80, DstPort: 41001, Seq: c.sseq, Ack: c.cseq}
	alerts := d.Packet(&p)
	if len(alerts) != 2 {
		t.Fatalf("%d alerts, want 2", len(alerts))
	}
	for _, a := range alerts {
		if a.Src != cliIP || a.Dst != srvIP || a.SrcPort != 41001 || a.DstPort != 80 || !a.ToServer {
			t.Errorf("sid %d: %v:%d -> %v:%d to_server %v", a.Rule.SID, a.Src, a.SrcPort, a.Dst, a.DstPort, a.ToServer)
		}
	}
	if p.Src != srvIP || p.SrcPort != 80 {
		t.Error("the caller's packet was changed")
	}
}

// An HTTP side that a packet of the other direction completes (here a
// request that waited behind a hole in the previous request's body until
// the server acknowledged it) is judged with the request's endpoints: the
// rule header's addresses and ports match and the alert carries them.
// Judged with the server's packet as it is, the rule never matched.
func TestAckDeliveredHTTPSide(t *testing.T) {
	d := newTestDetector(t, `alert http 10.0.0.1 any -> 10.0.0.2 80 (msg:"uri"; flow:to_server,established; http.uri; content:"/evil"; sid:11;)`)
	c := newTCPConn(d, 41012)
	c.send(true, rules.TCPAck|rules.TCPPsh, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\naaaa")
	c.unseen(true, 4) // the body's end, never seen
	c.send(true, rules.TCPAck|rules.TCPPsh, "GET /evil HTTP/1.1\r\nHost: x\r\n\r\n")
	if len(c.alerts) != 0 {
		t.Fatalf("alerts before the ack: %v", c.alerts)
	}
	p := Packet{Time: c.now, Proto: ProtoTCP, TCPFlags: rules.TCPAck, Window: 65535,
		Src: srvIP, Dst: cliIP, SrcPort: 80, DstPort: 41012, Seq: c.sseq, Ack: c.cseq}
	alerts := d.Packet(&p)
	if len(alerts) != 1 {
		t.Fatalf("%d alerts at the server's ack, want 1", len(alerts))
	}
	if a := alerts[0]; a.Src != cliIP || a.Dst != srvIP || a.SrcPort != 41012 || a.DstPort != 80 || !a.ToServer {
		t.Errorf("alert: %v:%d -> %v:%d to_server %v", a.Src, a.SrcPort, a.Dst, a.DstPort, a.ToServer)
	}
	if p.Src != srvIP || p.SrcPort != 80 {
		t.Error("the caller's packet was changed")
	}
}
