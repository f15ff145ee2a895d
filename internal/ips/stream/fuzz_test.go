package stream

import (
	"encoding/binary"
	"testing"
)

// fuzzConsumer records each direction's stream and which offsets were
// gaps.
type fuzzConsumer struct {
	stream [2][]byte
	gap    [2][]bool
	ends   [2]int
}

func (f *fuzzConsumer) Data(d Dir, b []byte) {
	f.stream[d] = append(f.stream[d], b...)
	f.gap[d] = append(f.gap[d], make([]bool, len(b))...)
}

func (f *fuzzConsumer) Gap(d Dir, n int64) {
	f.stream[d] = append(f.stream[d], make([]byte, n)...)
	for range n {
		f.gap[d] = append(f.gap[d], true)
	}
}

func (f *fuzzConsumer) End(d Dir) { f.ends[d]++ }

const (
	fuzzSpace = 8192 // stream offsets the ops reach
)

// truth is the genuine byte at offset k of direction d; alt differs from
// it everywhere.
func truth(d Dir, k int) byte { return byte(k*7 + int(d)*101 + k>>8) }
func alt(d Dir, k int) byte   { return truth(d, k) ^ 0x5a }

// FuzzReassemble runs an arbitrary list of segments and ACKs (genuine
// bytes, conflicting bytes, FINs, RSTs) through a connection with small
// bounds. It checks that nothing panics, that every byte delivered is the
// first accepted copy of that byte, that End comes at most once, and that
// memory stays within every bound and returns to the pool at Close.
func FuzzReassemble(f *testing.F) {
	f.Add([]byte("\x00\x00\x10\x00\xff\xff\xff\xf0" +
		"\x00\x00\x10\x20\x00" + "\x00\x00\x00\x10\x00" + "\x0a\x00\x30\x00\x00" + "\x08\x00\x00\x10\x00"))
	f.Add([]byte("\x01\x02\x03\x04\x05\x06\x07\x08" +
		"\x00\x00\x05\x05\x00" + "\x00\x00\x00\x05\x00" + "\x0c\x00\x0a\x00\x00" + "\x0d\x00\x05\x00\x00"))
	f.Add([]byte("\xff\xff\xff\xffabcd" + "\x09\x00\x00\x08\x00" + "\x0b\x00\x08\x01\x00" + "\x0e\x00\x08\x00\x00"))
	f.Fuzz(fuzzReassemble)
}

func fuzzReassemble(t *testing.T, in []byte) {
	if len(in) < 8 {
		return
	}
	isn := [2]uint32{binary.BigEndian.Uint32(in), binary.BigEndian.Uint32(in[4:])}
	in = in[8:]
	cfg := Config{Depth: 3000, MaxBuffered: 2048, MaxRanges: 6}
	const memcap = 9000
	pool := NewPool(memcap)
	out := &fuzzConsumer{}
	c := New(cfg, pool, out)
	c.Segment(ToServer, Segment{Seq: isn[0], Flags: FlagSYN})
	c.Segment(ToClient, Segment{Seq: isn[1], Ack: isn[0] + 1, Flags: FlagSYN | FlagACK, Window: 65535})
	c.Segment(ToServer, Segment{Seq: isn[0] + 1, Ack: isn[1] + 1, Flags: FlagACK, Window: 65535})

	var first [2][fuzzSpace + 256]int16
	for d := range first {
		for k := range first[d] {
			first[d][k] = -1
		}
	}
	payload := make([]byte, 256)
	for ops := 0; len(in) >= 5 && ops < 2000; ops++ {
		op, off, n, fl := in[0], int(binary.BigEndian.Uint16(in[1:]))%fuzzSpace, int(in[3]), in[4]
		in = in[5:]
		d := Dir(op & 1)
		p := d ^ 1
		seg := Segment{Flags: FlagACK, Ack: isn[p] + 1 + uint32(int(fl)<<5), Window: 65535}
		switch kind := op >> 1 & 7; kind {
		case 5: // the receiver of d acknowledges offset off
			seg = Segment{Seq: c.h[p].next, Ack: isn[d] + 1 + uint32(off), Flags: FlagACK, Window: uint16(n) << 4}
			d = p
		case 6: // RST
			seg = Segment{Seq: isn[d] + 1 + uint32(off), Flags: FlagRST}
		default: // data: genuine (0..3; 3 may be urgent), conflicting (4), with FIN (7)
			for i := range n {
				if kind == 4 {
					payload[i] = alt(d, off+i)
				} else {
					payload[i] = truth(d, off+i)
				}
			}
			seg.Seq, seg.Payload = isn[d]+1+uint32(off), payload[:n]
			if kind == 7 {
				seg.Flags |= FlagFIN
			}
		}
		r := c.Segment(d, seg)
		if r.Drop() && r.Delivered != 0 {
			t.Fatalf("dropped segment delivered %d bytes", r.Delivered)
		}
		if !r.Drop() && len(seg.Payload) > 0 {
			for i, b := range seg.Payload {
				if first[d][off+i] < 0 {
					first[d][off+i] = int16(b)
				}
			}
		}
		if pool.InUse() > memcap {
			t.Fatalf("pool %d over memcap", pool.InUse())
		}
		for _, h := range c.h {
			if h.buf != nil && len(h.buf.b)-h.head > cfg.MaxBuffered {
				t.Fatalf("held %d > %d", len(h.buf.b)-h.head, cfg.MaxBuffered)
			}
			if len(h.ranges) > cfg.MaxRanges || h.offset > cfg.Depth {
				t.Fatalf("ranges %d, offset %d", len(h.ranges), h.offset)
			}
		}
	}
	for d := range 2 {
		if out.ends[d] > 1 {
			t.Fatalf("End %d times", out.ends[d])
		}
		if int64(len(out.stream[d])) != c.Offset(Dir(d)) {
			t.Fatalf("consumer has %d bytes, offset %d", len(out.stream[d]), c.Offset(Dir(d)))
		}
		for k, b := range out.stream[d] {
			if out.gap[d][k] {
				continue
			}
			if k >= len(first[d]) || first[d][k] != int16(b) {
				t.Fatalf("dir %d offset %d: delivered %#x, first accepted %d", d, k, b, first[d][k])
			}
		}
	}
	c.Close()
	if pool.InUse() != 0 {
		t.Fatalf("pool holds %d after Close", pool.InUse())
	}
}
