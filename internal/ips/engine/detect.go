package engine

import (
	"bytes"
	"net/netip"
	"slices"
	"time"

	"github.com/bulwark-project/bulwark/internal/ips/prefilter"
	"github.com/bulwark-project/bulwark/internal/ips/proto/dns"
	"github.com/bulwark-project/bulwark/internal/ips/proto/http1"
	"github.com/bulwark-project/bulwark/internal/ips/rules"
	"github.com/bulwark-project/bulwark/internal/ips/stream"
)

// Config bounds a Detector. Zero fields take the defaults.
type Config struct {
	// MaxFlows bounds the flow table; the least recently seen flow is
	// evicted for a new one. Default 65,536.
	MaxFlows int
	// FlowTimeout: a flow idle this long is replaced by a new one with
	// the same 5-tuple. Default 10 minutes.
	FlowTimeout time.Duration
	// MaxThresholds bounds the threshold/detection_filter counters.
	// Default 65,536.
	MaxThresholds int
	// MaxAlertsPerPacket bounds the alerts of one packet (Suricata's
	// packet_alert_max, default 15); further ones are counted.
	MaxAlertsPerPacket int
	// MaxRetries bounds the backtracking of one buffer's matches.
	// Default DefaultMaxRetries.
	MaxRetries int
	// StreamTail is how many bytes of earlier stream data are kept in
	// front of a packet's new stream data, so a pattern split across
	// segments is found (a fast pattern is at most 255 bytes; the rest
	// is room for content chains around it). Default 512; each flow
	// direction holds this much between packets.
	StreamTail int
	// StreamChunk bounds the new stream bytes inspected at once.
	// Default 64 KiB.
	StreamChunk int
	// MaxDatagrams bounds the IP datagrams being reassembled and
	// MaxDefragBytes the fragment bytes they hold. Defaults 4,096 and
	// 16 MiB.
	MaxDatagrams   int
	MaxDefragBytes int
	// Stream and StreamMemcap configure TCP reassembly.
	Stream       stream.Config
	StreamMemcap int64
	// HTTP bounds the HTTP parser of each flow.
	HTTP http1.Config
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxFlows, 65536)
	def(&c.MaxThresholds, 65536)
	def(&c.MaxAlertsPerPacket, 15)
	def(&c.MaxRetries, DefaultMaxRetries)
	def(&c.StreamTail, 512)
	def(&c.StreamChunk, 64<<10)
	def(&c.MaxDatagrams, 4096)
	def(&c.MaxDefragBytes, 16<<20)
	if c.FlowTimeout <= 0 {
		c.FlowTimeout = 10 * time.Minute
	}
	if c.HTTP.LineLimit == 0 {
		c.HTTP = http1.DefaultConfig()
	}
	return c
}

// Alert is one rule match that alerts. Frame points into the packet's
// frame and is valid only until the Detector's next call.
type Alert struct {
	Rule *rules.Rule
	// RuleIndex is the rule's index in Engine.Rules.
	RuleIndex int32

	Category string
	Time     time.Time
	FlowID   uint64
	Src, Dst netip.Addr
	SrcPort  uint16
	DstPort  uint16
	Proto    uint8
	ICMPType uint8
	ICMPCode uint8
	App      rules.AppProto
	ToServer bool
	// TxID is the HTTP transaction (from 0, as Suricata's tx_id) when
	// HasTx.
	TxID  uint64
	HasTx bool

	LinkType       uint32
	Frame          []byte
	HasEther       bool
	SrcMAC, DstMAC [6]byte
}

// Stats counts what a Detector did.
type Stats struct {
	Packets, Bytes uint64
	// NotInspected counts frames not decoded, by Decode reason.
	NotInspected map[string]uint64
	Flows        uint64 // flows created
	FlowsEvicted uint64
	Alerts       uint64
	// Suppressed counts matches not alerted by threshold/detection_filter.
	Suppressed uint64
	// AlertsDropped counts alerts beyond MaxAlertsPerPacket.
	AlertsDropped uint64
	// Evaluated counts full rule evaluations (prefilter candidates).
	Evaluated uint64
	// RetriesExhausted counts buffers whose backtracking bound ran out.
	RetriesExhausted uint64
	// ThresholdFull counts matches lost to a full threshold table.
	ThresholdFull uint64
	// StreamDrops counts TCP segments the reassembler refused (an inline
	// engine drops them).
	StreamDrops uint64
	// Reassembled counts IP datagrams rebuilt from fragments;
	// FragmentsDropped the fragments refused by the defrag bounds.
	Reassembled      uint64
	FragmentsDropped uint64
}

// Detector runs an Engine over packets. It holds the flow table, the
// threshold counters and the scratch space; it is not safe for concurrent
// use (one per inspecting goroutine).
type Detector struct {
	e     *Engine
	cfg   Config
	flows map[flowKey]*flow
	// head and tail of the LRU list: head most recently seen.
	head, tail *flow
	pool       *stream.Pool
	th         thresholds
	m          matcher
	sc         prefilter.Scratch
	cands      []int32
	wcands     []int32
	// stamp[i] == gen when rule i already matched in the current unit
	// (packet, transaction or message).
	stamp  []uint32
	gen    uint32
	alerts []Alert
	nalert int // alerts of the current packet
	seq    uint64
	cur    *Packet
	// curDir is cur's direction in its flow (0 to the server).
	curDir int
	// turned is cur with its endpoints swapped: the packet that stands
	// for the other direction's stream bytes cur's ACK delivered.
	turned Packet
	pkt    Packet
	// defrag reassembles IP fragments for Frame.
	defrag defrag
	// evictedBlocked remembers blocked flows pushed out of the flow
	// table (inline.go), so that flooding new flows cannot unblock one.
	evictedBlocked blockedMemory
	frameAlerts    []Alert
	// windowScans counts stream window scans (tests check that a window
	// is scanned once).
	windowScans uint64
	// passed: a pass rule matched the last packet.
	passed bool
	stats  Stats
}

// NewDetector returns a Detector for e.
func NewDetector(e *Engine, cfg Config) *Detector {
	cfg = cfg.withDefaults()
	d := &Detector{
		e: e, cfg: cfg,
		flows: map[flowKey]*flow{},
		pool:  stream.NewPool(cfg.StreamMemcap),
		th:    thresholds{m: map[thresholdKey]*thresholdEntry{}, max: cfg.MaxThresholds},
		stamp: make([]uint32, len(e.rules)),
	}
	d.defrag = defrag{m: map[fragKey]*datagram{}, max: cfg.MaxDatagrams, maxBytes: cfg.MaxDefragBytes}
	d.m.maxRetries = cfg.MaxRetries
	d.stats.NotInspected = map[string]uint64{}
	return d
}

// Stats returns the counters so far.
func (d *Detector) Stats() Stats {
	s := d.stats
	s.RetriesExhausted = d.m.exhausted
	s.ThresholdFull = d.th.full
	s.Reassembled, s.FragmentsDropped = d.defrag.done, d.defrag.dropped
	return s
}

// ictx is one inspection: a packet's payload, a stream window or an
// application transaction, with the buffers it offers.
type ictx struct {
	p        *Packet
	f        *flow
	toServer bool
	kind     uint8
	bufs     [64][]byte
	have     uint64
	// prior, for stream inspection: the window's earlier part alone.
	prior []byte
	txID  uint64
	hasTx bool
	// passed: a pass rule matched; nothing more alerts in this unit.
	passed bool
	// skip lists buffers offered for evaluation but not scanned by the
	// prefilter (already scanned at an earlier stage, whose candidates
	// are in extra).
	skip  uint64
	extra []int32
}

const (
	kindPacket uint8 = iota
	kindStream
	kindApp
)

func (c *ictx) set(b rules.Buffer, data []byte) {
	c.bufs[b] = data
	c.have |= 1 << b
}

func (c *ictx) reset(p *Packet, f *flow, toServer bool, kind uint8) {
	c.p, c.f, c.toServer, c.kind = p, f, toServer, kind
	c.have, c.prior, c.hasTx, c.passed = 0, nil, false, false
	c.skip, c.extra = 0, nil
}

// Packet inspects one decoded packet and returns its alerts; the slice
// is the Detector's, valid until the next call.
func (d *Detector) Packet(p *Packet) []Alert {
	d.alerts = d.alerts[:0]
	d.nalert = 0
	d.cur = p
	d.passed = false
	d.stats.Packets++
	d.stats.Bytes += uint64(len(p.Frame))
	d.gen++
	if p.Proto == 0 {
		return d.alerts
	}
	f, toServer := d.lookup(p)
	dir := 1
	if toServer {
		dir = 0
	}
	f.seen[dir] = true
	d.curDir = dir
	if p.Proto == ProtoTCP && !p.Fragment && !p.L4Invalid {
		d.trackTCP(f, p, toServer)
	}

	// Application messages carried by this packet (UDP DNS).
	var dnsMsg *dns.Message
	if p.Proto == ProtoUDP && !p.Fragment && !p.L4Invalid && (p.SrcPort == 53 || p.DstPort == 53) && f.app != rules.AppHTTP {
		if m, err := dns.Parse(p.Payload); err == nil {
			f.app = rules.AppDNS
			dnsMsg = m
		}
	}

	var c ictx
	c.reset(p, f, toServer, kindPacket)
	c.set(rules.BufPayload, p.Payload)
	if f.sc != nil && len(f.win[dir]) > f.tail[dir] && bytes.Equal(f.win[dir][f.tail[dir]:], p.Payload) {
		// The packet's payload is exactly what it added to the stream:
		// one prefilter scan serves the packet and the stream window.
		d.wcands = append(d.wcands[:0], d.scanWindow(f, dir)...)
		d.inspectPacket(&c, dir, d.wcands)
		d.inspectStream(f, dir, d.wcands, true)
	} else {
		d.inspectPacket(&c, dir, d.e.pf.Candidates(rules.BufPayload, p.Payload, &d.sc))
		if f.sc != nil {
			d.inspectStream(f, dir, nil, false)
		}
	}
	if f.sc != nil {
		// The packet's ACK may have delivered the other direction's
		// bytes (out-of-order bytes behind a hole the receiver
		// acknowledged): inspected now, before they become old context.
		d.inspectStream(f, 1-dir, nil, false)
	}
	if dnsMsg != nil && !dnsMsg.Header.Response() {
		for i := range dnsMsg.Questions {
			d.gen++
			c.reset(p, f, toServer, kindApp)
			c.set(rules.BufDNSQuery, dnsMsg.Questions[i].Name.Value)
			d.inspectApp(&c, rules.AppDNS)
		}
	}
	if f.http != nil {
		d.inspectHTTP(f, p, false)
	}
	if f.tls != nil && !f.tlsDone && f.tls.Done() {
		f.tlsDone = true
		if h, _ := f.tls.Result(); h != nil {
			d.gen++
			c.reset(p, f, true, kindApp)
			if h.SNI != nil {
				c.set(rules.BufTLSSNI, h.SNI)
			}
			c.set(rules.BufJA3Hash, []byte(h.JA3Hash()))
			d.inspectApp(&c, rules.AppTLS)
		}
	}
	return d.alerts
}

// lookup finds or creates p's flow and says whether p goes to the server.
func (d *Detector) lookup(p *Packet) (*flow, bool) {
	k := keyOf(p)
	f := d.flows[k]
	if f != nil && p.Time.Sub(f.last) > d.cfg.FlowTimeout {
		d.remove(f)
		f = nil
	}
	if f == nil {
		for len(d.flows) >= d.cfg.MaxFlows && d.tail != nil {
			if d.tail.blocked {
				d.evictedBlocked.add(d.tail.key, d.tail.last)
			}
			d.remove(d.tail)
			d.stats.FlowsEvicted++
		}
		d.seq++
		f = &flow{key: k, det: d, cliAddr: p.Src, cliPort: p.SrcPort, id: flowID(k, p.Time, d.seq)}
		f.blocked = d.evictedBlocked.take(k, p.Time, d.cfg.FlowTimeout)
		// A SYN-ACK seen first comes from the server.
		if p.Proto == ProtoTCP && p.TCPFlags&(rules.TCPSyn|rules.TCPAck) == rules.TCPSyn|rules.TCPAck {
			f.cliAddr, f.cliPort = p.Dst, p.DstPort
		}
		if p.Proto == ProtoTCP {
			f.sc = stream.New(d.cfg.Stream, d.pool, f)
		}
		d.flows[k] = f
		d.stats.Flows++
	} else {
		d.unlink(f)
	}
	f.last = p.Time
	f.next = d.head
	if d.head != nil {
		d.head.prev = f
	}
	d.head = f
	if d.tail == nil {
		d.tail = f
	}
	return f, p.Src == f.cliAddr && p.SrcPort == f.cliPort
}

func (d *Detector) unlink(f *flow) {
	if f.prev != nil {
		f.prev.next = f.next
	} else {
		d.head = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	} else {
		d.tail = f.prev
	}
	f.prev, f.next = nil, nil
}

// remove ends a flow: pending HTTP transactions are closed and inspected,
// reassembly memory returns to the pool.
func (d *Detector) remove(f *flow) {
	d.unlink(f)
	delete(d.flows, f.key)
	if f.http != nil {
		f.http.Close(http1.ToServer)
		f.http.Close(http1.ToClient)
		d.inspectHTTP(f, nil, true)
	}
	if f.sc != nil {
		f.sc.Close()
	}
}

// Flush ends every flow (as at the end of a capture), inspecting what the
// HTTP parsers still held, and returns those alerts. Alerts raised at a
// flow's end carry the flow's addresses in the transaction's direction
// and the time of its last packet, and no frame.
func (d *Detector) Flush() []Alert {
	d.alerts = d.alerts[:0]
	d.nalert = 0
	d.cur = nil
	for d.head != nil {
		d.remove(d.head)
	}
	return d.alerts
}

// trackTCP follows the handshake and feeds the reassembler.
func (d *Detector) trackTCP(f *flow, p *Packet, toServer bool) {
	fl := p.TCPFlags
	switch {
	case fl&rules.TCPRst != 0:
	case fl&(rules.TCPSyn|rules.TCPAck) == rules.TCPSyn && toServer:
		if f.tcp == tcpNone {
			f.tcp = tcpSyn
		}
	case fl&(rules.TCPSyn|rules.TCPAck) == rules.TCPSyn|rules.TCPAck && !toServer:
		if f.tcp == tcpSyn {
			f.tcp = tcpSynAck
		}
	case fl&rules.TCPAck != 0 && toServer:
		if f.tcp == tcpSynAck {
			f.tcp = tcpEstablished
		}
	}
	dir := 1
	if toServer {
		dir = 0
	}
	// The window keeps at most StreamTail bytes of earlier data.
	w := d.keepTail(f.win[dir])
	f.win[dir], f.tail[dir] = w, len(w)
	res := f.sc.Segment(stream.Dir(dir), stream.Segment{
		Seq: p.Seq, Ack: p.Ack, Flags: stream.Flags(fl), Window: p.Window, WScale: p.WScale, Payload: p.Payload,
	})
	if res.Drop() {
		d.stats.StreamDrops++
	}
}

// inspectPacket evaluates the packet-level candidates: rules selected by
// the payload's patterns (pcands), and the header-only transport rules,
// whose header match is computed once per flow and direction.
func (d *Detector) inspectPacket(c *ictx, dir int, pcands []int32) {
	f := c.f
	if !f.uncondDone[dir] {
		f.uncondDone[dir] = true
		f.uncond[dir] = nil
		d.cands = d.e.hdr.appendCandidates(d.cands[:0], c.p.Src, c.p.Dst)
		for _, id := range d.cands {
			if d.headerOK(d.e.rules[id], c) {
				f.uncond[dir] = append(f.uncond[dir], id)
			}
		}
		d.e.sortCandidates(f.uncond[dir])
	}
	d.cands = append(d.cands[:0], f.uncond[dir]...)
	d.cands = append(d.cands, pcands...)
	d.e.sortCandidates(d.cands)
	for _, id := range d.cands {
		if c.passed {
			return
		}
		if d.e.meta[id].packet {
			d.try(id, c)
		}
	}
}

// scanWindow runs the prefilter over the part of direction dir's window
// where a pattern can touch the new data: the new bytes and the last
// MaxPatternLen-1 bytes before them (or all earlier bytes since the
// stream's start or a gap, when fewer). A rule whose fast pattern lies
// wholly in older data was a candidate when that data was new. It returns
// the payload candidates.
//
// The scan uses the automaton the payload shares with the HTTP body
// buffers (prefilter.StreamGroup): the body patterns it finds are kept
// with each transaction whose verbatim body is arriving in this
// direction, so that inspectHTTP need not scan the body again. Every byte
// the HTTP parser was fed is in the window by now (flow.Data appends, then
// feeds), so the new bytes are the parser's stream offsets
// [Offset-new, Offset).
func (d *Detector) scanWindow(f *flow, dir int) []int32 {
	d.windowScans++
	w := f.win[dir]
	from := max(0, f.tail[dir]-(prefilter.MaxPatternLen-1))
	pf := d.e.pf
	ids := pf.StreamPatterns(w[from:], &d.sc)
	if f.http != nil {
		end := f.http.Offset(http1.Dir(dir))
		start := end - int64(len(w)-f.tail[dir])
		for _, tx := range f.http.Txs() {
			prog, body := tx.RequestProgress, &tx.RequestBody
			if dir == 1 {
				prog, body = tx.ResponseProgress, &tx.ResponseBody
			}
			if prog < http1.ProgressBody || !body.Verbatim {
				continue
			}
			if ts := f.txFor(tx.ID); ts.prog[dir] < http1.ProgressComplete {
				ts.hits[dir].Add(pf, start, end, ids)
			}
		}
	}
	return pf.SelectStream(rules.BufPayload, ids, &d.sc)
}

// inspectStream evaluates the payload rules against direction dir's
// stream window when the current packet delivered data to it. A rule
// matches the window only if it does not match the window's earlier part
// alone (that part was inspected with an earlier packet).
//
// The current packet delivers data to the other direction when its ACK
// releases bytes held behind a hole (stream.Conn forceTo). Those are
// inspected as their own unit (rules that matched the packet may match
// them too) with the packet turned around, so that rule headers, flow
// direction, thresholds and the alert see the stream's endpoints; the
// alert still belongs to the current packet, whose frame it carries.
//
// With scanned, cands are the window's candidates already found (none
// when empty); else the window is scanned here.
func (d *Detector) inspectStream(f *flow, dir int, cands []int32, scanned bool) {
	w := f.win[dir]
	if len(w) == f.tail[dir] || d.cur == nil {
		return
	}
	p := d.cur
	if dir != d.curDir {
		d.gen++
		p = d.turn(p)
	}
	var c ictx
	c.reset(p, f, dir == 0, kindStream)
	c.set(rules.BufPayload, w)
	c.prior = w[:f.tail[dir]]
	if !scanned {
		cands = d.scanWindow(f, dir)
	}
	d.cands = append(d.cands[:0], cands...)
	d.e.sortCandidates(d.cands)
	for _, id := range d.cands {
		if c.passed {
			break
		}
		if d.e.meta[id].stream && d.stamp[id] != d.gen {
			d.try(id, &c)
		}
	}
	// What was inspected becomes the tail of the next window.
	f.win[dir], f.tail[dir] = d.keepTail(w), min(len(w), d.cfg.StreamTail)
}

// turn returns p with its endpoints swapped, held in d.turned (valid
// until the next call), carrying no payload of its own.
func (d *Detector) turn(p *Packet) *Packet {
	t := &d.turned
	*t = *p
	t.Src, t.Dst = p.Dst, p.Src
	t.SrcPort, t.DstPort = p.DstPort, p.SrcPort
	t.SrcMAC, t.DstMAC = p.DstMAC, p.SrcMAC
	t.Payload = nil
	return t
}

// keepTail keeps the last StreamTail bytes of a window. A buffer grown
// past maxIdleWindow by a burst is replaced by a small one, so an idle flow
// holds at most that much per direction.
func (d *Detector) keepTail(w []byte) []byte {
	t := d.cfg.StreamTail
	n := len(w)
	if n <= t {
		return w
	}
	if cap(w) > maxIdleWindow {
		return append(make([]byte, 0, t+4096), w[n-t:]...)
	}
	copy(w, w[n-t:])
	return w[:t]
}

// maxIdleWindow bounds the window buffer an idle flow direction keeps
// (a full-size Ethernet segment after the tail fits).
const maxIdleWindow = 16 << 10

// inspectApp evaluates an application unit (a DNS question, a TLS
// ClientHello, one side of an HTTP transaction): the candidates of every
// buffer c offers, and the header-only rules of protocol app.
func (d *Detector) inspectApp(c *ictx, app rules.AppProto) {
	d.cands = append(d.cands[:0], c.extra...)
	for b := rules.Buffer(1); b < 64; b++ {
		if c.have&^c.skip&(1<<b) != 0 {
			d.cands = append(d.cands, d.e.pf.Candidates(b, c.bufs[b], &d.sc)...)
		}
	}
	if len(c.extra) == 0 {
		d.cands = append(d.cands, d.e.uncond[app]...)
	}
	d.e.sortCandidates(d.cands)
	prev := int32(-1)
	for _, id := range d.cands {
		if id == prev {
			continue
		}
		prev = id
		if c.passed {
			return
		}
		if d.stamp[id] != d.gen {
			d.try(id, c)
		}
	}
}

// inspectHTTP inspects each side of each transaction that reached a new
// stage (headers, complete) since it was last inspected; at flow end
// (final, p nil) whatever was not inspected complete is inspected as it
// is, with a packet made from the flow.
func (d *Detector) inspectHTTP(f *flow, p *Packet, final bool) {
	var c ictx
	var pseudo [2]Packet
	for i := range pseudo {
		pseudo[i] = f.pseudo(i)
	}
	for _, tx := range f.http.Txs() {
		ts := f.txFor(tx.ID)
		for dir := 0; dir < 2; dir++ {
			prog := tx.RequestProgress
			if dir == 1 {
				prog = tx.ResponseProgress
			}
			if prog < http1.ProgressHeaders && !(final && prog > http1.ProgressNone) {
				continue
			}
			stage := prog
			if stage == http1.ProgressBody && !final {
				stage = http1.ProgressHeaders
			}
			if final {
				stage = http1.ProgressComplete
			}
			if stage <= ts.prog[dir] {
				continue
			}
			// Headers inspected before: only the body buffers are new;
			// the header buffers' candidates were kept.
			again := ts.prog[dir] == http1.ProgressHeaders && ts.cands[dir] != nil
			ts.prog[dir] = stage
			d.gen++
			pp := p
			switch {
			case pp == nil:
				pp = &pseudo[dir]
			case (pp.Src == f.cliAddr && pp.SrcPort == f.cliPort) != (dir == 0):
				// A side that a packet of the other direction completed
				// (its ACK delivered the bytes behind a hole): judged with
				// the side's own endpoints, as the stream is
				// (inspectStream).
				pp = d.turn(pp)
			}
			c.reset(pp, f, dir == 0, kindApp)
			c.txID, c.hasTx = tx.ID-1, true
			setHTTPBuffers(&c, tx, dir)
			body, bodyBuf := &tx.RequestBody, rules.BufHTTPRequestBody
			if dir == 1 {
				body, bodyBuf = &tx.ResponseBody, rules.BufHTTPResponseBody
			}
			bodyBits := uint64(1)<<bodyBuf | 1<<rules.BufFileData
			if again {
				c.skip = ^bodyBits
				c.extra = ts.cands[dir]
			}
			if n := int64(len(body.Data)); n > 0 && body.Verbatim && ts.hits[dir].Covers(body.Start, body.Start+n) {
				// The stream scans found the body's patterns (scanWindow):
				// its candidates without a scan of its own. extra then
				// carries the protocol's header-only rules itself.
				pf, hits := d.e.pf, ts.hits[dir].Hits()
				if !again {
					c.extra = d.e.uncond[rules.AppHTTP]
				}
				c.extra = slices.Concat(c.extra, pf.SelectStream(bodyBuf, hits, &d.sc))
				c.extra = append(c.extra, pf.SelectStream(rules.BufFileData, hits, &d.sc)...)
				c.skip |= bodyBits
			}
			for _, id := range ts.fired {
				d.stamp[id] = d.gen
			}
			before := len(d.alerts)
			d.inspectApp(&c, rules.AppHTTP)
			if stage == http1.ProgressHeaders && len(d.cands) <= maxKeptCandidates {
				ts.cands[dir] = append(make([]int32, 0, len(d.cands)+1), d.cands...)
			} else {
				ts.cands[dir] = nil
			}
			for _, a := range d.alerts[before:] {
				if len(ts.fired) < maxFiredPerTx {
					ts.fired = append(ts.fired, a.RuleIndex)
				}
			}
		}
	}
	f.pruneTxs()
}

func setHTTPBuffers(c *ictx, tx *http1.Tx, dir int) {
	if dir == 0 {
		c.set(rules.BufHTTPMethod, tx.Method)
		c.set(rules.BufHTTPURI, tx.URI)
		c.set(rules.BufHTTPURIRaw, tx.URIRaw)
		c.set(rules.BufHTTPProtocol, tx.Protocol)
		c.set(rules.BufHTTPRequestLine, tx.RequestLine)
		if tx.Host != nil {
			c.set(rules.BufHTTPHost, tx.Host)
			c.set(rules.BufHTTPHostRaw, tx.HostRaw)
		}
		setNonNil(c, rules.BufHTTPHeader, tx.RequestHeaderBuf)
		setNonNil(c, rules.BufHTTPHeaderNames, tx.RequestHeaderNames)
		setHeader(c, rules.BufHTTPUserAgent, tx.RequestHeaders, "User-Agent")
		setHeader(c, rules.BufHTTPCookie, tx.RequestHeaders, "Cookie")
		setHeader(c, rules.BufHTTPReferer, tx.RequestHeaders, "Referer")
		setHeader(c, rules.BufHTTPContentType, tx.RequestHeaders, "Content-Type")
		setHeader(c, rules.BufHTTPAccept, tx.RequestHeaders, "Accept")
		setHeader(c, rules.BufHTTPAcceptEnc, tx.RequestHeaders, "Accept-Encoding")
		setHeader(c, rules.BufHTTPAcceptLang, tx.RequestHeaders, "Accept-Language")
		setHeader(c, rules.BufHTTPConnection, tx.RequestHeaders, "Connection")
		setHeader(c, rules.BufHTTPContentLen, tx.RequestHeaders, "Content-Length")
		if len(tx.RequestBody.Data) > 0 {
			c.set(rules.BufHTTPRequestBody, tx.RequestBody.Data)
			c.set(rules.BufFileData, tx.RequestBody.Data)
		}
		return
	}
	if tx.ResponseLine != nil {
		c.set(rules.BufHTTPResponseLine, tx.ResponseLine)
		c.set(rules.BufHTTPStatCode, tx.StatusCode)
		c.set(rules.BufHTTPStatMsg, tx.StatusMsg)
		c.set(rules.BufHTTPProtocol, tx.ResponseProtocol)
	}
	setNonNil(c, rules.BufHTTPHeader, tx.ResponseHeaderBuf)
	setNonNil(c, rules.BufHTTPHeaderNames, tx.ResponseHeaderNames)
	setHeader(c, rules.BufHTTPCookie, tx.ResponseHeaders, "Set-Cookie")
	setHeader(c, rules.BufHTTPContentType, tx.ResponseHeaders, "Content-Type")
	setHeader(c, rules.BufHTTPLocation, tx.ResponseHeaders, "Location")
	setHeader(c, rules.BufHTTPServer, tx.ResponseHeaders, "Server")
	setHeader(c, rules.BufHTTPConnection, tx.ResponseHeaders, "Connection")
	setHeader(c, rules.BufHTTPContentLen, tx.ResponseHeaders, "Content-Length")
	if len(tx.ResponseBody.Data) > 0 {
		c.set(rules.BufHTTPResponseBody, tx.ResponseBody.Data)
		c.set(rules.BufFileData, tx.ResponseBody.Data)
	}
}

// setNonNil offers a buffer that exists (a header that was sent, even
// empty: bsize:0 on an empty User-Agent matches, as in Suricata).
func setNonNil(c *ictx, b rules.Buffer, v []byte) {
	if v != nil {
		c.set(b, v)
	}
}

// setHeader offers the merged value of header name when the header was
// sent, even empty (bsize:0 on an empty User-Agent matches, as in
// Suricata); an absent header is an absent buffer.
func setHeader(c *ictx, b rules.Buffer, hs []http1.Header, name string) {
	for i := range hs {
		if bytes.EqualFold(hs[i].Name, []byte(name)) {
			v := hs[i].Value
			if v == nil {
				v = []byte{}
			}
			c.set(b, v)
			return
		}
	}
}
