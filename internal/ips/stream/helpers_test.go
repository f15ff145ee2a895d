package stream

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
)

// recorder is a Consumer that keeps what it was given.
type recorder struct {
	data  [2]bytes.Buffer
	calls [2][][]byte // each Data call's bytes, copied
	gaps  [2][]int64
	ends  [2]int
	// stream[d] is data with gaps as zero bytes, to line offsets up.
	stream [2][]byte
}

func (r *recorder) Data(d Dir, b []byte) {
	r.data[d].Write(b)
	r.calls[d] = append(r.calls[d], append([]byte(nil), b...))
	r.stream[d] = append(r.stream[d], b...)
}

func (r *recorder) Gap(d Dir, n int64) {
	r.gaps[d] = append(r.gaps[d], n)
	r.stream[d] = append(r.stream[d], make([]byte, n)...)
}

func (r *recorder) End(d Dir) { r.ends[d]++ }

const (
	cISN = 1000
	sISN = 5000000
	// A window of 65535 << 7 (8 MiB) leaves the window check out of the
	// way of tests that are not about it.
	bigWin   = 65535
	bigScale = 7
)

// conn is a test connection with its pool and recorder.
type conn struct {
	t    *testing.T
	c    *Conn
	pool *Pool
	rec  *recorder
	isn  [2]uint32
}

func newConn(t *testing.T, cfg Config, memcap int64) *conn {
	t.Helper()
	x := &conn{t: t, pool: NewPool(memcap), rec: &recorder{}}
	x.c = New(cfg, x.pool, x.rec)
	x.isn = [2]uint32{cISN, sISN}
	return x
}

// handshake runs SYN, SYN-ACK, ACK with the given ISNs.
func (x *conn) handshake(cisn, sisn uint32) {
	x.t.Helper()
	x.isn = [2]uint32{cisn, sisn}
	x.must(ToServer, Segment{Seq: cisn, Flags: FlagSYN, Window: bigWin, WScale: bigScale})
	x.must(ToClient, Segment{Seq: sisn, Ack: cisn + 1, Flags: FlagSYN | FlagACK, Window: bigWin, WScale: bigScale})
	x.must(ToServer, Segment{Seq: cisn + 1, Ack: sisn + 1, Flags: FlagACK, Window: bigWin})
}

// seq returns direction d's sequence number of stream offset off.
func (x *conn) seq(d Dir, off int) uint32 { return x.isn[d] + 1 + uint32(off) }

// send sends data at stream offset off of direction d, acknowledging
// everything the peer may have sent so far (the ACK is the peer's
// current position, which acknowledges nothing new).
func (x *conn) send(d Dir, off int, data []byte, flags Flags) Result {
	x.t.Helper()
	p := &x.c.h[d^1]
	return x.c.Segment(d, Segment{Seq: x.seq(d, off), Ack: p.base, Flags: flags | FlagACK, Window: bigWin, Payload: data})
}

// ack makes the receiver of direction d acknowledge offset off.
func (x *conn) ack(d Dir, off int) Result {
	x.t.Helper()
	h := &x.c.h[d^1]
	return x.c.Segment(d^1, Segment{Seq: h.next, Ack: x.seq(d, off), Flags: FlagACK, Window: bigWin})
}

func (x *conn) must(d Dir, s Segment) Result {
	x.t.Helper()
	r := x.c.Segment(d, s)
	if r.Drop() {
		x.t.Fatalf("segment %+v dropped: %v", s, r.Events)
	}
	return r
}

// close closes the Conn and checks that every byte went back.
func (x *conn) close() {
	x.t.Helper()
	x.c.Close()
	if n := x.pool.InUse(); n != 0 {
		x.t.Fatalf("pool holds %d bytes after Close", n)
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	rng.Read(b)
	return b
}

// piece is a segment of a test stream: [off, off+len(data)).
type piece struct {
	off  int
	data []byte
}

// split cuts data into segments of 1..max bytes.
func split(rng *rand.Rand, data []byte, max int) []piece {
	var out []piece
	for off := 0; off < len(data); {
		n := min(1+rng.Intn(max), len(data)-off)
		out = append(out, piece{off, data[off : off+n]})
		off += n
	}
	return out
}

func expectBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: got %d bytes, want %d; first difference at %d", what, len(got), len(want), i)
	}
}

func (p piece) String() string { return fmt.Sprintf("[%d,%d)", p.off, p.off+len(p.data)) }
