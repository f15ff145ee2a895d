package mirror

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// QueueFrames bounds the copies a session holds between the data path and
// its writer; with frames of at most packet.MaxFrame bytes that is about
// 6 MiB per session at most, allocated as traffic needs it and reused.
const QueueFrames = 4096

// dropLogInterval is the least time between two log lines of one session
// about dropped copies.
const dropLogInterval = time.Second

// record is one copied frame. Records come from the session's pool and go
// back to it once the writer is done with them.
type record struct {
	data [packet.MaxFrame]byte
	n    int   // bytes copied (the frame cut to the snap length)
	orig int   // the frame's length
	ts   int64 // wall clock, Unix nanoseconds
	port int32 // the source port's ID (ERSPAN's index)
}

func (r *record) frame() []byte { return r.data[:r.n] }

// target is where a session's copies go. Its methods are called by the
// session's writer goroutine only, except files (any goroutine).
type target interface {
	// write sends or stores r's frame; r is not kept.
	write(r *record) error
	// tick runs once a second: flush buffers, retry what failed.
	tick() error
	close() error
	// files lists the pcap files, oldest first (nil for other kinds).
	files() []string
}

// errRate is a copy refused by the target's packet rate bound.
var errRate = errors.New("over the session's packet rate")

// dropCause counts copies lost for one reason.
type dropCause int

const (
	dropQueueFull dropCause = iota // the writer fell behind
	dropRate                       // over target.max_pps
	dropTarget                     // the target failed (file, socket or port)
	numDropCauses
)

var dropCauseNames = [numDropCauses]string{"queue_full", "rate", "target_error"}

// runner is a running session: its matcher, queue and writer.
type runner struct {
	cfg   Session
	match *matcher
	snap  int
	log   *slog.Logger
	tgt   target

	queue     chan *record // to the writer; never closed
	free      chan *record // back from the writer
	allocated atomic.Int32 // records in existence, at most QueueFrames

	// The wall clock is the switch's monotonic clock (FrameContext.Now)
	// plus wallOffset, read from time.Now again at most every
	// clockRecheck: reading the wall clock per frame cost 150 ns on a VM.
	// Two readers may update both at once; a copy's timestamp is then
	// off by the time between their readings.
	wallOffset, wallAt atomic.Int64

	frames, bytes atomic.Uint64
	drops         [numDropCauses]atomic.Uint64

	stop     chan struct{}
	done     chan struct{}
	closeErr error // the target's close, set before done is closed

	mu      sync.Mutex // guards lastErr
	lastErr string
}

func newRunner(cfg Session, tgt target, log *slog.Logger) *runner {
	return &runner{cfg: cfg, match: newMatcher(&cfg), snap: cfg.SnapLen, log: log.With("session", cfg.Name), tgt: tgt,
		queue: make(chan *record, QueueFrames), free: make(chan *record, QueueFrames),
		stop: make(chan struct{}), done: make(chan struct{})}
}

// observe copies c's frame if the session wants it. It runs on the data
// path: no I/O, no blocking, no allocation once the pool is warm.
func (r *runner) observe(c *netsw.FrameContext) {
	src, ok := r.match.match(c)
	if !ok {
		return
	}
	rec := r.get()
	if rec == nil {
		r.drops[dropQueueFull].Add(1)
		return
	}
	rec.n = copy(rec.data[:min(r.snap, len(rec.data))], c.Raw)
	rec.orig = len(c.Raw)
	rec.ts = r.wallClock(c.Now)
	rec.port = src.ID
	select {
	case r.queue <- rec:
	default: // cannot happen: the queue holds every record there is
		r.drops[dropQueueFull].Add(1)
	}
}

// clockRecheck is how often the offset of the wall clock to the switch's
// is measured again (wall clock steps show up within it).
const clockRecheck = int64(time.Second)

// wallClock converts a switch clock reading to Unix nanoseconds.
func (r *runner) wallClock(mono int64) int64 {
	if at := r.wallAt.Load(); at != 0 && mono-at < clockRecheck && mono >= at {
		return mono + r.wallOffset.Load()
	}
	off := time.Now().UnixNano() - mono
	r.wallOffset.Store(off)
	r.wallAt.Store(max(mono, 1))
	return mono + off
}

// get takes a record from the pool, or makes one while fewer than
// QueueFrames exist; nil when all are queued.
func (r *runner) get() *record {
	select {
	case rec := <-r.free:
		return rec
	default:
	}
	if r.allocated.Add(1) > QueueFrames {
		r.allocated.Add(-1)
		return nil
	}
	return new(record)
}

// run is the session's writer.
func (r *runner) run() {
	defer close(r.done)
	t := time.NewTicker(dropLogInterval)
	defer t.Stop()
	var logged [numDropCauses]uint64
	for {
		select {
		case rec := <-r.queue:
			r.write(rec)
		case <-t.C:
			if err := r.tgt.tick(); err != nil {
				r.fail(err)
			}
			r.logDrops(&logged)
		case <-r.stop:
			// Drain what was queued before the session was removed; copies
			// a data path still holding the old list queues later are
			// dropped with the queue.
			for {
				select {
				case rec := <-r.queue:
					r.write(rec)
					continue
				default:
				}
				break
			}
			if r.closeErr = r.tgt.close(); r.closeErr != nil {
				r.fail(r.closeErr)
			}
			r.logDrops(&logged)
			return
		}
	}
}

func (r *runner) write(rec *record) {
	err := r.tgt.write(rec)
	switch {
	case err == nil:
		r.frames.Add(1)
		r.bytes.Add(uint64(rec.n))
	case errors.Is(err, errRate):
		r.drops[dropRate].Add(1)
	default:
		r.drops[dropTarget].Add(1)
		r.fail(err)
	}
	r.free <- rec // never blocks: free holds every record there is
}

// fail records err as the session's last error; the log line comes with
// the next drop report (at most one a second).
func (r *runner) fail(err error) {
	r.mu.Lock()
	r.lastErr = err.Error()
	r.mu.Unlock()
}

// logDrops logs the copies dropped since the last report, per cause.
func (r *runner) logDrops(logged *[numDropCauses]uint64) {
	for i := range r.drops {
		n := r.drops[i].Load()
		if n == logged[i] {
			continue
		}
		args := []any{"reason", dropCauseNames[i], "network", r.cfg.Network, "target", r.cfg.Target.Kind, "frames", n - logged[i], "total", n}
		if i == int(dropTarget) {
			args = append(args, "err", r.lastError())
		}
		r.log.Warn("mirror: copies dropped", args...)
		logged[i] = n
	}
}

func (r *runner) lastError() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

func (r *runner) dropped() uint64 {
	var n uint64
	for i := range r.drops {
		n += r.drops[i].Load()
	}
	return n
}

// shutdown stops the writer after it wrote what was queued, and closes the
// target; it returns the close's error.
func (r *runner) shutdown() error {
	close(r.stop)
	<-r.done
	return r.closeErr
}
