// Package http1 parses HTTP/1.x connections for the IPS, incrementally and
// without I/O. A Conn takes each direction's reassembled, in-order byte
// stream in chunks of any size (one byte at a time works, at linear cost)
// and produces transactions (Tx) carrying the buffers Suricata rules
// inspect: http.method, http.uri (normalized) and http.uri.raw,
// http.protocol, http.host, http.header, http.header_names,
// http.user_agent, http.cookie, http.referer, http.content_type,
// http.request_line, http.request_body, http.stat_code, http.stat_msg,
// http.response_line, http.response_body and file.data.
//
// The layout and normalization of each buffer follows Suricata 7/8 with its
// default libhtp configuration (personality IDS, uri-include-all off,
// allow-space-uri on, request and response decompression on); differences
// are listed in docs/ips.md. Everything a guest sends is bounded by Config:
// line length, header block size and count, body inspection depth, number
// of transactions, decompression output and ratio. Anomalies are Events;
// the fatal ones stop parsing of their direction, as a libhtp error stops
// Suricata's HTTP parsing of the flow.
package http1

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Conn is the parser state of one TCP connection. It is not safe for
// concurrent use; a connection's two directions are fed from one goroutine.
type Conn struct {
	cfg    Config
	txs    []*Tx
	nextID uint64
	req    side
	resp   side
	// fed counts each direction's stream bytes: fed plus gaps.
	fed [2]int64

	events []Event
	// DroppedEvents counts events not queued because MaxEvents were
	// already waiting.
	DroppedEvents uint64
}

// NewConn returns a parser for one connection; cfg's non-positive limits
// take their defaults.
func NewConn(cfg Config) *Conn {
	c := &Conn{cfg: cfg.sanitize()}
	c.req.dir = ToServer
	c.resp.dir = ToClient
	c.req.lastHdr, c.resp.lastHdr = -1, -1
	return c
}

// Txs returns the transactions held, oldest first. The slice and the
// transactions are owned by the Conn; the slice is valid until the next
// call on the Conn.
func (c *Conn) Txs() []*Tx { return c.txs }

// Prune releases the transactions that are complete in both directions
// and returns how many it released. The caller prunes once it has
// inspected them; transactions it never prunes still count against
// MaxTransactions.
func (c *Conn) Prune() int {
	w := 0
	for _, t := range c.txs {
		if t.Complete() {
			continue
		}
		c.txs[w] = t
		w++
	}
	n := len(c.txs) - w
	clear(c.txs[w:])
	c.txs = c.txs[:w]
	return n
}

// TakeEvents returns the events queued since the last call and empties the
// queue. The returned slice is the caller's.
func (c *Conn) TakeEvents() []Event {
	ev := c.events
	c.events = nil
	return ev
}

// Failed reports whether parsing of direction d has stopped after a fatal
// event (or a tunnel: CONNECT, 101 Switching Protocols).
func (c *Conn) Failed(d Dir) bool {
	return c.side(d).state == stFailed
}

// Offset returns how far direction d's stream has come: the bytes fed
// plus the bytes reported missing by Gap. A Verbatim body's Data is the
// stream from Body.Start on.
func (c *Conn) Offset(d Dir) int64 { return c.fed[d&1] }

func (c *Conn) side(d Dir) *side {
	if d == ToServer {
		return &c.req
	}
	return &c.resp
}

func (c *Conn) event(code EventCode, d Dir, t *Tx, format string, args ...any) {
	if len(c.events) >= c.cfg.MaxEvents {
		c.DroppedEvents++
		return
	}
	e := Event{Code: code, Dir: d, Detail: fmt.Sprintf(format, args...)}
	if t != nil {
		e.TxID = t.ID
	}
	c.events = append(c.events, e)
}

// fail stops parsing of a direction with a fatal event.
func (c *Conn) fail(s *side, code EventCode, format string, args ...any) {
	c.event(code, s.dir, s.cur, format, args...)
	s.state = stFailed
	s.line = nil
	s.dec = nil
}

// Feed parses the next bytes of direction d. data is not retained.
func (c *Conn) Feed(d Dir, data []byte) {
	s := c.side(d)
	c.fed[d&1] += int64(len(data))
	// Every iteration consumes input or changes state towards one that
	// does; states that change without input (line -> body for HTTP/0.9
	// responses) are bounded by the loop guard.
	for guard := 0; len(data) > 0 && guard < len(data)+16; {
		before := len(data)
		s.end = c.fed[d&1] - int64(len(data))
		switch s.state {
		case stFailed, stTunnel:
			return
		case stLine, stHeaders, stChunkSize, stChunkEnd, stTrailers:
			if d == ToClient && s.state == stLine && (c.startHTTP09Response(s) || c.notHTTPResponse(s, data)) {
				guard++
				continue
			}
			line, rest, ok := c.readLine(s, data)
			data = rest
			if !ok {
				return
			}
			s.end = c.fed[d&1] - int64(len(data))
			c.handleLine(s, line)
			s.line = s.line[:0]
		case stBodyLength, stChunkData:
			n := int64(len(data))
			if n > s.remaining {
				n = s.remaining
			}
			s.end += n
			c.bodyData(s, data[:n])
			data = data[n:]
			s.remaining -= n
			if s.remaining == 0 {
				if s.state == stChunkData {
					s.state = stChunkEnd
				} else {
					c.messageDone(s)
				}
			}
		case stBodyClose:
			s.end += int64(len(data))
			c.bodyData(s, data)
			data = nil
		}
		if len(data) == before {
			guard++
		}
	}
}

// Gap tells the parser that n bytes of direction d are missing from the
// stream (the reassembler gave up on them). Inside a body of known length
// the gap is skipped and the body flagged Truncated; anywhere else the
// direction cannot be resynchronized and stops.
func (c *Conn) Gap(d Dir, n int64) {
	s := c.side(d)
	if n <= 0 || s.state == stFailed || s.state == stTunnel {
		return
	}
	c.fed[d&1] += n
	switch s.state {
	case stBodyLength, stChunkData, stBodyClose:
		if s.state != stBodyClose && n > s.remaining {
			break
		}
		c.event(EventBodyGap, d, s.cur, "%d bytes missing in body", n)
		if s.body != nil {
			s.body.Truncated = true
			s.body.Verbatim = false
			s.body.WireLen += n
		}
		s.dec = nil // a compressed stream cannot continue across a hole
		s.bodyStopped = true
		if s.state != stBodyClose {
			s.remaining -= n
			if s.remaining == 0 {
				if s.state == stChunkData {
					s.state = stChunkEnd
				} else {
					c.messageDone(s)
				}
			}
		}
		return
	}
	c.fail(s, EventGap, "%d bytes missing outside a body", n)
}

// Close tells the parser that direction d ended (FIN). A response whose
// body runs to the connection's close is complete then.
func (c *Conn) Close(d Dir) {
	s := c.side(d)
	if len(s.line) > 0 && s.state != stFailed && s.state != stTunnel {
		// The last line, without its ending: parse it as libhtp does at
		// the end of the stream.
		line := s.line
		s.line = nil
		s.end = c.fed[d&1]
		c.handleLine(s, line)
	}
	if s.state == stHeaders {
		c.headersDone(s) // headers cut by the close end there
	}
	if s.state == stBodyClose {
		c.messageDone(s)
	}
	if s.state != stTunnel {
		s.state = stFailed
	}
	s.line = nil
}

// state is where a direction's parser is.
type state uint8

const (
	stLine       state = iota // request or status line (empty lines skipped)
	stHeaders                 // header lines up to the empty line
	stBodyLength              // Content-Length body; remaining bytes left
	stChunkSize               // chunk-size line
	stChunkData               // chunk data; remaining bytes left
	stChunkEnd                // the line ending after chunk data
	stTrailers                // trailer lines up to the empty line
	stBodyClose               // body until the connection closes
	stTunnel                  // not HTTP any more (CONNECT, 101)
	stFailed                  // stopped after a fatal event or close
)

// side is one direction's parser.
type side struct {
	dir   Dir
	state state
	line  []byte // the partial line carried between Feed calls
	cur   *Tx    // the transaction this direction is filling

	hdrBytes int // bytes of the current header block
	lastHdr  int // index of the header the last line went to, for folding
	reps     int // repeated header lines merged in this message
	folded   bool
	interim  bool // response: the current one is 1xx, skip it

	remaining int64
	// end is the stream offset just past the bytes parsed so far (a body
	// byte passed to bodyData lies before it).
	end         int64
	body        *Body
	bodyLimit   int
	dec         *decoder
	bodyStopped bool // no more body bytes are kept
}

// readLine returns the next complete line (with its ending) from the
// carried partial line and data. With ok false, data was all carried.
func (c *Conn) readLine(s *side, data []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		if len(s.line)+len(data) > c.cfg.LineLimit {
			c.fail(s, EventLineTooLong, "line longer than %d bytes", c.cfg.LineLimit)
			return nil, nil, false
		}
		s.line = append(s.line, data...)
		return nil, nil, false
	}
	if len(s.line)+i+1 > c.cfg.LineLimit {
		c.fail(s, EventLineTooLong, "line longer than %d bytes", c.cfg.LineLimit)
		return nil, nil, false
	}
	if len(s.line) == 0 {
		return data[:i+1], data[i+1:], true
	}
	s.line = append(s.line, data[:i+1]...)
	return s.line, data[i+1:], true
}

// chomp removes the line ending (LF or CRLF).
func chomp(line []byte) []byte {
	if n := len(line); n == 0 || line[n-1] != '\n' {
		return line // the last line of a closed stream
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func (c *Conn) handleLine(s *side, raw []byte) {
	line := chomp(raw)
	switch s.state {
	case stLine:
		if len(trimSpace(line)) == 0 {
			return // empty lines before a message are ignored, as libhtp does
		}
		s.hdrBytes = len(raw)
		if s.dir == ToServer {
			c.requestLine(s, line)
		} else {
			c.statusLine(s, line, raw)
		}
	case stHeaders:
		s.hdrBytes += len(raw)
		if s.hdrBytes > c.cfg.HeaderBytesLimit {
			c.fail(s, EventHeadersTooLarge, "header block over %d bytes", c.cfg.HeaderBytesLimit)
			return
		}
		if len(line) == 0 {
			c.headersDone(s)
			return
		}
		c.headerLine(s, line)
	case stChunkSize:
		c.chunkSize(s, line)
	case stChunkEnd:
		// The line ending after chunk data; anything else on it is
		// tolerated, as libhtp does.
		s.state = stChunkSize
	case stTrailers:
		s.hdrBytes += len(raw)
		if s.hdrBytes > c.cfg.HeaderBytesLimit {
			c.fail(s, EventHeadersTooLarge, "trailer block over %d bytes", c.cfg.HeaderBytesLimit)
			return
		}
		if len(line) == 0 {
			c.messageDone(s)
		}
	}
}

// newTx appends a transaction, pruning finished ones when the table is
// full; it returns nil (after failing s) when it cannot.
func (c *Conn) newTx(s *side) *Tx {
	if len(c.txs) >= c.cfg.MaxTransactions {
		c.Prune()
	}
	if len(c.txs) >= c.cfg.MaxTransactions {
		c.fail(s, EventTooManyTransactions, "%d transactions outstanding", len(c.txs))
		return nil
	}
	c.nextID++
	t := &Tx{ID: c.nextID}
	c.txs = append(c.txs, t)
	return t
}

func (c *Conn) requestLine(s *side, line []byte) {
	t := c.newTx(s)
	if t == nil {
		return
	}
	s.cur = t
	t.RequestLine = t.keep(line)
	rl := t.RequestLine
	i := 0
	for i < len(rl) && isSpace(rl[i]) {
		i++
	}
	j := i
	for j < len(rl) && !isSpace(rl[j]) {
		j++
	}
	t.Method = rl[i:j:j]
	t.isHEAD = string(t.Method) == "HEAD"
	t.isCONNECT = string(t.Method) == "CONNECT"
	if !knownMethod(t.Method) {
		c.event(EventUnknownMethod, ToServer, t, "method %s", quote(t.Method))
	}
	rest := trimSpace(rl[j:])
	if len(rest) == 0 {
		c.event(EventRequestLineInvalid, ToServer, t, "method only: %s", quote(line))
		c.request09(s, t)
		return
	}
	// allow-space-uri: the protocol follows the last space, so a URI may
	// hold spaces; other whitespace only delimits when there is no space.
	uri, proto := rest, []byte(nil)
	if k := bytes.LastIndexByte(rest, ' '); k >= 0 {
		uri, proto = trimSpace(rest[:k]), trimSpace(rest[k+1:])
	} else if k := lastSpaceFunc(rest); k >= 0 {
		uri, proto = trimSpace(rest[:k]), trimSpace(rest[k+1:])
	}
	if bytes.IndexByte(uri, ' ') >= 0 {
		c.event(EventURISpaces, ToServer, t, "uri %s", quote(uri))
	}
	t.URIRaw = uri[:len(uri):len(uri)]
	if t.isCONNECT {
		t.URI = t.URIRaw // authority form: libhtp has no path to normalize
	} else {
		from := len(t.arena)
		t.arena = NormalizeURI(t.arena, uri)
		t.URI = t.kept(from)
	}
	if len(proto) == 0 {
		c.request09(s, t)
		return
	}
	t.Protocol = proto[:len(proto):len(proto)]
	if len(proto) < 5 || !bytes.EqualFold(proto[:5], []byte("HTTP/")) {
		c.event(EventRequestLineInvalid, ToServer, t, "protocol %s", quote(proto))
	}
	t.RequestProgress = ProgressLine
	s.state = stHeaders
	s.lastHdr, s.reps, s.folded = -1, 0, false
}

func lastSpaceFunc(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if isSpace(b[i]) {
			return i
		}
	}
	return -1
}

// request09 completes an HTTP/0.9 request: no headers, no body.
func (c *Conn) request09(s *side, t *Tx) {
	t.HTTP09 = true
	t.RequestProgress = ProgressComplete
	t.headersFinal = true
	s.cur = nil
	s.state = stLine
}

func knownMethod(m []byte) bool {
	switch string(m) {
	case "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "TRACE", "PATCH",
		"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH", "REPORT":
		return true
	}
	return false
}

// startHTTP09Response switches the response side to a close-delimited body
// when the transaction it answers is HTTP/0.9 (no status line).
func (c *Conn) startHTTP09Response(s *side) bool {
	if len(s.line) > 0 {
		return false
	}
	t := c.pendingResponse()
	if t == nil || !t.HTTP09 {
		return false
	}
	s.cur = t
	t.ResponseProgress = ProgressBody
	c.startBody(s, &t.ResponseBody, c.cfg.ResponseBodyLimit, nil)
	s.state = stBodyClose
	return true
}

// notHTTPResponse switches the response side to a close-delimited body as
// soon as the first four non-blank bytes of a response are not "HTTP",
// without waiting for a line end (libhtp's HTTP/0.9-style response).
func (c *Conn) notHTTPResponse(s *side, data []byte) bool {
	if len(s.line) > 64 {
		return false // decided when the line ends; keeps tiny feeds linear
	}
	var first [4]byte
	n := 0
	for _, part := range [2][]byte{s.line, data[:min(len(data), 64)]} {
		for _, b := range part {
			if n == 4 {
				break
			}
			if n == 0 && isSpace(b) {
				continue
			}
			first[n] = b
			n++
		}
	}
	if n < 4 || bytes.EqualFold(first[:], []byte("HTTP")) {
		return false
	}
	t := c.pendingResponse()
	if t == nil {
		if t = c.newTx(s); t == nil {
			return true
		}
		t.RequestProgress = ProgressComplete
	}
	s.cur = t
	c.event(EventResponseLineInvalid, ToClient, t, "response starts with %s", quote(first[:]))
	t.ResponseProgress = ProgressBody
	c.startBody(s, &t.ResponseBody, c.cfg.ResponseBodyLimit, nil)
	s.state = stBodyClose
	carried := s.line
	s.line = nil
	c.bodyData(s, carried)
	return true
}

// pendingResponse is the oldest transaction still waiting for a response.
func (c *Conn) pendingResponse() *Tx {
	for _, t := range c.txs {
		if t.ResponseProgress == ProgressNone {
			return t
		}
	}
	return nil
}

func (c *Conn) statusLine(s *side, line, raw []byte) {
	t := s.cur
	if t == nil {
		t = c.pendingResponse()
	}
	if t == nil {
		if t = c.newTx(s); t == nil {
			return
		}
		t.RequestProgress = ProgressComplete
		t.headersFinal = true
		c.event(EventUnsolicitedResponse, ToClient, t, "response without a request")
	}
	s.cur = t
	rl := t.keep(line)
	i := 0
	for i < len(rl) && isSpace(rl[i]) {
		i++
	}
	j := i
	for j < len(rl) && !isSpace(rl[j]) {
		j++
	}
	proto := rl[i:j:j]
	if len(proto) < 4 || !bytes.EqualFold(proto[:4], []byte("HTTP")) {
		// Not a status line: like libhtp, treat the response as a body
		// without headers running to the connection's close.
		c.event(EventResponseLineInvalid, ToClient, t, "status line %s", quote(line))
		t.ResponseProgress = ProgressBody
		c.startBody(s, &t.ResponseBody, c.cfg.ResponseBodyLimit, nil)
		s.state = stBodyClose
		c.bodyData(s, raw)
		return
	}
	t.ResponseLine = rl
	t.ResponseProtocol = proto
	for j < len(rl) && isSpace(rl[j]) {
		j++
	}
	k := j
	for k < len(rl) && !isSpace(rl[k]) {
		k++
	}
	t.StatusCode = rl[j:k:k]
	t.StatusMsg = trimSpace(rl[k:])
	t.Status = 0
	if sc := t.StatusCode; len(sc) == 3 && isDigit(sc[0]) && isDigit(sc[1]) && isDigit(sc[2]) {
		if v := int(sc[0]-'0')*100 + int(sc[1]-'0')*10 + int(sc[2]-'0'); v >= 100 {
			t.Status = v
		}
	}
	if t.Status == 0 {
		c.event(EventInvalidStatus, ToClient, t, "status %s", quote(t.StatusCode))
	}
	s.interim = t.Status >= 100 && t.Status < 200 && t.Status != 101
	t.ResponseProgress = ProgressLine
	t.ResponseHeaders = nil
	s.state = stHeaders
	s.lastHdr, s.reps, s.folded = -1, 0, false
}

func (c *Conn) headerLine(s *side, line []byte) {
	t := s.cur
	hs := &t.RequestHeaders
	if s.dir == ToClient {
		hs = &t.ResponseHeaders
	}
	if (line[0] == ' ' || line[0] == '\t') && s.lastHdr >= 0 {
		// obs-fold: the continuation joins the previous value, its
		// leading whitespace kept (libhtp's behaviour).
		if !s.folded {
			s.folded = true
			c.event(EventHeaderFolding, s.dir, t, "folded line after %s", quote((*hs)[s.lastHdr].Name))
		}
		h := &(*hs)[s.lastHdr]
		h.Value = append(h.Value, bytes.TrimRight(line, " \t\r\v\f")...)
		return
	}
	var name, value []byte
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		c.event(EventHeaderMissingColon, s.dir, t, "line %s", quote(line))
		value = trimSpace(line)
	} else {
		name, value = trimSpace(line[:colon]), trimSpace(line[colon+1:])
		if len(name) == 0 || len(name) != colon || !isToken(name) {
			c.event(EventHeaderInvalidName, s.dir, t, "name %s", quote(line[:colon]))
		}
	}
	if i := findHeader(*hs, name); i >= 0 {
		s.lastHdr = i
		if s.reps >= 64 {
			return // libhtp stops merging after 64 repetitions
		}
		s.reps++
		h := &(*hs)[i]
		if bytes.EqualFold(name, []byte("Content-Length")) {
			if !bytes.Equal(trimSpace(h.Value), value) {
				c.event(EventDuplicateCL, s.dir, t, "%s and %s", quote(h.Value), quote(value))
			}
			return // the first Content-Length stands
		}
		h.Value = append(append(h.Value, ',', ' '), value...)
		return
	}
	if len(*hs) >= c.cfg.HeaderCountLimit {
		c.fail(s, EventTooManyHeaders, "more than %d headers", c.cfg.HeaderCountLimit)
		return
	}
	if *hs == nil {
		*hs = make([]Header, 0, 16)
	}
	*hs = append(*hs, Header{Name: t.keep(name), Value: t.keep(value)})
	s.lastHdr = len(*hs) - 1
}

// tokenByte marks the bytes RFC 9110 allows in a token (a header name).
var tokenByte = func() (t [256]bool) {
	for c := '!'; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune("()<>@,;:\\\"/[]?={}", c)
	}
	return t
}()

func isToken(b []byte) bool {
	for _, c := range b {
		if !tokenByte[c] {
			return false
		}
	}
	return true
}

func (c *Conn) headersDone(s *side) {
	t := s.cur
	if s.dir == ToServer {
		c.requestHeadersDone(s, t)
	} else {
		c.responseHeadersDone(s, t)
	}
}

func (c *Conn) requestHeadersDone(s *side, t *Tx) {
	t.RequestHeaderBuf, t.RequestHeaderNames = headerBuffers(t.RequestHeaders, "Cookie")
	t.UserAgent = t.HeaderValue(ToServer, "User-Agent")
	t.Cookie = t.HeaderValue(ToServer, "Cookie")
	t.Referer = t.HeaderValue(ToServer, "Referer")
	t.RequestContentType = t.HeaderValue(ToServer, "Content-Type")
	c.setHost(t)
	t.headersFinal = true
	t.RequestProgress = ProgressHeaders
	c.startMessageBody(s, t, &t.RequestBody, c.cfg.RequestBodyLimit, t.RequestHeaders, false)
}

// setHost fills http.host and http.host.raw: from an absolute URI (or
// CONNECT's authority) when it names a host, else from the Host header.
func (c *Conn) setHost(t *Tx) {
	if t.isCONNECT {
		host, _ := splitHostPort(t.URIRaw)
		t.HostRaw = host
		t.Host = t.normalizeHost(host, false)
		return
	}
	if u := splitURI(t.URIRaw); u.hasAuthority && len(u.host) > 0 {
		t.HostRaw = u.host
		t.Host = t.normalizeHost(u.host, true)
		return
	}
	if v := t.HeaderValue(ToServer, "Host"); v != nil {
		t.HostRaw = v
		host, _ := splitHostPort(v)
		t.Host = t.normalizeHost(host, false)
	}
}

func (c *Conn) responseHeadersDone(s *side, t *Tx) {
	if s.interim {
		// A 1xx (other than 101) precedes the real response of the same
		// transaction; its headers are dropped.
		t.ResponseHeaders = nil
		t.ResponseProgress = ProgressNone
		s.state = stLine
		s.interim = false
		// Later lines go to a new arena, so that endless 1xx responses
		// do not grow one transaction's.
		t.arena = nil
		return
	}
	t.ResponseHeaderBuf, t.ResponseHeaderNames = headerBuffers(t.ResponseHeaders, "Set-Cookie")
	t.SetCookie = t.HeaderValue(ToClient, "Set-Cookie")
	t.ResponseContentType = t.HeaderValue(ToClient, "Content-Type")
	t.ResponseProgress = ProgressHeaders
	if t.Status == 101 || t.isCONNECT && t.Status >= 200 && t.Status < 300 {
		c.event(EventTunnel, ToClient, t, "status %d: no longer HTTP", t.Status)
		t.ResponseProgress = ProgressComplete
		if t.RequestProgress != ProgressComplete {
			t.RequestProgress = ProgressComplete
		}
		s.cur = nil
		s.state = stTunnel
		c.req.state = stTunnel
		c.req.cur = nil
		return
	}
	if t.isHEAD || t.Status == 204 || t.Status == 304 {
		c.messageDone(s) // no body whatever the headers say
		return
	}
	c.startMessageBody(s, t, &t.ResponseBody, c.cfg.ResponseBodyLimit, t.ResponseHeaders, true)
}

// startMessageBody picks the body framing from the headers. closeDelimited
// says whether a message without Content-Length or chunking has a body
// running to the close (responses) or none (requests).
func (c *Conn) startMessageBody(s *side, t *Tx, b *Body, limit int, hs []Header, closeDelimited bool) {
	te := valueOf(hs, "Transfer-Encoding")
	cl := valueOf(hs, "Content-Length")
	chunked := te != nil && containsFold(te, "chunked")
	var encs []encoding
	if ce := valueOf(hs, "Content-Encoding"); ce != nil && c.cfg.DecompressLayers > 0 {
		var names []string
		var code EventCode
		encs, names, code = parseEncodings(ce, c.cfg.DecompressLayers)
		b.Encoding = names
		if code != "" {
			c.event(code, s.dir, t, "content-encoding %s: body kept as sent", quote(ce))
			encs = nil
		}
	}
	c.startBody(s, b, limit, encs)
	switch {
	case chunked:
		b.Verbatim = false
		if cl != nil {
			c.event(EventCLAndChunked, s.dir, t, "content-length %s ignored", quote(cl))
		}
		s.state = stChunkSize
	case cl != nil:
		n, ok := parseContentLength(cl)
		if !ok {
			c.fail(s, EventInvalidContentLength, "content-length %s", quote(cl))
			return
		}
		if n == 0 {
			c.messageDone(s)
			return
		}
		s.remaining = n
		s.state = stBodyLength
	case closeDelimited:
		s.state = stBodyClose
	default:
		c.messageDone(s)
		return
	}
	if s.dir == ToServer {
		t.RequestProgress = ProgressBody
	} else {
		t.ResponseProgress = ProgressBody
	}
}

func valueOf(hs []Header, name string) []byte {
	if i := findHeader(hs, []byte(name)); i >= 0 {
		return hs[i].Value
	}
	return nil
}

// parseContentLength takes the first run of digits, tolerating junk
// around it as libhtp does; no digits or an overflow is invalid.
func parseContentLength(v []byte) (int64, bool) {
	i := 0
	for i < len(v) && (v[i] < '0' || v[i] > '9') {
		i++
	}
	j := i
	for j < len(v) && v[j] >= '0' && v[j] <= '9' {
		j++
	}
	if i == j {
		return 0, false
	}
	var n int64
	for _, c := range v[i:j] {
		if n > (math.MaxInt64-9)/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// containsFold reports whether s contains the lower-case ASCII word w,
// ignoring ASCII case in s.
func containsFold(s []byte, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if bytes.EqualFold(s[i:i+len(w)], []byte(w)) {
			return true
		}
	}
	return false
}

func (c *Conn) chunkSize(s *side, line []byte) {
	i := 0
	for i < len(line) && (isSpace(line[i]) || line[i] < 0x20) {
		i++
	}
	j := i
	var n int64
	for j < len(line) {
		d, ok := unhex(line[j])
		if !ok {
			break
		}
		n = n<<4 | int64(d)
		if n > 1<<31-1 {
			break
		}
		j++
	}
	if i == j || n > 1<<31-1 {
		c.fail(s, EventInvalidChunkLength, "chunk size line %s", quote(line))
		return
	}
	if n == 0 {
		s.state = stTrailers
		s.hdrBytes = 0
		return
	}
	s.remaining = n
	s.state = stChunkData
}

func (c *Conn) startBody(s *side, b *Body, limit int, encs []encoding) {
	b.Verbatim = len(encs) == 0
	s.body = b
	s.bodyLimit = limit
	s.bodyStopped = false
	s.dec = nil
	if len(encs) > 0 {
		s.dec = newDecoder(encs, limit, c.cfg.DecompressRatio)
	}
}

// bodyData takes de-chunked body bytes.
func (c *Conn) bodyData(s *side, p []byte) {
	b := s.body
	if b == nil || len(p) == 0 {
		return
	}
	if b.WireLen == 0 {
		b.Start = s.end - int64(len(p))
	}
	b.WireLen += int64(len(p))
	if s.bodyStopped {
		b.Truncated = true
		return
	}
	if s.dec != nil {
		if r, ok := s.dec.write(p, b.Data); ok {
			c.applyDecode(s, r)
		}
		return
	}
	room := s.bodyLimit - len(b.Data)
	if len(p) > room {
		p = p[:room]
		b.Truncated = true
		s.bodyStopped = true
	}
	if len(b.Data)+len(p) > cap(b.Data) {
		b.Data = slices.Grow(b.Data, c.bodyGrowth(s, b, len(p)))
	}
	b.Data = append(b.Data, p...)
}

// bodyGrowth returns how many bytes to reserve for a body that must take
// n more: the rest of a body of known length, at once, but never more than
// 16 times the body bytes received plus 4 KiB, so that a header announcing
// a large body makes the parser hold no more than what was sent justifies;
// at least double the current capacity (amortized growth); within the
// body limit.
func (c *Conn) bodyGrowth(s *side, b *Body, n int) int {
	want := len(b.Data) + n
	if s.state == stBodyLength {
		want = len(b.Data) + int(min(s.remaining, int64(s.bodyLimit)))
	}
	want = min(want, 16*int(min(b.WireLen, int64(s.bodyLimit)))+4096)
	want = max(want, 2*cap(b.Data))
	want = min(want, s.bodyLimit)
	return max(want, len(b.Data)+n) - len(b.Data)
}

func (c *Conn) applyDecode(s *side, r decodeResult) {
	b := s.body
	if r.event == EventDecompressionFailed && len(r.out) == 0 {
		// Not actually compressed as announced: keep the bytes as sent,
		// as libhtp passes undecodable data through.
		c.event(r.event, s.dir, s.cur, "%s body not decodable: kept as sent", b.Encoding)
		raw := s.dec.in
		s.dec = nil
		b.Data = b.Data[:0]
		b.Truncated = false
		s.bodyStopped = false
		wire := b.WireLen
		c.bodyData(s, raw)
		b.WireLen = wire
		return
	}
	b.Data = r.out
	if r.truncated {
		b.Truncated = true
	}
	if r.event != "" {
		c.event(r.event, s.dir, s.cur, "%s body: stopped after %d decoded bytes", b.Encoding, len(r.out))
	}
	if s.dec.done {
		// Limit, bomb, failure or end: later body bytes are only counted.
		s.bodyStopped = true
		s.dec = nil
	}
}

// messageDone completes the current message of s.
func (c *Conn) messageDone(s *side) {
	t := s.cur
	if s.dec != nil {
		if r, ok := s.dec.finish(s.body.Data); ok {
			c.applyDecode(s, r)
		}
	}
	s.dec = nil
	s.body = nil
	if t != nil {
		if s.dir == ToServer {
			t.RequestProgress = ProgressComplete
		} else {
			t.ResponseProgress = ProgressComplete
		}
	}
	s.cur = nil
	s.state = stLine
}
