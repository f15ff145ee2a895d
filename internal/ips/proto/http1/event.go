package http1

import "fmt"

// Dir is a direction of the connection.
type Dir uint8

const (
	// ToServer is the client's byte stream (requests).
	ToServer Dir = iota
	// ToClient is the server's byte stream (responses).
	ToClient
)

func (d Dir) String() string {
	if d == ToServer {
		return "to_server"
	}
	return "to_client"
}

// EventCode names an anomaly. The strings are stable: they are counter keys
// and appear in logs.
type EventCode string

// Anomalies. Fatal ones stop parsing of their direction (the flow's HTTP
// inspection ends there, as Suricata's does after a libhtp error); the
// others are informational and parsing goes on.
const (
	EventLineTooLong          EventCode = "line_too_long"          // fatal
	EventHeadersTooLarge      EventCode = "headers_too_large"      // fatal
	EventTooManyHeaders       EventCode = "too_many_headers"       // fatal
	EventTooManyTransactions  EventCode = "too_many_transactions"  // fatal
	EventInvalidChunkLength   EventCode = "invalid_chunk_length"   // fatal
	EventInvalidContentLength EventCode = "invalid_content_length" // fatal
	EventGap                  EventCode = "gap_in_headers"         // fatal
	EventRequestLineInvalid   EventCode = "request_line_invalid"
	EventUnknownMethod        EventCode = "unknown_method"
	EventURISpaces            EventCode = "uri_contains_spaces"
	EventResponseLineInvalid  EventCode = "response_line_invalid"
	EventInvalidStatus        EventCode = "invalid_status"
	EventHeaderMissingColon   EventCode = "header_missing_colon"
	EventHeaderInvalidName    EventCode = "header_invalid_name"
	EventHeaderFolding        EventCode = "header_folding"
	EventHeaderRepeated       EventCode = "header_repeated"
	EventDuplicateCL          EventCode = "duplicate_content_length"
	EventCLAndChunked         EventCode = "content_length_and_chunked"
	EventUnsolicitedResponse  EventCode = "unsolicited_response"
	EventUnknownEncoding      EventCode = "unknown_content_encoding"
	EventTooManyEncodings     EventCode = "too_many_content_encodings"
	EventDecompressionFailed  EventCode = "decompression_failed"
	EventDecompressionBomb    EventCode = "decompression_bomb"
	EventBodyGap              EventCode = "gap_in_body"
	EventTunnel               EventCode = "tunnel"
)

// Event is one anomaly seen on a connection.
type Event struct {
	Code EventCode
	Dir  Dir
	// TxID is the transaction the event belongs to (0 when none yet).
	TxID uint64
	// Detail says what was seen, with the offending size or bytes quoted
	// and bounded; it is for logs, not for matching.
	Detail string
}

func (e Event) String() string {
	return fmt.Sprintf("http %s tx %d: %s: %s", e.Dir, e.TxID, e.Code, e.Detail)
}

// quote renders hostile bytes for a Detail string, bounded to 64 bytes.
func quote(b []byte) string {
	const max = 64
	if len(b) > max {
		return fmt.Sprintf("%q...(%d bytes)", b[:max], len(b))
	}
	return fmt.Sprintf("%q", b)
}
