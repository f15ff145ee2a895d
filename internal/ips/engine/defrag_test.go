package engine

import (
	"encoding/binary"
	"testing"
)

// ipv4Frag builds a raw IPv4 fragment of a UDP datagram.
func ipv4Frag(id uint16, off int, more bool, data []byte) []byte {
	f := make([]byte, 20+len(data))
	f[0] = 0x45
	binary.BigEndian.PutUint16(f[2:], uint16(len(f)))
	binary.BigEndian.PutUint16(f[4:], id)
	fo := uint16(off / 8)
	if more {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(f[6:], fo)
	f[8], f[9] = 64, ProtoUDP
	copy(f[12:], []byte{10, 0, 0, 1})
	copy(f[16:], []byte{10, 0, 0, 2})
	copy(f[20:], data)
	return f
}

// TestDefrag: fragments out of order reassemble into one UDP packet that
// rules see whole; an overlapping fragment does not change bytes already
// held; the table is bounded.
func TestDefrag(t *testing.T) {
	d := newTestDetector(t, `alert udp any any -> any 9 (content:"HEADPART-TAILPART"; sid:1;)`)
	udp := make([]byte, 8+17)
	binary.BigEndian.PutUint16(udp[0:], 1000)
	binary.BigEndian.PutUint16(udp[2:], 9)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], "HEADPART-TAILPART")
	var sids []uint32
	feed := func(frame []byte) {
		for _, a := range d.Frame(LinkRaw, t0, frame) {
			sids = append(sids, a.Rule.SID)
		}
	}
	feed(ipv4Frag(7, 16, false, udp[16:]))
	feed(ipv4Frag(7, 8, true, []byte("XXXXXXXX"))) // overlaps nothing yet: bytes 8-15
	feed(ipv4Frag(7, 8, true, udp[8:16]))          // same range, different bytes: first copy kept
	feed(ipv4Frag(7, 0, true, udp[:8]))
	if len(sids) != 0 {
		t.Fatalf("alerted on a datagram whose first copy differs: %v", sids)
	}
	feed(ipv4Frag(8, 8, true, udp[8:16]))
	feed(ipv4Frag(8, 0, true, udp[:8]))
	feed(ipv4Frag(8, 16, false, udp[16:]))
	if len(sids) != 1 || sids[0] != 1 {
		t.Fatalf("alerts %v, want sid 1 once", sids)
	}
	if st := d.Stats(); st.Reassembled != 2 {
		t.Fatalf("reassembled %d", st.Reassembled)
	}
	d.defrag.max = 4
	for i := 0; i < 10; i++ {
		feed(ipv4Frag(uint16(100+i), 8, true, udp[8:16]))
	}
	if len(d.defrag.m) > 4 || d.Stats().FragmentsDropped != 6 {
		t.Fatalf("%d datagrams held, %d dropped", len(d.defrag.m), d.Stats().FragmentsDropped)
	}
}
