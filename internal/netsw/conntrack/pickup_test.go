package conntrack

import (
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

func TestPickUp(t *testing.T) {
	tb := New(Config{MaxFlows: 100})
	data := tcp(vmA, vmB, 40000, 5432, packet.TCPAck|packet.TCPPsh)
	if fl, _, r := tb.Lookup(0, data); fl != nil || r != packet.OK {
		t.Fatalf("no flow yet: %v %v", fl, r)
	}
	if _, r := tb.Create(0, data, 1, 1, 2); r != packet.CTInvalid {
		t.Fatalf("Create of a mid-stream ACK = %v", r)
	}
	fl, r := tb.PickUp(0, data, 1, 1, 2)
	if r != packet.OK || fl.State() != StateEstablished {
		t.Fatalf("PickUp = %v %v", fl, r)
	}
	// Both directions now belong to the flow; FIN/ACK closes normally.
	if got, dir, r := tb.Lookup(1, reverse(data, packet.TCPAck)); got != fl || dir != Reply || r != packet.OK {
		t.Fatalf("reply after pick-up: %v %v %v", got, dir, r)
	}
	if _, _, r := tb.Lookup(2, tcp(vmA, vmB, 40000, 5432, packet.TCPAck|packet.TCPFin)); r != packet.OK || fl.State() != StateClosing {
		t.Fatalf("FIN after pick-up: %v %v", r, fl.State())
	}
	for _, flags := range []uint8{packet.TCPSyn, packet.TCPRst | packet.TCPAck, packet.TCPSyn | packet.TCPAck, 0} {
		if _, r := tb.PickUp(0, tcp(vmA, vmB, 40001, 5432, flags), 1, 1, 2); r != packet.CTInvalid {
			t.Errorf("PickUp with flags %#x = %v, want ct_invalid", flags, r)
		}
	}
	if _, r := tb.PickUp(0, udp(vmA, vmB, 1, 53), 1, 1, 2); r != packet.CTInvalid {
		t.Errorf("PickUp of UDP = %v", r)
	}
}
