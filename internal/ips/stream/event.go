package stream

import (
	"fmt"
	"strings"
)

// Event is one reason a segment was remarkable. Events marked "drop" in
// the list below make Result.Drop true: the segment must not reach the
// receiver, or the bytes the receiver assembles could differ from the
// bytes the consumer inspected.
type Event uint8

// Events, with their counter names.
const (
	// EventMidstream: the direction's first segment was not a SYN, so
	// its start is taken from that segment (or from the peer's ACK).
	EventMidstream Event = iota
	// EventOverlap: a segment repeated bytes already held, identically
	// (a retransmission). Informational.
	EventOverlap
	// EventOverlapDiff (drop): a segment carried bytes different from
	// the ones first seen at the same sequence numbers, the classic
	// evasion. The first bytes stay; the segment is refused whole.
	EventOverlapDiff
	// EventGap: the receiver acknowledged bytes the reassembler never
	// held; the consumer was told a gap.
	EventGap
	// EventDepth: the direction reached Config.Depth; it is no longer
	// reassembled.
	EventDepth
	// EventOutsideWindow (drop): the segment starts at or beyond the
	// right edge of the receiver's advertised window, or further than
	// TCP's largest window from the stream.
	EventOutsideWindow
	// EventTooManySegments (drop): holding the segment would exceed
	// Config.MaxRanges out-of-order ranges.
	EventTooManySegments
	// EventBufferFull (drop): holding the segment would exceed
	// Config.MaxBuffered bytes in the direction.
	EventBufferFull
	// EventMemcap (drop): holding the segment needs memory the Pool does
	// not have.
	EventMemcap
	// EventSynChanged (drop): a SYN with an initial sequence number
	// other than the first SYN's, or after the direction started
	// without one.
	EventSynChanged
	// EventFinChanged (drop): a FIN at a sequence number other than an
	// earlier FIN's, or before bytes already seen.
	EventFinChanged
	// EventDataAfterFin (drop): bytes beyond the direction's FIN.
	EventDataAfterFin
	// EventRstInvalid (drop): an RST whose sequence number is not
	// exactly the next expected one (RFC 5961); the receiver would
	// ignore it, so the stream is not ended.
	EventRstInvalid
	// EventDataAfterClose (drop): data, SYN or FIN after the connection
	// was reset.
	EventDataAfterClose
	// EventAckUnseen: an ACK for bytes never seen; the ACK is ignored.
	EventAckUnseen
	// EventUrgent (drop): data with the URG flag. The receiving socket
	// takes the urgent byte out of the stream unless the application
	// asked otherwise, so what it reads is not what was inspected.
	EventUrgent

	numEvents = iota
)

var eventNames = [numEvents]string{
	"midstream_pickup",
	"overlap",
	"overlap_different_data",
	"gap",
	"depth_reached",
	"outside_window",
	"too_many_segments",
	"buffer_full",
	"memcap",
	"syn_changed",
	"fin_changed",
	"data_after_fin",
	"rst_invalid",
	"data_after_close",
	"ack_unseen_data",
	"urgent_data",
}

// String returns the event's counter name.
func (e Event) String() string {
	if int(e) < numEvents {
		return eventNames[e]
	}
	return fmt.Sprintf("Event(%d)", uint8(e))
}

// Events is a set of Event.
type Events uint32

// Has reports whether e is in the set.
func (s Events) Has(e Event) bool { return s&(1<<e) != 0 }

// String lists the set's event names, comma-separated.
func (s Events) String() string {
	var b strings.Builder
	for e := Event(0); int(e) < numEvents; e++ {
		if s.Has(e) {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(e.String())
		}
	}
	return b.String()
}

const dropEvents = Events(1<<EventOverlapDiff | 1<<EventOutsideWindow |
	1<<EventTooManySegments | 1<<EventBufferFull | 1<<EventMemcap |
	1<<EventSynChanged | 1<<EventFinChanged | 1<<EventDataAfterFin |
	1<<EventRstInvalid | 1<<EventDataAfterClose | 1<<EventUrgent)

// resourceEvents refuse a segment for want of room, not for its content.
const resourceEvents = Events(1<<EventTooManySegments | 1<<EventBufferFull | 1<<EventMemcap)

// Result is what one segment did.
type Result struct {
	Events Events // raised by this segment
	// Delivered counts the bytes this segment made the consumer see
	// (its own and buffered ones it made contiguous, gaps excluded).
	Delivered int
}

// Drop reports whether the segment must not reach the receiver: it was
// refused, and nothing of it was buffered or delivered. An inline engine
// drops it (fail closed; a genuine sender retransmits); an engine that
// lets it pass (fail open) accepts that the receiver may see bytes the
// consumer did not, which surface later as a gap when the receiver
// acknowledges them.
func (r Result) Drop() bool { return r.Events&dropEvents != 0 }

func (r *Result) add(e Event) { r.Events |= 1 << e }
