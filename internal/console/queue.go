package console

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// Message is one WebSocket message to a client: guest output (binary) or a
// JSON control message (text).
type Message struct {
	Text bool
	Data []byte
}

// maxCtrl bounds queued control messages; status updates beyond it are
// dropped (a newer one follows).
const maxCtrl = 64

// outQueue is a session's bounded outbox. The guest's output is pushed
// without ever blocking; when the client does not keep up, output beyond
// max bytes is dropped and the client later sees a marker saying how much.
type outQueue struct {
	mu      sync.Mutex
	items   []Message
	bytes   int
	ctrl    int
	max     int
	dropped int64
	closed  bool
	notify  chan struct{}
}

func newOutQueue(max int) *outQueue {
	return &outQueue{max: max, notify: make(chan struct{}, 1)}
}

func (q *outQueue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// pushData queues output, coalescing with queued output, or counts it as
// dropped when the queue is full.
func (q *outQueue) pushData(p []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(p) == 0 {
		return
	}
	if q.bytes+len(p) > q.max {
		q.dropped += int64(len(p))
		return
	}
	if q.dropped > 0 { // the marker goes where the output went missing
		q.appendData(dropMarker(q.dropped))
		q.dropped = 0
	}
	q.appendData(p)
	q.wake()
}

func dropMarker(n int64) []byte {
	return []byte(fmt.Sprintf("\r\n[bulwark: %d bytes of output dropped: this client reads too slowly]\r\n", n))
}

func (q *outQueue) appendData(p []byte) {
	q.bytes += len(p)
	if n := len(q.items); n > 0 && !q.items[n-1].Text && len(q.items[n-1].Data) < 32<<10 {
		q.items[n-1].Data = append(q.items[n-1].Data, p...)
	} else {
		q.items = append(q.items, Message{Data: append([]byte(nil), p...)})
	}
}

// pushCtrl queues a control message; final ones are always queued and
// close the queue after them.
func (q *outQueue) pushCtrl(b []byte, final bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if q.ctrl < maxCtrl || final {
		q.items = append(q.items, Message{Text: true, Data: b})
		q.ctrl++
	}
	if final {
		q.closed = true
	}
	q.wake()
}

// next returns the next message, waiting for one; io.EOF once the queue
// is closed and drained.
func (q *outQueue) next(ctx context.Context) (Message, error) {
	for {
		q.mu.Lock()
		if len(q.items) == 0 && q.dropped > 0 {
			m := Message{Data: dropMarker(q.dropped)}
			q.dropped = 0
			q.mu.Unlock()
			return m, nil
		}
		if len(q.items) > 0 {
			m := q.items[0]
			q.items[0] = Message{}
			q.items = q.items[1:]
			if m.Text {
				q.ctrl--
			} else {
				q.bytes -= len(m.Data)
			}
			q.mu.Unlock()
			return m, nil
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return Message{}, io.EOF
		}
		select {
		case <-q.notify:
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}
