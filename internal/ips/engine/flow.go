package engine

import (
	"bytes"
	"hash/fnv"
	"net/netip"
	"time"

	"github.com/bulwark-project/bulwark/internal/ips/prefilter"
	"github.com/bulwark-project/bulwark/internal/ips/proto/http1"
	"github.com/bulwark-project/bulwark/internal/ips/proto/tlshello"
	"github.com/bulwark-project/bulwark/internal/ips/rules"
	"github.com/bulwark-project/bulwark/internal/ips/stream"
)

// flowKey is a flow's 5-tuple with the lower endpoint first, so both
// directions find the same flow. ICMP and fragments have ports 0.
type flowKey struct {
	a, b   netip.Addr
	ap, bp uint16
	proto  uint8
}

func keyOf(p *Packet) flowKey {
	k := flowKey{a: p.Src, b: p.Dst, ap: p.SrcPort, bp: p.DstPort, proto: p.Proto}
	if c := k.a.Compare(k.b); c > 0 || c == 0 && k.ap > k.bp {
		k.a, k.b, k.ap, k.bp = k.b, k.a, k.bp, k.ap
	}
	return k
}

// TCP handshake progress.
const (
	tcpNone uint8 = iota
	tcpSyn
	tcpSynAck
	tcpEstablished
)

// txState remembers how far one HTTP transaction was inspected and which
// rules alerted on it (each at most once per transaction, as Suricata).
type txState struct {
	id    uint64
	prog  [2]http1.Progress
	fired []int32
	// cands holds each side's candidates from its headers stage (the
	// header-only protocol rules included), so the complete stage scans
	// only the bodies; nil when there were more than maxKeptCandidates.
	cands [2][]int32
	// hits holds each side's body patterns found by the stream scans
	// (detect.go, scanWindow), standing for a scan of a verbatim body.
	hits [2]prefilter.StreamHits
}

// maxKeptCandidates bounds the candidates kept per transaction side.
const maxKeptCandidates = 1024

// maxFiredPerTx bounds the rules remembered per transaction; beyond it a
// rule may alert again on a later inspection of the same transaction.
const maxFiredPerTx = 256

// flow is one connection's state.
type flow struct {
	key     flowKey
	id      uint64
	cliAddr netip.Addr
	cliPort uint16
	last    time.Time
	// prev and next link the Detector's LRU list (most recent first).
	prev, next *flow

	seen [2]bool // a packet was seen to_server / to_client
	tcp  uint8

	det *Detector
	sc  *stream.Conn
	// win[d] is direction d's stream inspection window: the tail of
	// earlier data (at most Config.StreamTail bytes, first tail[d] bytes)
	// followed by what the current packet delivered.
	win  [2][]byte
	tail [2]int

	app      rules.AppProto
	appTried [2]bool
	http     *http1.Conn
	txs      []txState
	tls      *tlshello.Reader
	tlsDone  bool

	bits flowbits
	// blocked: an inline engine dropped this flow for a drop or reject
	// rule; its later packets are dropped without inspection (inline.go).
	blocked bool
	// uncond caches, per direction, the header-only transport rules
	// whose header this flow matches.
	uncond     [2][]int32
	uncondDone [2]bool
}

func (f *flow) established() bool {
	if f.key.proto == ProtoTCP {
		return f.tcp == tcpEstablished
	}
	return f.seen[0] && f.seen[1]
}

// flowID is a stable 51-bit id (JSON-safe as an integer, like
// Suricata's) from the 5-tuple and the flow's start.
func flowID(k flowKey, start time.Time, seq uint64) uint64 {
	h := fnv.New64a()
	a, b := k.a.As16(), k.b.As16()
	h.Write(a[:])
	h.Write(b[:])
	var x [21]byte
	x[0], x[1], x[2], x[3], x[4] = byte(k.ap>>8), byte(k.ap), byte(k.bp>>8), byte(k.bp), k.proto
	ns := uint64(start.UnixNano())
	s := seq
	for i := 0; i < 8; i++ {
		x[5+i] = byte(ns >> (8 * i))
		x[13+i] = byte(s >> (8 * i))
	}
	h.Write(x[:])
	return h.Sum64() & (1<<51 - 1)
}

// Data is the stream.Consumer side: direction d's next in-order bytes.
func (f *flow) Data(sd stream.Dir, b []byte) {
	d := int(sd)
	det := f.det
	if len(f.win[d])-f.tail[d]+len(b) > det.cfg.StreamChunk {
		// Inspect what this packet delivered so far before taking
		// more, so a window never exceeds tail + StreamChunk bytes.
		det.inspectStream(f, d, nil, false)
	}
	f.win[d] = append(f.win[d], b...)
	if f.app == rules.AppNone && !f.appTried[d] {
		f.detectApp(d, b)
	}
	switch {
	case f.http != nil:
		f.http.Feed(http1.Dir(d), b)
	case f.tls != nil && d == 0 && !f.tlsDone:
		f.tls.Feed(b)
	}
}

// Gap is the stream.Consumer side: n bytes of direction d are lost.
func (f *flow) Gap(sd stream.Dir, n int64) {
	d := int(sd)
	f.det.inspectStream(f, d, nil, false)
	f.win[d], f.tail[d] = f.win[d][:0], 0
	if f.http != nil {
		f.http.Gap(http1.Dir(d), n)
	}
}

// End is the stream.Consumer side: direction d ended.
func (f *flow) End(sd stream.Dir) {
	if f.http != nil {
		f.http.Close(http1.Dir(sd))
	}
}

var httpMethods = [][]byte{
	[]byte("GET "), []byte("POST "), []byte("HEAD "), []byte("PUT "), []byte("DELETE "),
	[]byte("OPTIONS "), []byte("CONNECT "), []byte("TRACE "), []byte("PATCH "),
	[]byte("PROPFIND "), []byte("PROPPATCH "), []byte("MKCOL "), []byte("COPY "),
	[]byte("MOVE "), []byte("LOCK "), []byte("UNLOCK "), []byte("SEARCH "),
}

// detectApp decides a TCP flow's application protocol from the first bytes
// of a direction, as Suricata's probing parsers do for HTTP and TLS. A
// direction gets one try (its first delivered bytes).
func (f *flow) detectApp(d int, b []byte) {
	f.appTried[d] = true
	if d == 0 {
		for _, m := range httpMethods {
			if bytes.HasPrefix(b, m) || len(b) < len(m) && bytes.HasPrefix(m, b) && len(b) >= 3 {
				f.startHTTP()
				return
			}
		}
		if len(b) >= 2 && b[0] == 0x16 && b[1] == 0x03 {
			f.app = rules.AppTLS
			f.tls = &tlshello.Reader{}
			return
		}
		return
	}
	if bytes.HasPrefix(b, []byte("HTTP/")) {
		f.startHTTP()
	}
}

func (f *flow) startHTTP() {
	f.app = rules.AppHTTP
	f.http = http1.NewConn(f.det.cfg.HTTP)
}

// txFor returns the inspection state of HTTP transaction id, creating it.
// Finished transactions the parser pruned are dropped from the list.
func (f *flow) txFor(id uint64) *txState {
	for i := range f.txs {
		if f.txs[i].id == id {
			return &f.txs[i]
		}
	}
	f.txs = append(f.txs, txState{id: id})
	return &f.txs[len(f.txs)-1]
}

func (f *flow) pruneTxs() {
	if f.http == nil {
		return
	}
	f.http.Prune()
	live := f.http.Txs()
	w := 0
	for _, ts := range f.txs {
		for _, t := range live {
			if t.ID == ts.id {
				f.txs[w] = ts
				w++
				break
			}
		}
	}
	clear(f.txs[w:])
	f.txs = f.txs[:w]
}

// pseudo returns a packet standing for the flow in direction dir (0 to
// the server) at its last packet's time, for what is inspected when the
// flow ends.
func (f *flow) pseudo(dir int) Packet {
	p := Packet{Time: f.last, Proto: f.key.proto, Src: f.cliAddr, SrcPort: f.cliPort}
	p.Dst, p.DstPort = f.key.b, f.key.bp
	if f.key.b == f.cliAddr && f.key.bp == f.cliPort {
		p.Dst, p.DstPort = f.key.a, f.key.ap
	}
	if dir == 1 {
		p.Src, p.Dst, p.SrcPort, p.DstPort = p.Dst, p.Src, p.DstPort, p.SrcPort
	}
	return p
}
