package packet

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

func TestFillChecksum(t *testing.T) {
	fl := packettest.Flow{SrcMAC: packettest.MAC{2, 0, 0, 0, 0, 1}, DstMAC: packettest.MAC{2, 0, 0, 0, 0, 2},
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}
	for name, b := range map[string][]byte{
		"tcp": fl.TCP(40000, 80, TCPAck|TCPPsh, 1, 1, []byte("hello")),
		"udp": fl.UDP(40000, 53, []byte("hello")),
	} {
		var f Frame
		if r := Parse(b, &f); r != OK {
			t.Fatalf("%s: %v", name, r)
		}
		off := 16
		if name == "udp" {
			off = 6
		}
		want := binary.BigEndian.Uint16(f.L4[off:])
		f.L4[off], f.L4[off+1] = 0xde, 0xad // as handed over before offload
		FillChecksum(&f)
		if got := binary.BigEndian.Uint16(f.L4[off:]); got != want {
			t.Errorf("%s: checksum %#04x, want %#04x", name, got, want)
		}
	}
}
