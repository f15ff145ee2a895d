// Package proto is the home of the IPS application-layer parsers. It holds no
// code of its own; each protocol lives in a subpackage:
//
//   - http1: an incremental HTTP/1.x parser per connection, producing per
//     transaction the buffers Suricata rules inspect (http.uri, http.header,
//     http.request_body, http.response_body/file.data, ...).
//   - dns: a DNS message parser (UDP, and TCP with its length prefix) that
//     produces dns.query.
//   - tlshello: a TLS record-layer reader that reassembles a ClientHello and
//     extracts tls.sni and the JA3 inputs.
//
// All three are pure: they do no I/O, keep no goroutines, and treat every byte
// as hostile (it comes from a guest). Every loop and buffer is bounded by a
// documented limit; malformed input becomes an event with a reason, never a
// panic.
package proto
