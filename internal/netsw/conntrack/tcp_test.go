package conntrack

import (
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// TestTCPStep checks single transitions of the pure TCP machine.
func TestTCPStep(t *testing.T) {
	const both = tcpFinOrig | tcpFinReply
	tests := []struct {
		name     string
		st       State
		bits     uint8
		dir      Dir
		flags    uint8
		wantSt   State
		wantBits uint8
		want     step
	}{
		{"syn retransmit", StateNew, 0, Original, syn, StateNew, 0, stepOK},
		{"syn-ack", StateNew, 0, Reply, synack, StateNew, tcpSynAckSeen, stepOK},
		{"syn-ack retransmit", StateNew, tcpSynAckSeen, Reply, synack, StateNew, tcpSynAckSeen, stepOK},
		{"final ack", StateNew, tcpSynAckSeen, Original, ack, StateEstablished, tcpSynAckSeen, stepOK},
		{"first data from originator", StateNew, tcpSynAckSeen, Original, pshack, StateEstablished, tcpSynAckSeen, stepOK},
		{"ack+fin completes and closes", StateNew, tcpSynAckSeen, Original, finack, StateClosing, tcpSynAckSeen | tcpFinOrig, stepOK},
		{"ack before syn-ack", StateNew, 0, Original, ack, StateNew, 0, stepInvalid},
		{"replier data before syn-ack", StateNew, 0, Reply, pshack, StateNew, 0, stepInvalid},
		{"replier data before final ack", StateNew, tcpSynAckSeen, Reply, pshack, StateNew, tcpSynAckSeen, stepInvalid},
		{"simultaneous open", StateNew, 0, Reply, syn, StateNew, 0, stepInvalid},
		{"syn-ack from originator", StateNew, 0, Original, synack, StateNew, 0, stepInvalid},
		{"fin without ack", StateNew, tcpSynAckSeen, Original, fin, StateNew, tcpSynAckSeen, stepInvalid},
		{"syn+fin", StateNew, 0, Original, syn | fin, StateNew, 0, stepInvalid},
		{"syn+rst", StateEstablished, 0, Original, syn | rst, StateEstablished, 0, stepInvalid},
		{"refused: rst from replier", StateNew, 0, Reply, rst | ack, StateClosed, 0, stepOK},
		{"data", StateEstablished, 1, Original, pshack, StateEstablished, 1, stepOK},
		{"reply data", StateEstablished, 1, Reply, ack, StateEstablished, 1, stepOK},
		{"syn on established", StateEstablished, 1, Original, syn, StateEstablished, 1, stepInvalid},
		{"syn from replier on established", StateEstablished, 1, Reply, syn, StateEstablished, 1, stepInvalid},
		{"late syn-ack retransmit", StateEstablished, 1, Reply, synack, StateEstablished, 1, stepOK},
		{"no ack on established", StateEstablished, 1, Original, psh, StateEstablished, 1, stepInvalid},
		{"null segment", StateEstablished, 1, Original, 0, StateEstablished, 1, stepInvalid},
		{"fin from originator", StateEstablished, 1, Original, finack, StateClosing, 1 | tcpFinOrig, stepOK},
		{"fin from replier", StateEstablished, 1, Reply, finack, StateClosing, 1 | tcpFinReply, stepOK},
		{"second fin", StateClosing, 1 | tcpFinOrig, Reply, finack, StateClosing, 1 | both, stepOK},
		{"last ack", StateClosing, 1 | both, Original, ack, StateClosing, 1 | both, stepOK},
		{"rst on established", StateEstablished, 1, Original, rst, StateClosed, 1, stepOK},
		{"rst on closing", StateClosing, 1 | tcpFinOrig, Reply, rst | ack, StateClosed, 1 | tcpFinOrig, stepOK},
		{"rst retransmit", StateClosed, 1, Reply, rst, StateClosed, 1, stepOK},
		{"syn reuses time_wait", StateClosing, 1 | both, Original, syn, StateClosing, 1 | both, stepReopen},
		{"syn in half-close", StateClosing, 1 | tcpFinOrig, Original, syn, StateClosing, 1 | tcpFinOrig, stepInvalid},
		{"syn reuses closed", StateClosed, 1, Original, syn, StateClosed, 1, stepReopen},
		{"syn from replier on closed", StateClosed, 1, Reply, syn, StateClosed, 1, stepInvalid},
		{"data after rst", StateClosed, 1, Original, pshack, StateClosed, 1, stepInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, bits, r := tcpStep(tt.st, tt.bits, tt.dir, tt.flags)
			if st != tt.wantSt || bits != tt.wantBits || r != tt.want {
				t.Errorf("tcpStep(%v, %#x, %v, %#x) = %v, %#x, %d; want %v, %#x, %d",
					tt.st, tt.bits, tt.dir, tt.flags, st, bits, r, tt.wantSt, tt.wantBits, tt.want)
			}
		})
	}
}

// TestTCPConversations drives whole connections through a Table.
func TestTCPConversations(t *testing.T) {
	type seg struct {
		dir    Dir
		flags  uint8
		want   packet.Reason
		wantSt State
	}
	handshake := []seg{
		{Reply, synack, packet.OK, StateNew},
		{Original, ack, packet.OK, StateEstablished},
	}
	tests := []struct {
		name string
		segs []seg
	}{
		{"handshake", handshake},
		{"data both ways", append(handshake[:2:2],
			seg{Original, pshack, packet.OK, StateEstablished},
			seg{Reply, pshack, packet.OK, StateEstablished},
		)},
		{"fin from originator first", append(handshake[:2:2],
			seg{Original, finack, packet.OK, StateClosing},
			seg{Reply, ack, packet.OK, StateClosing},
			seg{Reply, finack, packet.OK, StateClosing},
			seg{Original, ack, packet.OK, StateClosing},
		)},
		{"fin from replier first", append(handshake[:2:2],
			seg{Reply, finack, packet.OK, StateClosing},
			seg{Original, finack, packet.OK, StateClosing},
			seg{Reply, ack, packet.OK, StateClosing},
		)},
		{"rst", append(handshake[:2:2],
			seg{Reply, rst, packet.OK, StateClosed},
			seg{Original, pshack, packet.CTInvalid, StateClosed},
		)},
		{"connection refused", []seg{
			{Reply, rst | ack, packet.OK, StateClosed},
		}},
		{"replier data before syn-ack", []seg{
			{Reply, pshack, packet.CTInvalid, StateNew},
			{Reply, synack, packet.OK, StateNew},
		}},
		{"syn on established", append(handshake[:2:2],
			seg{Original, syn, packet.CTInvalid, StateEstablished},
			seg{Original, ack, packet.OK, StateEstablished},
		)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := New(Config{})
			first := tcp(vmA, vmB, 40000, 80, syn)
			fl, r := tb.Create(0, first, 7, 1, 2)
			if r != packet.OK || fl == nil || fl.State() != StateNew || fl.Gen() != 7 {
				t.Fatalf("Create(SYN) = %v, %v", fl, r)
			}
			for i, s := range tt.segs {
				f := withFlags(first, s.flags)
				if s.dir == Reply {
					f = reverse(first, s.flags)
				}
				got, dir, r := tb.Lookup(int64(i+1)*sec, f)
				if got != fl || dir != s.dir || r != s.want || fl.State() != s.wantSt {
					t.Fatalf("segment %d (%v %#x): got flow %p dir %v reason %v state %v; want %p %v %v %v",
						i, s.dir, s.flags, got, dir, r, fl.State(), fl, s.dir, s.want, s.wantSt)
				}
			}
		})
	}
}

func TestTCPCreate(t *testing.T) {
	tests := []struct {
		name  string
		flags uint8
		want  packet.Reason
	}{
		{"syn", syn, packet.OK},
		{"syn with ecn bits", syn | 0xc0, packet.OK},
		{"mid-stream ack (tcp non-syn)", ack, packet.CTInvalid},
		{"syn-ack without syn", synack, packet.CTInvalid},
		{"fin", finack, packet.CTInvalid},
		{"rst", rst, packet.CTInvalid},
		{"syn+fin", syn | fin, packet.CTInvalid},
		{"null", 0, packet.CTInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := New(Config{})
			f := tcp(vmA, vmB, 40000, 22, tt.flags)
			fl, _, r := tb.Lookup(0, f)
			if fl != nil || r != packet.OK {
				t.Fatalf("Lookup on empty table = %v, %v", fl, r)
			}
			fl, r = tb.Create(0, f, 1, 1, 2)
			if r != tt.want || (fl != nil) != (tt.want == packet.OK) {
				t.Fatalf("Create = %v, %v; want reason %v", fl, r, tt.want)
			}
			if want := map[bool]int{true: 1, false: 0}[tt.want == packet.OK]; tb.Len() != want {
				t.Errorf("Len = %d, want %d", tb.Len(), want)
			}
			if tt.want == packet.CTInvalid && tb.Stats().Invalid != 1 {
				t.Errorf("Stats().Invalid = %d, want 1", tb.Stats().Invalid)
			}
		})
	}
}

// TestTCPReopen checks that a SYN reusing a finished connection's tuple is
// handed back to the firewall as a new connection.
func TestTCPReopen(t *testing.T) {
	for _, closeWith := range [][]uint8{{rst}, {finack, finack}} {
		tb := New(Config{})
		f := tcp(vmA, vmB, 40000, 80, syn)
		old, _ := tb.Create(0, f, 1, 1, 2)
		tb.Lookup(1, reverse(f, synack))
		tb.Lookup(2, withFlags(f, ack))
		for i, fl := range closeWith {
			g := withFlags(f, fl)
			if i%2 == 1 {
				g = reverse(f, fl)
			}
			tb.Lookup(3, g)
		}
		fl, _, r := tb.Lookup(4, f)
		if fl != nil || r != packet.OK || !old.Removed() {
			t.Fatalf("after %x: SYN Lookup = %v, %v (old removed %v); want no flow", closeWith, fl, r, old.Removed())
		}
		if fl, r := tb.Create(4, f, 2, 1, 2); r != packet.OK || fl == old || fl.State() != StateNew {
			t.Fatalf("re-Create = %v, %v", fl, r)
		}
	}
}

func TestTCPTimeouts(t *testing.T) {
	cfg := Config{}.withDefaults()
	tb := New(Config{})
	f := tcp(vmA, vmB, 40000, 80, syn)
	fl, _ := tb.Create(0, f, 1, 1, 2)
	if got, want := fl.Expires(), int64(cfg.TCPSynTimeout); got != want {
		t.Fatalf("SYN expires %d, want %d", got, want)
	}
	tb.Lookup(sec, reverse(f, synack))
	tb.Lookup(2*sec, withFlags(f, ack))
	if got, want := fl.Expires(), 2*sec+int64(cfg.TCPEstablishedTimeout); got != want {
		t.Fatalf("established expires %d, want %d", got, want)
	}
	// An invalid packet does not keep the flow alive.
	tb.Lookup(3*sec, withFlags(f, syn))
	if got, want := fl.Expires(), 2*sec+int64(cfg.TCPEstablishedTimeout); got != want {
		t.Fatalf("invalid packet refreshed the flow: expires %d, want %d", got, want)
	}
	tb.Lookup(4*sec, withFlags(f, finack))
	if got, want := fl.Expires(), 4*sec+int64(cfg.TCPClosingTimeout); got != want {
		t.Fatalf("closing expires %d, want %d", got, want)
	}
	end := fl.Expires()
	if got, _, r := tb.Lookup(end, reverse(f, ack)); got != nil || r != packet.OK {
		t.Fatalf("Lookup at expiry = %v, %v; want no flow", got, r)
	}
	if tb.Len() != 0 || tb.Stats().Expired != 1 {
		t.Fatalf("Len %d, Expired %d; want 0, 1", tb.Len(), tb.Stats().Expired)
	}
}
