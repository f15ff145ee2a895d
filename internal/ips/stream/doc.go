// Package stream reassembles TCP connections for the inline IPS: per flow
// and per direction it tracks sequence numbers, holds out-of-order and
// not yet acknowledged bytes, and hands a Consumer (the protocol parsers)
// each direction's bytes in order, exactly once, with gaps said as gaps.
//
// The package is pure: no I/O, no goroutines, no clock. Every segment
// comes from a guest and is treated as hostile; every buffer and loop is
// bounded by Config and by the Pool's memory budget.
//
// # Inline semantics: what is inspected is what the receiver gets
//
// An inline IPS must decide on bytes before the receiver sees them, and
// an evasion works when the IPS and the receiving stack assemble
// different bytes from the same segments (overlaps carrying different
// data, retransmissions after the receiver dropped the first copy, RSTs
// the receiver ignores). Operating systems resolve overlaps differently
// (Suricata's IDS mode models them per host: first, last, bsd, linux,
// windows, ...), so instead of modelling the guest's stack this package
// removes the choice:
//
//   - First wins. The first copy of each byte that was accepted is the
//     one inspected and the one compared against.
//   - A segment that carries a different byte for a sequence number
//     already held (buffered out of order, or delivered and not yet
//     acknowledged by the receiver) raises EventOverlapDiff and is
//     refused whole: Result.Drop is true and nothing of it is kept.
//     Dropped, it never reaches the receiver, so every byte the receiver
//     can assemble is the byte the consumer inspected, whatever the
//     receiver's overlap policy. Suricata's inline mode instead rewrites
//     the packet to the first data; dropping needs no packet rewriting,
//     and a genuine stack never resends different bytes (it resends the
//     same ones, which pass as EventOverlap).
//   - Delivered bytes are held until the receiver acknowledges them
//     (until then it may not have them, and a different copy could still
//     reach it). Acknowledged bytes are forgotten: the receiver discards
//     any later copy of them.
//   - An RST ends the connection only with the exact next sequence
//     number (RFC 5961, which current Linux, Windows and BSD stacks
//     enforce); other RSTs raise EventRstInvalid and are dropped, so no
//     receiver acts on an RST that inspection ignored.
//   - Segments starting at or beyond the right edge of the receiver's
//     advertised window (known once both SYNs were seen; the furthest
//     edge ever advertised, so a shrinking window never drops) raise
//     EventOutsideWindow and are dropped: the receiver would discard them.
//   - Data with the URG flag raises EventUrgent and is dropped: a socket
//     takes the urgent byte out of the stream by default (Suricata's
//     stream.reassembly.urgent-policy "drop").
//
// Because conflicting copies are dropped rather than resolved, tricks
// that make the receiver discard the first copy (a stale TCP timestamp,
// a missing ACK flag, a full receive queue) gain nothing: the IPS
// inspected the first copy, and any different copy never arrives. The
// worst they do is stall the attacker's own connection.
//
// Result.Drop lists the events that refuse a segment. The engine drops
// such a segment inline (fail closed; a genuine sender retransmits it
// later). If it lets it pass (fail open), the receiver may get bytes the
// consumer never saw; when the receiver acknowledges them the reassembler
// skips them and tells the consumer a gap (EventGap).
//
// # Directions, start and end
//
// A direction starts at its SYN's sequence number plus one (data on the
// SYN is accepted). A direction whose SYN was not seen is picked up mid
// stream (EventMidstream) at the peer's ACK of it if one was seen, else
// at its first segment; bytes before that are never inspected. A second
// SYN with another initial sequence number is refused (EventSynChanged).
// Sequence numbers are compared modulo 2^32, so streams cross the wrap.
// The direction ends (Consumer.End) when its FIN is reached in order; a
// FIN that moves or that would cut bytes already accepted is refused, as
// are bytes after the FIN. A valid RST ends both directions.
//
// # Bounds
//
//   - Config.Depth (default 1 MiB, Suricata's stream.reassembly.depth):
//     bytes delivered plus gaps per direction. At the depth the
//     direction's memory is released (EventDepth) and its later segments
//     pass uninspected; only its position is still followed, for RSTs.
//   - Config.MaxBuffered (default 512 KiB): bytes held per direction,
//     from the first unacknowledged byte to the furthest out-of-order
//     byte; beyond it segments are refused (EventBufferFull).
//   - Config.MaxRanges (default 128): disjoint out-of-order ranges per
//     direction. Adjacent and overlapping segments merge into one range,
//     so a stream of tiny segments in order costs nothing; tiny segments
//     with holes between them are refused past the bound
//     (EventTooManySegments). Each segment walks at most MaxRanges ranges.
//   - Pool (default memcap 256 MiB): the capacity of every buffer and
//     range table of all Conns sharing the Pool. A segment needing memory
//     the Pool lacks is refused (EventMemcap); memory already held is
//     never taken from a flow, and a flow's buffer returns to the Pool as
//     soon as everything in it is acknowledged.
//
// # Events
//
// Every Segment call returns the events it raised (Result.Events); the
// Conn keeps their union (Conn.Events) and the Pool counts each one
// (Pool.Counts), named as in Event.String.
package stream
