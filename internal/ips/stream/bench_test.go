package stream

import (
	"math/rand"
	"testing"
)

// benchConn returns an established connection with no depth limit that
// delivers to a consumer doing nothing, so the figures are the
// reassembler's own.
func benchConn(b *testing.B) (*Conn, *Pool) {
	pool := NewPool(0)
	c := New(Config{Depth: 1 << 62}, pool, ConsumerFuncs{})
	c.Segment(ToServer, Segment{Seq: cISN, Flags: FlagSYN, WScale: bigScale})
	c.Segment(ToClient, Segment{Seq: sISN, Ack: cISN + 1, Flags: FlagSYN | FlagACK, Window: bigWin, WScale: bigScale})
	c.Segment(ToServer, Segment{Seq: cISN + 1, Ack: sISN + 1, Flags: FlagACK, Window: bigWin})
	return c, pool
}

// BenchmarkInOrder: 1448-byte segments in order, the receiver acknowledging
// every 8th (about 11.6 KB in flight), as a bulk transfer does.
// allocs/op is allocations per segment.
func BenchmarkInOrder(b *testing.B) {
	c, pool := benchConn(b)
	payload := make([]byte, 1448)
	seq := uint32(cISN + 1)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r := c.Segment(ToServer, Segment{Seq: seq, Ack: sISN + 1, Flags: FlagACK, Window: bigWin, Payload: payload})
		if r.Delivered != len(payload) {
			b.Fatalf("segment %d: %v", i, r.Events)
		}
		seq += uint32(len(payload))
		if i%8 == 7 {
			c.Segment(ToClient, Segment{Seq: sISN + 1, Ack: seq, Flags: FlagACK, Window: bigWin})
		}
	}
	c.Close()
	if pool.InUse() != 0 {
		b.Fatal("memory held after Close")
	}
}

// BenchmarkOutOfOrder: 1448-byte segments in shuffled groups of 16 (each
// group delivered when its first segment arrives), acknowledged per group.
func BenchmarkOutOfOrder(b *testing.B) {
	c, pool := benchConn(b)
	payload := make([]byte, 1448)
	const group = 16
	perm := rand.New(rand.NewSource(1)).Perm(group)
	base := uint32(cISN + 1)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := i % group
		seq := base + uint32(perm[k]*len(payload))
		if r := c.Segment(ToServer, Segment{Seq: seq, Ack: sISN + 1, Flags: FlagACK, Window: bigWin, Payload: payload}); r.Drop() {
			b.Fatalf("segment %d: %v", i, r.Events)
		}
		if k == group-1 {
			base += group * uint32(len(payload))
			c.Segment(ToClient, Segment{Seq: sISN + 1, Ack: base, Flags: FlagACK, Window: bigWin})
		}
	}
	if c.Offset(ToServer) == 0 && b.N >= group {
		b.Fatal("nothing delivered")
	}
	c.Close()
	if pool.InUse() != 0 {
		b.Fatal("memory held after Close")
	}
}

// BenchmarkTinySegments: one-byte segments in order (the "endless tiny
// segments" shape), acknowledged every 64.
func BenchmarkTinySegments(b *testing.B) {
	c, _ := benchConn(b)
	payload := []byte{'x'}
	seq := uint32(cISN + 1)
	b.SetBytes(1)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.Segment(ToServer, Segment{Seq: seq, Ack: sISN + 1, Flags: FlagACK, Window: bigWin, Payload: payload})
		seq++
		if i%64 == 63 {
			c.Segment(ToClient, Segment{Seq: sISN + 1, Ack: seq, Flags: FlagACK, Window: bigWin})
		}
	}
	c.Close()
}
