package http1

import (
	"bytes"
	"slices"
)

// Progress is how far one side of a transaction has been parsed.
type Progress uint8

const (
	// ProgressNone: nothing of this side seen yet.
	ProgressNone Progress = iota
	// ProgressLine: the request or status line is parsed.
	ProgressLine
	// ProgressHeaders: the header block is complete; header buffers are final.
	ProgressHeaders
	// ProgressBody: body bytes are arriving; body buffers grow.
	ProgressBody
	// ProgressComplete: the message is complete; every buffer is final.
	ProgressComplete
)

// Header is one header after merging: the name as first seen, the values
// of every line with that name (case-insensitively) joined by ", ", each
// trimmed of surrounding whitespace, folded lines joined.
type Header struct {
	Name  []byte
	Value []byte
}

// Body is a decoded message body as far as it is inspected.
type Body struct {
	// Data holds the first Limit decoded bytes (de-chunked, decompressed
	// when Content-Encoding is gzip or deflate).
	Data []byte
	// Truncated is set when more decoded bytes existed than were kept
	// (the body limit, a bomb stop or a gap).
	Truncated bool
	// WireLen counts the body bytes seen on the wire (after de-chunking,
	// before decompression), including those not kept.
	WireLen int64
	// Encoding lists the Content-Encoding layers being decoded, outermost
	// last, as sent (lower-cased).
	Encoding []string
	// Verbatim is set when Data is the direction's stream as sent from
	// stream offset Start on (Conn.Offset counts the offsets): no
	// chunking, no decoding, no gap. A caller that has already scanned
	// those stream bytes need not scan Data again for the same patterns.
	Verbatim bool
	Start    int64
}

// Tx is one HTTP transaction: a request and its response. Its byte slices
// are owned by the parser and are final once the corresponding side's
// Progress says so (header buffers at ProgressHeaders, bodies at
// ProgressComplete; a body may be inspected earlier, it only grows). The
// caller must not modify them.
type Tx struct {
	// ID counts transactions on the connection from 1.
	ID uint64

	RequestProgress  Progress
	ResponseProgress Progress

	// http.request_line: the request line without its line ending.
	RequestLine []byte
	// http.method.
	Method []byte
	// http.uri.raw: the URI as sent.
	URIRaw []byte
	// http.uri: the normalized URI (see NormalizeURI).
	URI []byte
	// http.protocol, as sent ("HTTP/1.1"); empty for HTTP/0.9.
	Protocol []byte
	// http.host: host from an absolute URI, else from the Host header;
	// lower-cased, without port or surrounding spaces.
	Host []byte
	// http.host.raw: the same source, as sent.
	HostRaw []byte
	// Request headers, merged, in order of first appearance.
	RequestHeaders []Header
	// http.header (request side): "Name: value\r\n" for every merged
	// header except Cookie.
	RequestHeaderBuf []byte
	// http.header_names (request side): "\r\nName1\r\nName2\r\n\r\n".
	RequestHeaderNames []byte
	// http.user_agent, http.cookie, http.referer, http.content_type
	// (request side): the merged header values.
	UserAgent          []byte
	Cookie             []byte
	Referer            []byte
	RequestContentType []byte
	// http.request_body (and file.data to_server).
	RequestBody Body

	// http.response_line without its line ending.
	ResponseLine []byte
	// Response protocol as sent ("HTTP/1.1").
	ResponseProtocol []byte
	// http.stat_code: the status code as sent (3 digits when valid).
	StatusCode []byte
	// http.stat_msg: the reason phrase.
	StatusMsg []byte
	// Status is the numeric status, 0 when the status line was invalid.
	Status int
	// Response headers, merged.
	ResponseHeaders []Header
	// http.header (response side): as RequestHeaderBuf, without Set-Cookie.
	ResponseHeaderBuf []byte
	// http.header_names (response side).
	ResponseHeaderNames []byte
	// http.cookie (response side): the Set-Cookie values.
	SetCookie []byte
	// http.content_type (response side).
	ResponseContentType []byte
	// http.response_body and file.data (to_client).
	ResponseBody Body

	// HTTP09 is set for a request line without protocol; its response has
	// no status line or headers, only a body up to the connection's close.
	HTTP09 bool

	// arena holds the transaction's lines, header names and values and
	// the buffers derived from them, so that a message costs a few
	// allocations, not two per header.
	arena []byte

	headersFinal bool // request header derived buffers built
	isHEAD       bool
	isCONNECT    bool
}

// Complete reports whether both sides are complete.
func (t *Tx) Complete() bool {
	return t.RequestProgress == ProgressComplete && t.ResponseProgress == ProgressComplete
}

// HeaderValue returns the merged value of the named request (ToServer) or
// response (ToClient) header, compared case-insensitively, or nil.
func (t *Tx) HeaderValue(d Dir, name string) []byte {
	hs := t.RequestHeaders
	if d == ToClient {
		hs = t.ResponseHeaders
	}
	if i := findHeader(hs, []byte(name)); i >= 0 {
		return hs[i].Value
	}
	return nil
}

func findHeader(hs []Header, name []byte) int {
	for i := range hs {
		if bytes.EqualFold(hs[i].Name, name) {
			return i
		}
	}
	return -1
}

// arenaStart is the first arena's capacity: a typical request's lines.
const arenaStart = 1024

// keep copies b into the arena. The copy's capacity ends with it, so an
// append to it (merging a repeated header) moves it instead of
// overwriting its neighbour; earlier copies stay valid when the arena
// moves. An empty b gives nil, as copying it with append would.
func (t *Tx) keep(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	from := len(t.arena)
	if cap(t.arena)-from < len(b) {
		t.arena = slices.Grow(t.arena, max(len(b), arenaStart))
		from = len(t.arena)
	}
	t.arena = append(t.arena, b...)
	return t.arena[from:len(t.arena):len(t.arena)]
}

// kept returns what was appended to the arena since from, capacity cut
// as keep's; nil when nothing was (as the function appending to nil
// would have returned).
func (t *Tx) kept(from int) []byte {
	if len(t.arena) == from {
		return nil
	}
	return t.arena[from:len(t.arena):len(t.arena)]
}

// normalizeHost is normalizeHost into the arena.
func (t *Tx) normalizeHost(host []byte, trimDots bool) []byte {
	from := len(t.arena)
	t.arena = normalizeHost(t.arena, host, trimDots)
	return t.kept(from)
}

// headerBuffers builds the http.header and http.header_names buffers, the
// way Suricata lays them out: "Name: value\r\n" per merged header, the
// cookie header of that direction left out; names as "\r\nN1\r\nN2\r\n\r\n".
func headerBuffers(hs []Header, skip string) (hdr, names []byte) {
	n, m := 0, 4
	for _, h := range hs {
		n += len(h.Name) + len(h.Value) + 4
		m += len(h.Name) + 2
	}
	if len(hs) == 0 {
		return nil, nil
	}
	buf := make([]byte, n+m)
	hdr, names = buf[:0:n], buf[n:n:n+m]
	names = append(names, '\r', '\n')
	for _, h := range hs {
		names = append(names, h.Name...)
		names = append(names, '\r', '\n')
		if len(h.Name) == len(skip) && bytes.EqualFold(h.Name, []byte(skip)) {
			continue
		}
		hdr = append(hdr, h.Name...)
		hdr = append(hdr, ':', ' ')
		hdr = append(hdr, h.Value...)
		hdr = append(hdr, '\r', '\n')
	}
	names = append(names, '\r', '\n')
	return hdr, names
}
