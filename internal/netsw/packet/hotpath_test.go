package packet

import (
	"encoding/binary"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

// Allocation tests, benchmarks and the fuzz target: the per-packet promises.

// sampleFrames is one frame of each kind the parser accepts, for the
// allocation test, the benchmarks and the fuzz corpus.
func sampleFrames() map[string][]byte {
	tcp4 := flow4.TCP(40000, 443, TCPSyn, 1000, 0, make([]byte, 10)) // 64 bytes
	return map[string][]byte{
		"tcp4":       tcp4,
		"udp4":       flow4.UDP(68, 67, make([]byte, 20)),
		"dhcp4offer": flow4.UDP(6767, 6868, bootp(2, true)),
		"icmp4":      flow4.ICMP(ICMPv4EchoRequest, 0, packettest.Echo(1, 2)),
		"icmp4err":   icmpError4(ICMPv4Unreachable, ipPacket(tcp4)[:28]),
		"arp":        packettest.ARP(Broadcast, macA, ARPRequest, macA, ip4A, MAC{}, ip4B),
		"tcp6":       flow6.TCP(40000, 443, TCPAck, 1, 2, nil),
		"udp6":       flow6.UDP(547, 546, nil),
		"ns6":        flow6.ICMP(ICMPv6NeighborSolicit, 0, packettest.ND(0, ip6B, packettest.LinkAddrOption(1, macA))),
		"icmp6err":   icmpError6(ICMPv6Unreachable, ipPacket(flow6.UDP(1, 2, nil))),
	}
}

func TestParseNoAllocs(t *testing.T) {
	frames := sampleFrames()
	var f Frame
	for name, b := range frames {
		if n := testing.AllocsPerRun(100, func() {
			if Parse(b, &f) != OK {
				t.Fatalf("%s: not ok", name)
			}
		}); n != 0 {
			t.Errorf("%s: Parse allocates %v times per frame", name, n)
		}
	}
}

func TestBuildNoAllocs(t *testing.T) {
	var f4, f6, fu Frame
	Parse(sampleFrames()["tcp4"], &f4)
	Parse(sampleFrames()["tcp6"], &f6)
	Parse(sampleFrames()["udp4"], &fu)
	buf := make([]byte, 0, MaxFrame)
	if n := testing.AllocsPerRun(100, func() {
		if BuildTCPReset(buf, &f4) == nil || BuildTCPReset(buf, &f6) == nil ||
			BuildICMPUnreachable(buf, &fu, ICMPv4PortUnreachable) == nil {
			t.Fatal("no reply")
		}
	}); n != 0 {
		t.Errorf("builders allocate %v times with a large enough dst", n)
	}
}

func BenchmarkParse(b *testing.B) {
	frames := sampleFrames()
	for _, name := range []string{"tcp4", "udp6", "icmp4err", "arp"} {
		frame := frames[name]
		b.Run(name, func(b *testing.B) {
			var f Frame
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				Parse(frame, &f)
			}
		})
	}
}

func BenchmarkBuildTCPReset(b *testing.B) {
	var f Frame
	Parse(sampleFrames()["tcp4"], &f)
	buf := make([]byte, 0, MaxFrame)
	b.ReportAllocs()
	for b.Loop() {
		BuildTCPReset(buf, &f)
	}
}

// FuzzParse feeds hostile bytes to Parse and checks the invariants callers
// rely on when it returns OK, and that the reply builders stay in bounds.
func FuzzParse(f *testing.F) {
	for _, b := range sampleFrames() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		b := append([]byte(nil), in...)
		var fr Frame
		r := Parse(b, &fr)
		if r >= Reason(NumReasons) {
			t.Fatalf("undefined reason %d", r)
		}
		if len(fr.Raw) != len(b) {
			t.Fatal("Raw is not the input")
		}
		if r != OK {
			return
		}
		if fr.IPValid {
			checkIPLayout(t, b, &fr)
		}
		if out := BuildTCPReset(nil, &fr); out != nil {
			var rr Frame
			if got := Parse(out, &rr); got != OK || rr.TCPFlags&TCPRst == 0 || rr.Tuple != fr.Tuple.Reverse() {
				t.Fatalf("reset parses as %v %+v", got, rr.Tuple)
			}
		}
		if out := BuildICMPUnreachable(nil, &fr, ICMPv4PortUnreachable); out != nil {
			var rr Frame
			got := Parse(out, &rr)
			if len(fr.L4) < 8 && got == BadICMPEmbedded {
				return // a short payload is quoted whole; our parser wants 8 bytes
			}
			if got != OK || !rr.InnerValid || rr.Inner != fr.Tuple {
				t.Fatalf("unreachable parses as %v, inner %v want %v", got, rr.Inner, fr.Tuple)
			}
		}
		if out := BuildICMPv6Unreachable(nil, &fr, ICMPv6AdminProhibited); out != nil {
			var rr Frame
			got := Parse(out, &rr)
			if len(fr.L4) < 8 && got == BadICMPEmbedded {
				return
			}
			if got != OK || !rr.InnerValid || rr.Inner != fr.Tuple || len(out)-14 > 1280 {
				t.Fatalf("ICMPv6 unreachable (%d bytes) parses as %v, inner %v want %v", len(out), got, rr.Inner, fr.Tuple)
			}
		}
	})
}

// checkIPLayout checks that IPHeader and L4 alias b where the IP length
// fields say, with the transport minimums Parse promises.
func checkIPLayout(t *testing.T, b []byte, fr *Frame) {
	t.Helper()
	var hdr, l4 int
	switch fr.EtherType {
	case EtherTypeIPv4:
		hdr = int(b[14]&0x0f) * 4
		l4 = int(binary.BigEndian.Uint16(b[16:18])) - hdr
	case EtherTypeIPv6:
		hdr = 40
		l4 = int(binary.BigEndian.Uint16(b[18:20]))
	default:
		t.Fatalf("IPValid for EtherType %#x", fr.EtherType)
	}
	if len(fr.IPHeader) != hdr || len(fr.L4) != l4 || 14+hdr+l4 > len(b) {
		t.Fatalf("header %d L4 %d in %d bytes; length fields say %d and %d",
			len(fr.IPHeader), len(fr.L4), len(b), hdr, l4)
	}
	aliases(t, "IPHeader", b, 14, fr.IPHeader)
	aliases(t, "L4", b, 14+hdr, fr.L4)
	need := 0
	switch fr.Tuple.Proto {
	case ProtoTCP:
		need = 20
	case ProtoUDP:
		need = 8
	case ProtoICMP:
		if fr.Tuple.Src.Is4() {
			need = 8
		}
	case ProtoICMPv6:
		if fr.Tuple.Src.Is6() {
			need = 8
		}
	}
	if len(fr.L4) < need {
		t.Fatalf("proto %d with %d-byte L4", fr.Tuple.Proto, len(fr.L4))
	}
}

// aliases checks that s is b[off:off+len(s)] itself, not a copy, by
// flipping a byte of b and watching s change; no unsafe needed.
func aliases(t *testing.T, name string, b []byte, off int, s []byte) {
	t.Helper()
	if len(s) == 0 {
		return
	}
	b[off] ^= 0xff
	same := s[0] == b[off]
	b[off] ^= 0xff
	if !same {
		t.Fatalf("%s does not alias Raw at offset %d", name, off)
	}
}
