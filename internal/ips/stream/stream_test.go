package stream

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/bulwark-project/bulwark/internal/ips/proto/http1"
)

func TestInOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	data := randBytes(rng, 200_000)
	x := newConn(t, Config{}, 0)
	x.handshake(cISN, sISN)
	for i, p := range split(rng, data, 1448) {
		r := x.send(ToServer, p.off, p.data, 0)
		if r.Drop() || r.Delivered != len(p.data) {
			t.Fatalf("segment %v: %v, delivered %d", p, r.Events, r.Delivered)
		}
		if i%4 == 3 {
			x.ack(ToServer, p.off+len(p.data))
		}
	}
	expectBytes(t, "to_server", x.rec.data[ToServer].Bytes(), data)
	if x.c.Events() != 0 {
		t.Fatalf("events %v", x.c.Events())
	}
	x.close()
}

// TestOrders feeds a segmented stream in order, reversed and in random
// permutations, with retransmitted and overlapping (same-data) segments
// mixed in; the consumer must see the original bytes exactly.
func TestOrders(t *testing.T) {
	for seed := int64(0); seed < 60; seed++ {
		rng := rand.New(rand.NewSource(seed))
		data := randBytes(rng, 1+rng.Intn(40_000))
		pieces := split(rng, data, 1+rng.Intn(2000))
		switch seed % 3 {
		case 0:
		case 1:
			for i, j := 0, len(pieces)-1; i < j; i, j = i+1, j-1 {
				pieces[i], pieces[j] = pieces[j], pieces[i]
			}
		case 2:
			// Overlapping copies of random ranges, then shuffle.
			for range len(pieces) / 2 {
				a := rng.Intn(len(data))
				b := min(len(data), a+1+rng.Intn(3000))
				pieces = append(pieces, piece{a, data[a:b]})
			}
			rng.Shuffle(len(pieces), func(i, j int) { pieces[i], pieces[j] = pieces[j], pieces[i] })
		}
		for _, d := range []Dir{ToServer, ToClient} {
			x := newConn(t, Config{MaxRanges: MaxMaxRanges}, 0)
			x.handshake(cISN, sISN)
			for _, p := range pieces {
				if r := x.send(d, p.off, p.data, 0); r.Drop() {
					t.Fatalf("seed %d: segment %v dropped: %v", seed, p, r.Events)
				}
			}
			expectBytes(t, "stream", x.rec.data[d].Bytes(), data)
			if x.rec.data[d^1].Len() != 0 || len(x.rec.gaps[d]) != 0 {
				t.Fatalf("seed %d: stray delivery", seed)
			}
			x.ack(d, len(data))
			if x.c.Buffered(d) != 0 {
				t.Fatalf("seed %d: %d bytes held after the final ACK", seed, x.c.Buffered(d))
			}
			x.close()
		}
	}
}

func TestWraparound(t *testing.T) {
	for seed := int64(0); seed < 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		data := randBytes(rng, 30_000)
		pieces := split(rng, data, 900)
		rng.Shuffle(len(pieces), func(i, j int) { pieces[i], pieces[j] = pieces[j], pieces[i] })
		x := newConn(t, Config{MaxRanges: MaxMaxRanges}, 0)
		// The ISNs sit just below 2^32: the stream crosses zero.
		x.handshake(^uint32(0)-uint32(rng.Intn(20_000)), ^uint32(0)-5)
		for i, p := range pieces {
			x.send(ToServer, p.off, p.data, 0)
			x.send(ToClient, p.off, p.data, 0)
			if i%7 == 0 {
				x.ack(ToServer, len(x.rec.data[ToServer].Bytes()))
			}
		}
		expectBytes(t, "to_server", x.rec.data[ToServer].Bytes(), data)
		expectBytes(t, "to_client", x.rec.data[ToClient].Bytes(), data)
		x.close()
	}
}

func TestOverlapSameData(t *testing.T) {
	x := newConn(t, Config{}, 0)
	x.handshake(cISN, sISN)
	x.send(ToServer, 10, []byte("klmnop"), 0) // out of order
	r := x.send(ToServer, 8, []byte("ijklm"), 0)
	if r.Drop() || !r.Events.Has(EventOverlap) {
		t.Fatalf("same-data overlap: %v", r.Events)
	}
	r = x.send(ToServer, 0, []byte("abcdefgh"), 0)
	if r.Delivered != 16 {
		t.Fatalf("delivered %d", r.Delivered)
	}
	r = x.send(ToServer, 2, []byte("cdefghijklmnopqr"), 0) // retransmission, not yet acked, plus new bytes
	if r.Drop() || !r.Events.Has(EventOverlap) || r.Delivered != 2 {
		t.Fatalf("retransmission: %v, delivered %d", r.Events, r.Delivered)
	}
	expectBytes(t, "stream", x.rec.data[ToServer].Bytes(), []byte("abcdefghijklmnopqr"))
	x.close()
}

func TestOverlapDifferentData(t *testing.T) {
	cases := []struct {
		name string
		run  func(x *conn) Result // returns the result of the evasion segment
		want string               // what the consumer sees in the end
	}{
		{"out of order, full overlap", func(x *conn) Result {
			x.send(ToServer, 4, []byte("GOOD"), 0)
			r := x.send(ToServer, 4, []byte("EVIL"), 0)
			x.send(ToServer, 0, []byte("GET "), 0)
			return r
		}, "GET GOOD"},
		{"out of order, partial overlap with new bytes", func(x *conn) Result {
			x.send(ToServer, 4, []byte("GO"), 0)
			r := x.send(ToServer, 4, []byte("EVIL"), 0) // "IL" would be new: refused too
			x.send(ToServer, 0, []byte("GET "), 0)
			x.send(ToServer, 6, []byte("OD"), 0)
			return r
		}, "GET GOOD"},
		{"delivered, not yet acknowledged", func(x *conn) Result {
			x.send(ToServer, 0, []byte("GET GOOD"), 0)
			return x.send(ToServer, 4, []byte("EVIL"), 0)
		}, "GET GOOD"},
		{"straddling delivered and buffered bytes", func(x *conn) Result {
			x.send(ToServer, 0, []byte("GET "), 0)
			x.send(ToServer, 6, []byte("OD"), 0)
			r := x.send(ToServer, 2, []byte("T GOxD"), 0) // differs only in the buffered part
			x.send(ToServer, 4, []byte("GO"), 0)
			return r
		}, "GET GOOD"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x := newConn(t, Config{}, 0)
			x.handshake(cISN, sISN)
			r := tc.run(x)
			if !r.Drop() || !r.Events.Has(EventOverlapDiff) || r.Delivered != 0 {
				t.Fatalf("evasion segment: %v, delivered %d", r.Events, r.Delivered)
			}
			expectBytes(t, "stream", x.rec.data[ToServer].Bytes(), []byte(tc.want))
			if x.pool.Count(EventOverlapDiff) != 1 {
				t.Fatalf("counter %d", x.pool.Count(EventOverlapDiff))
			}
			x.close()
		})
	}

	// Once acknowledged, the receiver has the bytes and discards any other
	// copy: no comparison, no event, nothing delivered again.
	x := newConn(t, Config{}, 0)
	x.handshake(cISN, sISN)
	x.send(ToServer, 0, []byte("GET GOOD"), 0)
	x.ack(ToServer, 8)
	if r := x.send(ToServer, 4, []byte("EVIL"), 0); r.Events != 0 || r.Delivered != 0 {
		t.Fatalf("acknowledged retransmission: %v", r.Events)
	}
	x.close()
}

func TestGap(t *testing.T) {
	x := newConn(t, Config{}, 0)
	x.handshake(cISN, sISN)
	x.send(ToServer, 0, []byte("abcd"), 0)
	x.send(ToServer, 10, []byte("klmn"), 0)
	x.send(ToServer, 20, []byte("uv"), 0)
	// The receiver acknowledges up to 22: it got bytes the IPS never saw
	// (the engine failed open on them).
	r := x.ack(ToServer, 22)
	if !r.Events.Has(EventGap) || r.Drop() {
		t.Fatalf("gap ack: %v", r.Events)
	}
	want := "abcd\x00\x00\x00\x00\x00\x00klmn\x00\x00\x00\x00\x00\x00uv"
	expectBytes(t, "stream", x.rec.stream[ToServer], []byte(want))
	if g := x.rec.gaps[ToServer]; len(g) != 2 || g[0] != 6 || g[1] != 6 {
		t.Fatalf("gaps %v", g)
	}
	if x.c.Offset(ToServer) != 22 || x.c.Buffered(ToServer) != 0 {
		t.Fatalf("offset %d, buffered %d", x.c.Offset(ToServer), x.c.Buffered(ToServer))
	}
	// The stream goes on after the gap.
	x.send(ToServer, 22, []byte("wx"), 0)
	expectBytes(t, "after", x.rec.data[ToServer].Bytes(), []byte("abcdklmnuvwx"))

	// An ACK beyond anything sent is ignored.
	if r := x.ack(ToServer, 1000); !r.Events.Has(EventAckUnseen) || x.c.Offset(ToServer) != 24 {
		t.Fatalf("unseen ack: %v", r.Events)
	}
	x.close()
}

// TestFailOpen: a segment refused for want of room that the engine lets
// pass anyway becomes a gap once the receiver acknowledges it.
func TestFailOpen(t *testing.T) {
	x := newConn(t, Config{MaxBuffered: 4096}, 0)
	x.handshake(cISN, sISN)
	x.send(ToServer, 0, []byte("head"), 0)
	if r := x.send(ToServer, 4, make([]byte, 5000), 0); !r.Events.Has(EventBufferFull) {
		t.Fatalf("oversized: %v", r.Events)
	}
	r := x.ack(ToServer, 5004)
	if !r.Events.Has(EventGap) || r.Events.Has(EventAckUnseen) {
		t.Fatalf("ack: %v", r.Events)
	}
	if g := x.rec.gaps[ToServer]; len(g) != 1 || g[0] != 5000 {
		t.Fatalf("gaps %v", g)
	}
	x.send(ToServer, 5004, []byte("tail"), 0)
	expectBytes(t, "stream", x.rec.data[ToServer].Bytes(), []byte("headtail"))
	x.close()
}

func TestRetransmissions(t *testing.T) {
	x := newConn(t, Config{}, 0)
	x.handshake(cISN, sISN)
	msg := []byte("0123456789")
	for range 3 {
		x.send(ToServer, 0, msg, 0)
	}
	x.ack(ToServer, 10)
	x.send(ToServer, 0, msg, 0) // after the ACK: below the window, ignored
	expectBytes(t, "stream", x.rec.data[ToServer].Bytes(), msg)
	if x.c.Buffered(ToServer) != 0 || x.pool.InUse() != 0 {
		t.Fatalf("held after ACK: %d, pool %d", x.c.Buffered(ToServer), x.pool.InUse())
	}
	// A keep-alive probe (one old byte at next-1) is no anomaly.
	if r := x.send(ToServer, 9, []byte{0}, 0); r.Events != 0 {
		t.Fatalf("keep-alive: %v", r.Events)
	}
	x.close()
}

func TestDepth(t *testing.T) {
	x := newConn(t, Config{Depth: 100}, 0)
	x.handshake(cISN, sISN)
	data := bytes.Repeat([]byte("x"), 150)
	x.send(ToServer, 90, data[90:], 0) // crosses the depth, out of order
	if x.c.Buffered(ToServer) != 100 {
		t.Fatalf("held a span of %d bytes, want 100 (up to the depth)", x.c.Buffered(ToServer))
	}
	r := x.send(ToServer, 0, data[:90], 0)
	if !r.Events.Has(EventDepth) || r.Delivered != 100 || x.c.Offset(ToServer) != 100 {
		t.Fatalf("depth: %v, delivered %d", r.Events, r.Delivered)
	}
	if x.c.Buffered(ToServer) != 0 || x.pool.InUse() != 0 {
		t.Fatal("memory held past the depth")
	}
	// Past the depth: segments pass, nothing is compared or delivered,
	// but FIN and RST are still followed.
	if r := x.send(ToServer, 20, []byte("different"), 0); r.Events != 0 {
		t.Fatalf("past depth: %v", r.Events)
	}
	x.send(ToServer, 150, nil, FlagFIN)
	if x.rec.ends[ToServer] != 1 {
		t.Fatal("no End past the depth")
	}
	// The RST from the client is valid at its position after the FIN.
	if r := x.c.Segment(ToServer, Segment{Seq: x.seq(ToServer, 151), Flags: FlagRST}); r.Events != 0 {
		t.Fatalf("rst: %v", r.Events)
	}
	if x.rec.ends[ToClient] != 1 {
		t.Fatal("RST did not end the other direction")
	}
	x.close()
}

func TestMaxBuffered(t *testing.T) {
	x := newConn(t, Config{MaxBuffered: 8192}, 0)
	x.handshake(cISN, sISN)
	if r := x.send(ToServer, 8000, make([]byte, 192), 0); r.Drop() {
		t.Fatalf("at the bound: %v", r.Events)
	}
	r := x.send(ToServer, 8100, make([]byte, 93), 0)
	if !r.Drop() || !r.Events.Has(EventBufferFull) {
		t.Fatalf("beyond the bound: %v", r.Events)
	}
	// Unacknowledged delivered bytes count too.
	y := newConn(t, Config{MaxBuffered: 8192}, 0)
	y.handshake(cISN, sISN)
	y.send(ToServer, 0, make([]byte, 8192), 0)
	if r := y.send(ToServer, 8192, []byte{1}, 0); !r.Events.Has(EventBufferFull) {
		t.Fatalf("unacked: %v", r.Events)
	}
	y.ack(ToServer, 4096)
	if r := y.send(ToServer, 8192, []byte{1}, 0); r.Drop() {
		t.Fatalf("after the ACK: %v", r.Events)
	}
	x.close()
	y.close()
}

// TestTinySegments: endless one-byte segments cost nothing in order and
// hit MaxRanges when they leave holes.
func TestTinySegments(t *testing.T) {
	x := newConn(t, Config{MaxRanges: 16}, 0)
	x.handshake(cISN, sISN)
	for i := range 100_000 {
		if r := x.send(ToServer, i, []byte{byte(i)}, 0); r.Drop() {
			t.Fatalf("in order %d: %v", i, r.Events)
		}
		if i%100 == 99 {
			x.ack(ToServer, i+1)
		}
	}
	if x.c.Offset(ToServer) != 100_000 {
		t.Fatalf("offset %d", x.c.Offset(ToServer))
	}
	base := 100_001 // a hole at 100_000
	var refused int
	for i := range 100 {
		r := x.send(ToServer, base+2*i, []byte{1}, 0)
		if r.Events.Has(EventTooManySegments) {
			refused++
		}
	}
	if refused != 100-16 || len(x.c.h[ToServer].ranges) != 16 {
		t.Fatalf("refused %d, ranges %d", refused, len(x.c.h[ToServer].ranges))
	}
	// Filling the holes merges the ranges and delivers them.
	for i := range 16 {
		x.send(ToServer, base+2*i-1, []byte{1}, 0)
	}
	if len(x.c.h[ToServer].ranges) != 0 || x.c.Offset(ToServer) != int64(base+31) {
		t.Fatalf("ranges %d, offset %d", len(x.c.h[ToServer].ranges), x.c.Offset(ToServer))
	}
	x.close()
}

func TestMemcap(t *testing.T) {
	pool := NewPool(16 << 10)
	rec := &recorder{}
	var conns []*Conn
	var refused int
	for i := range 8 {
		c := New(Config{}, pool, rec)
		c.Segment(ToServer, Segment{Seq: 0, Flags: FlagSYN})
		r := c.Segment(ToServer, Segment{Seq: 100, Payload: make([]byte, 3000)}) // out of order: held
		if r.Events.Has(EventMemcap) {
			if !r.Drop() {
				t.Fatal("memcap without drop")
			}
			refused++
		}
		if pool.InUse() > pool.Memcap() {
			t.Fatalf("conn %d: %d in use over memcap %d", i, pool.InUse(), pool.Memcap())
		}
		conns = append(conns, c)
	}
	// Each held segment takes a 4 KiB buffer and a 4-range table (32 B):
	// three fit in 16 KiB.
	if refused != 5 || pool.Count(EventMemcap) != 5 || pool.Peak() > pool.Memcap() {
		t.Fatalf("refused %d, counted %d, peak %d", refused, pool.Count(EventMemcap), pool.Peak())
	}
	for _, c := range conns {
		c.Close()
	}
	if pool.InUse() != 0 {
		t.Fatalf("%d in use after Close", pool.InUse())
	}
}

func TestMidstream(t *testing.T) {
	x := newConn(t, Config{}, 0)
	// No handshake: the client's data comes first.
	r := x.c.Segment(ToServer, Segment{Seq: 777, Ack: 9000, Flags: FlagACK, Payload: []byte("mid")})
	if !r.Events.Has(EventMidstream) || r.Delivered != 3 {
		t.Fatalf("pickup: %v %d", r.Events, r.Delivered)
	}
	// The server's ACK came before any of its data: its direction starts
	// there, and its first segment, out of order, waits for the hole.
	r = x.c.Segment(ToClient, Segment{Seq: 9010, Ack: 780, Flags: FlagACK, Payload: []byte("later")})
	if !r.Events.Has(EventMidstream) || r.Delivered != 0 {
		t.Fatalf("server pickup: %v %d", r.Events, r.Delivered)
	}
	x.c.Segment(ToClient, Segment{Seq: 9000, Ack: 780, Flags: FlagACK, Payload: []byte("0123456789")})
	expectBytes(t, "server", x.rec.data[ToClient].Bytes(), []byte("0123456789later"))
	// A SYN after the pickup is refused.
	if r := x.c.Segment(ToServer, Segment{Seq: 700, Flags: FlagSYN}); !r.Events.Has(EventSynChanged) {
		t.Fatalf("late syn: %v", r.Events)
	}
	x.close()
}

func TestWindow(t *testing.T) {
	x := newConn(t, Config{}, 0)
	x.c.Segment(ToServer, Segment{Seq: cISN, Flags: FlagSYN, WScale: 2})
	x.c.Segment(ToClient, Segment{Seq: sISN, Ack: cISN + 1, Flags: FlagSYN | FlagACK, Window: 1000, WScale: 0})
	// The SYN-ACK's window is not scaled: the client may send 1000 bytes.
	if r := x.send(ToServer, 999, []byte("x"), 0); r.Drop() {
		t.Fatalf("last byte in window: %v", r.Events)
	}
	if r := x.send(ToServer, 1000, []byte("x"), 0); !r.Events.Has(EventOutsideWindow) || !r.Drop() {
		t.Fatalf("first byte outside: %v", r.Events)
	}
	// The server opens its window (its shift is 0).
	x.c.Segment(ToClient, Segment{Seq: sISN + 1, Ack: cISN + 1, Flags: FlagACK, Window: 3000})
	if r := x.send(ToServer, 2500, []byte("x"), 0); r.Drop() {
		t.Fatalf("in the opened window: %v", r.Events)
	}
	// Far beyond any window whatever the scale.
	if r := x.send(ToServer, 1<<30+5, []byte("x"), 0); !r.Events.Has(EventOutsideWindow) {
		t.Fatalf("far: %v", r.Events)
	}
	x.close()

	// The client's window is scaled by its own shift (2): 100 << 2.
	y := newConn(t, Config{}, 0)
	y.c.Segment(ToServer, Segment{Seq: cISN, Flags: FlagSYN, WScale: 2})
	y.c.Segment(ToClient, Segment{Seq: sISN, Ack: cISN + 1, Flags: FlagSYN | FlagACK, Window: 1000})
	y.c.Segment(ToServer, Segment{Seq: cISN + 1, Ack: sISN + 1, Flags: FlagACK, Window: 100})
	srv := func(off uint32) Result {
		return y.c.Segment(ToClient, Segment{Seq: sISN + 1 + off, Ack: cISN + 1, Flags: FlagACK, Window: 1000, Payload: []byte("y")})
	}
	if r := srv(399); r.Drop() {
		t.Fatalf("scaled window: %v", r.Events)
	}
	if r := srv(400); !r.Events.Has(EventOutsideWindow) {
		t.Fatalf("beyond scaled window: %v", r.Events)
	}
	y.close()
}

func TestFin(t *testing.T) {
	x := newConn(t, Config{}, 0)
	x.handshake(cISN, sISN)
	// The FIN arrives before the data it ends.
	x.send(ToServer, 5, []byte("world"), FlagFIN)
	if x.rec.ends[ToServer] != 0 {
		t.Fatal("End before the data")
	}
	if r := x.send(ToServer, 10, []byte("!"), 0); !r.Events.Has(EventDataAfterFin) || !r.Drop() {
		t.Fatalf("after fin: %v", r.Events)
	}
	if r := x.send(ToServer, 8, nil, FlagFIN); !r.Events.Has(EventFinChanged) {
		t.Fatalf("moved fin: %v", r.Events)
	}
	x.send(ToServer, 0, []byte("hello"), 0)
	if x.rec.ends[ToServer] != 1 {
		t.Fatal("no End")
	}
	x.send(ToServer, 5, []byte("world"), FlagFIN) // retransmission
	x.ack(ToServer, 11)                           // data and FIN
	if x.rec.ends[ToServer] != 1 || x.c.Buffered(ToServer) != 0 {
		t.Fatal("End twice, or bytes held")
	}
	expectBytes(t, "stream", x.rec.data[ToServer].Bytes(), []byte("helloworld"))

	// A FIN that would cut accepted bytes is refused.
	y := newConn(t, Config{}, 0)
	y.handshake(cISN, sISN)
	y.send(ToServer, 10, []byte("abc"), 0)
	if r := y.send(ToServer, 0, []byte("abc"), FlagFIN); !r.Events.Has(EventFinChanged) {
		t.Fatalf("early fin: %v", r.Events)
	}
	x.close()
	y.close()
}

func TestRst(t *testing.T) {
	x := newConn(t, Config{}, 0)
	x.handshake(cISN, sISN)
	x.send(ToServer, 0, []byte("abc"), 0)
	// In window but not exact: the receiver ignores it, so must the IPS.
	r := x.c.Segment(ToClient, Segment{Seq: x.seq(ToClient, 100), Flags: FlagRST})
	if !r.Drop() || !r.Events.Has(EventRstInvalid) || x.rec.ends != [2]int{} {
		t.Fatalf("inexact rst: %v", r.Events)
	}
	x.send(ToServer, 3, []byte("def"), 0)
	expectBytes(t, "after ignored rst", x.rec.data[ToServer].Bytes(), []byte("abcdef"))
	if r := x.c.Segment(ToClient, Segment{Seq: x.seq(ToClient, 0), Flags: FlagRST}); r.Events != 0 {
		t.Fatalf("exact rst: %v", r.Events)
	}
	if x.rec.ends != [2]int{1, 1} || x.pool.InUse() != 0 {
		t.Fatalf("ends %v, pool %d", x.rec.ends, x.pool.InUse())
	}
	if r := x.send(ToServer, 6, []byte("g"), 0); !r.Events.Has(EventDataAfterClose) || !r.Drop() {
		t.Fatalf("after rst: %v", r.Events)
	}
	x.close()

	// The answer to a refused SYN.
	y := newConn(t, Config{}, 0)
	y.c.Segment(ToServer, Segment{Seq: cISN, Flags: FlagSYN})
	if r := y.c.Segment(ToClient, Segment{Seq: 0, Ack: cISN + 2, Flags: FlagRST | FlagACK}); !r.Events.Has(EventRstInvalid) {
		t.Fatalf("wrong ack: %v", r.Events)
	}
	if r := y.c.Segment(ToClient, Segment{Seq: 0, Ack: cISN + 1, Flags: FlagRST | FlagACK}); r.Events != 0 {
		t.Fatalf("refusal: %v", r.Events)
	}
	if y.rec.ends != [2]int{1, 0} {
		t.Fatalf("ends %v", y.rec.ends)
	}
	y.close()
}

func TestUrgent(t *testing.T) {
	x := newConn(t, Config{}, 0)
	x.handshake(cISN, sISN)
	if r := x.send(ToServer, 0, []byte("ab"), FlagURG); !r.Drop() || !r.Events.Has(EventUrgent) {
		t.Fatalf("urgent: %v", r.Events)
	}
	x.send(ToServer, 0, []byte("ab"), 0)
	expectBytes(t, "stream", x.rec.data[ToServer].Bytes(), []byte("ab"))
	x.close()
}

func TestSynChanged(t *testing.T) {
	x := newConn(t, Config{}, 0)
	x.handshake(cISN, sISN)
	if r := x.c.Segment(ToServer, Segment{Seq: cISN, Flags: FlagSYN}); r.Events != 0 {
		t.Fatalf("retransmitted syn: %v", r.Events)
	}
	if r := x.c.Segment(ToServer, Segment{Seq: cISN + 50, Flags: FlagSYN}); !r.Events.Has(EventSynChanged) || !r.Drop() {
		t.Fatalf("new isn: %v", r.Events)
	}
	x.close()
}

// TestPatternAcrossSegments: an attack string cut into one-byte segments
// sent backwards reaches the consumer in one contiguous piece, and the
// HTTP parser fed by the reassembler sees the whole URI.
func TestPatternAcrossSegments(t *testing.T) {
	req := []byte("GET /cgi-bin/../../etc/passwd HTTP/1.1\r\nHost: victim\r\n\r\n")
	pattern := []byte("/etc/passwd")
	x := newConn(t, Config{}, 0)
	h := http1.NewConn(http1.DefaultConfig())
	x.c.out = ConsumerFuncs{
		OnData: func(d Dir, b []byte) { x.rec.Data(d, b); h.Feed(http1.Dir(d), b) },
		OnGap:  func(d Dir, n int64) { h.Gap(http1.Dir(d), n) },
		OnEnd:  func(d Dir) { h.Close(http1.Dir(d)) },
	}
	x.handshake(cISN, sISN)
	for i := len(req) - 1; i >= 0; i-- {
		x.send(ToServer, i, req[i:i+1], 0)
	}
	calls := x.rec.calls[ToServer]
	if len(calls) != 1 || !bytes.Contains(calls[0], pattern) {
		t.Fatalf("%d calls; pattern not contiguous", len(calls))
	}
	txs := h.Txs()
	if len(txs) != 1 || !bytes.Contains(txs[0].URIRaw, pattern) {
		t.Fatalf("http1 saw %d txs", len(txs))
	}
	x.close()
}

func TestEventNames(t *testing.T) {
	seen := map[string]bool{}
	for e := Event(0); int(e) < numEvents; e++ {
		n := e.String()
		if n == "" || seen[n] {
			t.Fatalf("event %d: name %q", e, n)
		}
		seen[n] = true
	}
	if len(NewPool(0).Counts()) != numEvents {
		t.Fatal("Counts misses events")
	}
	if s := (Events(1<<EventGap | 1<<EventMemcap)).String(); s != "gap,memcap" {
		t.Fatalf("Events.String %q", s)
	}
}

// TestNoAllocs: the in-order path (data, then the receiver's ACK) does not
// allocate once the flow's buffer exists.
func TestNoAllocs(t *testing.T) {
	x := newConn(t, Config{Depth: 1 << 40}, 0)
	x.handshake(cISN, sISN)
	x.c.out = ConsumerFuncs{} // the recorder copies
	payload := make([]byte, 1448)
	off := 0
	step := func() {
		x.send(ToServer, off, payload, 0)
		off += len(payload)
		x.ack(ToServer, off)
	}
	step()
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Fatalf("%v allocations per segment", n)
	}
	x.close()
}
