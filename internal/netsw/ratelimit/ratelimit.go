// Package ratelimit holds the token buckets that limit a switch port's
// bits and packets per second. It does no I/O and reads no clock: callers
// pass a monotonic clock reading in nanoseconds, so tests drive it with a
// fake clock and get exact answers.
//
// Arithmetic is in integers only. A bucket counts in units of 1e-9 token,
// so refilling by elapsed nanoseconds × tokens per second is exact: over
// any interval the tokens gained are exactly rate × time, with no rounding
// drift at low rates and no float error at high ones.
package ratelimit

import (
	"errors"
	"fmt"
	"math/bits"
	"time"
)

// unit is the number of bucket units in one token (a bit or a packet),
// and the number of nanoseconds in a second: a rate of R tokens/s gains R
// units per nanosecond.
const unit = 1_000_000_000

// Implementation limits. They keep every product below 2^63: capacity ≤
// MaxBurstTokens × unit < 2^62, a refill adds at most capacity, so tokens
// + refill < 2^63.
const (
	// MaxRate is the largest rate a bucket takes, in tokens per second:
	// 2^40 bits/s is 1.1 Tbit/s (vm.MaxBPS), far above what a userspace
	// switch port moves.
	MaxRate = 1 << 40
	// MaxBurstTokens caps a bucket's size: 2^32 bits is 512 MiB, so at
	// rates above 429 Gbit/s the burst is shorter than asked.
	MaxBurstTokens = 1 << 32
	// MaxBurst is the longest burst a configuration may ask for. Longer
	// bursts let a VM send at line rate for seconds, which defeats a limit.
	MaxBurst = time.Second
	// MaxCost is the most tokens one Allow may take (a 64 KiB datagram in
	// bits); the port's read buffer bounds what callers pass.
	MaxCost = 1 << 20
)

// Defaults.
const (
	// DefaultBurst is how long a full bucket lasts at its rate when Config
	// leaves Burst 0: 10 ms, enough for a TCP window's worth of frames at
	// the configured rate without letting a flood through.
	DefaultBurst = 10 * time.Millisecond
	// MinBurstBits is the smallest bits bucket: one maximum-size Ethernet
	// frame (1518 bytes) always fits, however low the rate, so a
	// well-formed frame can always pass eventually.
	MinBurstBits = 1518 * 8
	// MinBurstPackets is the smallest packets bucket.
	MinBurstPackets = 1
)

// Bucket is one token bucket. The zero value is unlimited: Allow always
// admits. A Bucket is a plain value with no pointers (no allocation per
// packet) and is not safe for concurrent use: its owner serialises calls.
type Bucket struct {
	rate     int64 // tokens per second = units gained per nanosecond; 0: unlimited
	capacity int64 // units
	tokens   int64 // 0 ≤ tokens ≤ capacity
	last     int64 // clock reading of the last refill
}

// NewBucket returns a full bucket of burst tokens refilled at rate tokens
// per second. rate 0 is unlimited; rate must be in 0..MaxRate and burst in
// 1..MaxBurstTokens.
func NewBucket(rate, burst int64) (Bucket, error) {
	if rate < 0 || rate > MaxRate {
		return Bucket{}, fmt.Errorf("rate %d out of range 0..%d", rate, int64(MaxRate))
	}
	if rate == 0 {
		return Bucket{}, nil
	}
	if burst < 1 || burst > MaxBurstTokens {
		return Bucket{}, fmt.Errorf("burst %d out of range 1..%d", burst, int64(MaxBurstTokens))
	}
	c := burst * unit
	return Bucket{rate: rate, capacity: c, tokens: c}, nil
}

// Unlimited reports whether the bucket admits everything.
func (b *Bucket) Unlimited() bool { return b.rate == 0 }

// Burst returns the bucket's size in tokens (0: unlimited).
func (b *Bucket) Burst() int64 { return b.capacity / unit }

// refill credits the time since the last refill. A reading at or before
// the last one credits nothing and does not move the bucket's clock back,
// so no interval is ever credited twice.
func (b *Bucket) refill(now int64) {
	if b.rate == 0 || now <= b.last {
		return
	}
	// Unsigned, the difference cannot wrap even across the whole range.
	elapsed := uint64(now) - uint64(b.last)
	b.last = now
	// Past capacity/rate nanoseconds the bucket is full whatever it held;
	// checking first keeps elapsed × rate ≤ capacity, so a long idle time
	// cannot overflow.
	if elapsed > uint64(b.capacity/b.rate) {
		b.tokens = b.capacity
		return
	}
	b.tokens = min(b.tokens+int64(elapsed)*b.rate, b.capacity)
}

// has reports whether n tokens are available (after refill).
func (b *Bucket) has(n int64) bool { return b.rate == 0 || b.tokens >= n*unit }

// take removes n tokens; has(n) must be true.
func (b *Bucket) take(n int64) {
	if b.rate != 0 {
		b.tokens -= n * unit
	}
}

// Allow reports whether n tokens (0..MaxCost) are available at now, a
// monotonic clock reading in nanoseconds, and takes them if so. A refused
// request takes nothing.
func (b *Bucket) Allow(now, n int64) bool {
	if b.rate == 0 {
		return true
	}
	n = min(max(n, 0), MaxCost)
	b.refill(now)
	if !b.has(n) {
		return false
	}
	b.take(n)
	return true
}

// Config is one direction's limits. Zero rates are unlimited.
type Config struct {
	BitsPerSec    int64
	PacketsPerSec int64
	// Burst is how long a full bucket lasts at its rate (0: DefaultBurst),
	// at least one maximum-size frame or one packet, at most MaxBurst.
	Burst time.Duration
}

// ErrBurst says a configured burst is out of range.
var ErrBurst = errors.New("burst out of range")

// Validate checks the ranges.
func (c Config) Validate() error {
	if c.BitsPerSec < 0 || c.BitsPerSec > MaxRate {
		return fmt.Errorf("bits per second %d out of range 0..%d", c.BitsPerSec, int64(MaxRate))
	}
	if c.PacketsPerSec < 0 || c.PacketsPerSec > MaxRate {
		return fmt.Errorf("packets per second %d out of range 0..%d", c.PacketsPerSec, int64(MaxRate))
	}
	if c.Burst < 0 || c.Burst > MaxBurst {
		return fmt.Errorf("%w: %v not in 0 (default %v)..%v", ErrBurst, c.Burst, DefaultBurst, MaxBurst)
	}
	return nil
}

// Unlimited reports whether the configuration limits nothing.
func (c Config) Unlimited() bool { return c.BitsPerSec == 0 && c.PacketsPerSec == 0 }

// burstTokens is rate × burst, floored at floor and capped at
// MaxBurstTokens, computed without overflow (rate ≤ 2^40, burst ≤ 1e9 ns).
func burstTokens(rate int64, burst time.Duration, floor int64) int64 {
	hi, lo := bits.Mul64(uint64(rate), uint64(burst))
	q, _ := bits.Div64(hi, lo, unit) // hi < unit: rate × burst < 2^70 ≪ unit × 2^64
	return max(int64(min(q, MaxBurstTokens)), floor)
}

// Limiter applies a bits bucket and a packets bucket to frames: a frame
// passes only when both have room, and a refused frame takes from neither.
// Like Bucket, it is a plain value, not safe for concurrent use.
type Limiter struct {
	bits, packets Bucket
}

// New returns a full limiter for c.
func New(c Config) (Limiter, error) {
	if err := c.Validate(); err != nil {
		return Limiter{}, err
	}
	burst := c.Burst
	if burst == 0 {
		burst = DefaultBurst
	}
	var l Limiter
	var err error
	if c.BitsPerSec > 0 {
		if l.bits, err = NewBucket(c.BitsPerSec, burstTokens(c.BitsPerSec, burst, MinBurstBits)); err != nil {
			return Limiter{}, err
		}
	}
	if c.PacketsPerSec > 0 {
		if l.packets, err = NewBucket(c.PacketsPerSec, burstTokens(c.PacketsPerSec, burst, MinBurstPackets)); err != nil {
			return Limiter{}, err
		}
	}
	return l, nil
}

// Bursts returns the buckets' sizes in bits and packets (0: unlimited).
func (l *Limiter) Bursts() (bits, packets int64) { return l.bits.Burst(), l.packets.Burst() }

// Allow reports whether a frame of frameBytes bytes may pass at now (a
// monotonic clock reading in nanoseconds) and takes its bits and one
// packet if so. Bits are counted on the Ethernet frame as the port carries
// it: header and payload, no preamble, FCS or inter-frame gap.
func (l *Limiter) Allow(now int64, frameBytes int) bool {
	n := min(max(int64(frameBytes), 0)*8, MaxCost)
	l.bits.refill(now)
	l.packets.refill(now)
	if !l.bits.has(n) || !l.packets.has(1) {
		return false
	}
	l.bits.take(n)
	l.packets.take(1)
	return true
}
