package portsec

// Storm is a token bucket limiting broadcast and multicast frames of one
// port: a VM may send a burst of up to burst such frames, refilled at pps
// per second. One looping or hostile guest would otherwise make the switch
// copy every frame it floods to every port of the network.
//
// Storm is not safe for concurrent use; one per port, used by the port's
// reader goroutine.
type Storm struct {
	// Tokens are kept in nanotokens (1e9 per frame) so that refilling by
	// elapsed nanoseconds × pps is exact integer arithmetic: no floats, no
	// rounding drift at low rates.
	rate     int64 // pps: nanotokens gained per elapsed nanosecond
	capacity int64 // burst × 1e9
	tokens   int64 // 0 ≤ tokens ≤ capacity
	last     int64 // clock reading of the last refill
}

const (
	nanotokens = 1e9 // per frame, and nanoseconds per second

	// maxBurst keeps capacity, and tokens + one refill, far inside int64.
	maxBurst = 1 << 20
)

// NewStorm returns a bucket allowing pps frames per second with bursts of
// burst, starting full. pps <= 0 means unlimited (Allow always true); burst
// is clamped to [1, 1<<20].
func NewStorm(pps, burst int) *Storm {
	if pps <= 0 {
		return &Storm{}
	}
	burst = min(max(burst, 1), maxBurst)
	c := int64(burst) * nanotokens
	return &Storm{rate: int64(pps), capacity: c, tokens: c}
}

// Allow reports whether one more frame may pass at nowNanos, a monotonic
// clock reading in nanoseconds (time.Since of a fixed start), and takes a
// token if so. A reading earlier than the last one refills nothing and
// restarts the refill from there.
func (s *Storm) Allow(nowNanos int64) bool {
	if s.rate == 0 {
		return true
	}
	if nowNanos > s.last {
		// Unsigned, the difference cannot wrap even across the whole range.
		elapsed := uint64(nowNanos) - uint64(s.last)
		// Past capacity/rate nanoseconds the bucket is full; checking first
		// keeps elapsed × rate ≤ capacity, so huge gaps cannot overflow.
		if elapsed > uint64(s.capacity/s.rate) {
			s.tokens = s.capacity
		} else {
			s.tokens = min(s.tokens+int64(elapsed)*s.rate, s.capacity)
		}
	}
	s.last = nowNanos
	if s.tokens < nanotokens {
		return false
	}
	s.tokens -= nanotokens
	return true
}
