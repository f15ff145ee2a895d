package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Sink receives anchors, copies of record heads and checkpoints kept
// outside the database, as the log appends and signs them.
type Sink interface {
	// Anchor records a. The Log calls it with its append lock held, after
	// the commit, in Seq order: a head for every record, then the
	// checkpoint when one was signed. It must not block for long: a network
	// sink queues and returns. a.Sig is shared and must not be modified. An
	// error is logged by the Log; the record stays appended.
	Anchor(ctx context.Context, a Anchor) error
	// Close flushes what it can and releases the sink; Log.Close calls it.
	Close() error
}

// Limits of a RemoteSink.
const (
	// DefaultRemoteQueue is how many checkpoints a remote sink holds while
	// its receiver is slow or down; one more is dropped (and logged). At a
	// checkpoint every 100 records that is 25,600 records' worth.
	DefaultRemoteQueue = 256
	// remoteDrain is how long Close waits for queued checkpoints to go out.
	remoteDrain = 5 * time.Second
)

// RemoteSink delivers checkpoints (not record heads) to a receiver off the
// host, from a bounded queue served by one goroutine, so that a slow or
// dead receiver never holds up an Append: when the queue is full the
// checkpoint is dropped and the drop logged with its reason.
type RemoteSink struct {
	name    string
	log     *slog.Logger
	deliver func(ctx context.Context, a Anchor) error
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	drain   time.Duration
	dropped atomic.Uint64

	mu     sync.Mutex // guards q against a send after Close
	q      chan Anchor
	closed bool
}

func newRemoteSink(name string, queue int, log *slog.Logger, deliver func(context.Context, Anchor) error) *RemoteSink {
	if queue <= 0 {
		queue = DefaultRemoteQueue
	}
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &RemoteSink{name: name, log: log, deliver: deliver, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), drain: remoteDrain, q: make(chan Anchor, queue)}
	go s.run()
	return s
}

// Anchor queues a checkpoint and ignores record heads. It never blocks and
// never fails: a checkpoint that does not fit is dropped and logged.
func (s *RemoteSink) Anchor(_ context.Context, a Anchor) error {
	if a.Type != AnchorCheckpoint {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.drop(a, "sink closed")
		return nil
	}
	select {
	case s.q <- a:
	default:
		s.drop(a, fmt.Sprintf("queue full (%d checkpoints waiting)", cap(s.q)))
	}
	return nil
}

// Dropped counts the checkpoints this sink gave up on.
func (s *RemoteSink) Dropped() uint64 { return s.dropped.Load() }

func (s *RemoteSink) drop(a Anchor, reason string) {
	s.dropped.Add(1)
	s.log.Error("AUDIT ANCHOR DROPPED: a checkpoint did not reach its remote sink", "sink", s.name,
		"seq", a.Seq, "reason", reason)
}

func (s *RemoteSink) run() {
	defer close(s.done)
	for a := range s.q {
		if s.ctx.Err() != nil {
			s.drop(a, "sink closed before delivery")
			continue
		}
		if err := s.deliver(s.ctx, a); err != nil {
			s.drop(a, err.Error())
		}
	}
}

// Close stops taking checkpoints, waits a few seconds for the queued ones
// to go out, then abandons (and logs) the rest.
func (s *RemoteSink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.q)
	s.mu.Unlock()
	t := time.NewTimer(s.drain)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		s.cancel()
		<-s.done
	}
	s.cancel()
	return nil
}

// remoteAnchor is what a remote sink sends: the anchor's own fields, so
// that a receiver's store reads as an anchor file, plus which log and host
// it came from.
type remoteAnchor struct {
	Anchor
	Key  string `json:"key"` // the log's Ed25519 public key, hex
	Host string `json:"host,omitempty"`
}

func remoteJSON(a Anchor, pub ed25519.PublicKey, host string) []byte {
	b, _ := json.Marshal(remoteAnchor{Anchor: a, Key: hex.EncodeToString(pub), Host: host})
	return b // the fields cannot fail to encode
}
