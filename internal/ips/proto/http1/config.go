package http1

// Config bounds what one connection's parser may hold. The zero value is not
// useful; start from DefaultConfig and change what you need. Every limit is
// per connection (headers, lines) or per transaction (bodies).
type Config struct {
	// LineLimit is the longest request, status, header or chunk-size line
	// accepted, in bytes, including its line ending. A longer line is the
	// event EventLineTooLong and the direction stops being parsed (as
	// libhtp's field-limit does). Default 18000, Suricata's default.
	LineLimit int
	// HeaderBytesLimit bounds the whole header block of one message
	// (request or status line plus all header lines). Default 128 KiB.
	HeaderBytesLimit int
	// HeaderCountLimit bounds the number of distinct header names in one
	// message; repeated names are merged and do not count again. Default
	// 1024, Suricata's default.
	HeaderCountLimit int
	// RequestBodyLimit and ResponseBodyLimit are the inspection depths of
	// http.request_body and http.response_body/file.data: that many decoded
	// (de-chunked, decompressed) bytes are kept; the rest is counted and
	// the body is flagged Truncated. Default 100 KiB each, Suricata's
	// request-body-limit and response-body-limit defaults.
	RequestBodyLimit  int
	ResponseBodyLimit int
	// DecompressLayers is how many stacked Content-Encodings are decoded
	// (gzip, deflate); 0 keeps bodies as sent. Default 2, Suricata's
	// response-body-decompress-layer-limit.
	DecompressLayers int
	// DecompressRatio flags a decompression bomb: once the decoded output
	// passes 64 KiB and is more than DecompressRatio times the compressed
	// input, decoding stops with EventDecompressionBomb. Default 2048
	// (libhtp's bomb ratio). The absolute bound is the body limit: no more
	// than RequestBodyLimit/ResponseBodyLimit bytes are ever produced.
	DecompressRatio int
	// MaxTransactions bounds the transactions held per connection
	// (pipelined requests awaiting responses plus finished ones the caller
	// has not released). Beyond it the request direction gives up with
	// EventTooManyTransactions. Default 64.
	MaxTransactions int
	// MaxEvents bounds the events queued between two TakeEvents calls;
	// further events are only counted in DroppedEvents. Default 64.
	MaxEvents int
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		LineLimit:         18000,
		HeaderBytesLimit:  128 << 10,
		HeaderCountLimit:  1024,
		RequestBodyLimit:  100 << 10,
		ResponseBodyLimit: 100 << 10,
		DecompressLayers:  2,
		DecompressRatio:   2048,
		MaxTransactions:   64,
		MaxEvents:         64,
	}
}

// sanitize replaces non-positive limits with the defaults, so a
// half-filled Config can never mean "unbounded".
func (c Config) sanitize() Config {
	d := DefaultConfig()
	pos := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	pos(&c.LineLimit, d.LineLimit)
	pos(&c.HeaderBytesLimit, d.HeaderBytesLimit)
	pos(&c.HeaderCountLimit, d.HeaderCountLimit)
	pos(&c.RequestBodyLimit, d.RequestBodyLimit)
	pos(&c.ResponseBodyLimit, d.ResponseBodyLimit)
	pos(&c.DecompressRatio, d.DecompressRatio)
	pos(&c.MaxTransactions, d.MaxTransactions)
	pos(&c.MaxEvents, d.MaxEvents)
	if c.DecompressLayers < 0 {
		c.DecompressLayers = 0
	}
	return c
}
