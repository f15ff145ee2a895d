// Package engine is the IPS detection engine: it takes decoded packets,
// keeps per-flow state (TCP reassembly through internal/ips/stream, the
// HTTP, DNS and TLS parsers of internal/ips/proto), asks the prefilter
// (internal/ips/prefilter) which rules are worth evaluating for each
// buffer, evaluates those rules fully (eval.go) and reports alerts, which
// EVE writes as Suricata's eve.json alert events.
//
// The package is pure in the sense of the style guide: no files, sockets
// or goroutines. Time comes from the packets' timestamps. The offline
// replay (Replay) reads a classic pcap from an io.Reader.
//
// Everything a guest sends is hostile: flows, flowbits, threshold entries
// and per-packet alerts are bounded by Config, content matching retries
// (Suricata's backtracking over relative matches) are bounded per buffer,
// and regular expressions are Go's linear-time RE2 (the rules package
// refuses what RE2 cannot do).
package engine
