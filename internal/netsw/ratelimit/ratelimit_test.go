package ratelimit

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

const second = int64(time.Second)

// drive offers frames to l from a fake clock for dur nanoseconds, a frame
// every gap(rng) nanoseconds of size(rng) bytes, and returns the frames and
// bits admitted.
func drive(t *testing.T, l *Limiter, dur int64, gap func(*rand.Rand) int64, size func(*rand.Rand) int) (frames, bits int64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for now := int64(1); now <= dur; now += gap(rng) {
		n := size(rng)
		if l.Allow(now, n) {
			frames++
			bits += int64(n) * 8
		}
	}
	return frames, bits
}

func mustNew(t *testing.T, c Config) *Limiter {
	t.Helper()
	l, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return &l
}

// Under a demand that always exceeds the limit, what passes over T
// simulated seconds is rate × T plus at most one burst, and at least
// rate × T minus one frame: the bucket neither leaks nor drifts. (The
// offers are dense, a gap far below the time one frame's tokens take to
// accrue, so that a bucket never sits full waiting for a frame: such idle
// time is lost to the sender by design, not by error.)
func TestConformance(t *testing.T) {
	const secs = 20
	fixed := func(n int) func(*rand.Rand) int { return func(*rand.Rand) int { return n } }
	mixed := func(r *rand.Rand) int { return 64 + r.IntN(1518-64+1) }
	cases := []struct {
		name     string
		cfg      Config
		gap      func(*rand.Rand) int64
		size     func(*rand.Rand) int
		bits     bool // the bits bucket binds (else packets)
		maxFrame int64
	}{
		{"10 Mbit/s, mixed sizes, random gaps", Config{BitsPerSec: 10_000_000},
			func(r *rand.Rand) int64 { return 1 + r.Int64N(200_000) }, mixed, true, 1518 * 8},
		{"1 Gbit/s, full frames", Config{BitsPerSec: 1_000_000_000},
			func(r *rand.Rand) int64 { return 1 + r.Int64N(5_000) }, fixed(1518), true, 1518 * 8},
		{"1000 pps, random gaps", Config{PacketsPerSec: 1000},
			func(r *rand.Rand) int64 { return 1 + r.Int64N(400_000) }, mixed, false, 1},
		{"3 pps (1/3 s is no whole number of ns)", Config{PacketsPerSec: 3},
			func(r *rand.Rand) int64 { return 1 + r.Int64N(1_000_000) }, mixed, false, 1},
		{"both: small frames hit 1000 pps before 1 Mbit/s", Config{BitsPerSec: 1_000_000, PacketsPerSec: 1000},
			func(r *rand.Rand) int64 { return 1 + r.Int64N(100_000) }, fixed(64), false, 1},
		{"both: full frames hit 1 Mbit/s before 1000 pps", Config{BitsPerSec: 1_000_000, PacketsPerSec: 1000},
			func(r *rand.Rand) int64 { return 1 + r.Int64N(2_000) }, fixed(1518), true, 1518 * 8},
		{"both, 50 ms burst: 1000-byte frames hit 5 Mbit/s", Config{BitsPerSec: 5_000_000, PacketsPerSec: 2000, Burst: 50 * time.Millisecond},
			func(r *rand.Rand) int64 { return 1 + r.Int64N(20_000) }, fixed(1000), true, 8000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := mustNew(t, tc.cfg)
			burstBits, burstPkts := l.Bursts()
			frames, bits := drive(t, l, secs*second, tc.gap, tc.size)
			got, rate, burst := frames, tc.cfg.PacketsPerSec, burstPkts
			if tc.bits {
				got, rate, burst = bits, tc.cfg.BitsPerSec, burstBits
			}
			want := rate * secs
			if got > want+burst || got < want-tc.maxFrame {
				t.Errorf("admitted %d in %d s, want %d..%d (rate × time, + burst %d, - one frame)",
					got, secs, want-tc.maxFrame, want+burst, burst)
			}
			// The other limit is never exceeded either.
			if tc.cfg.BitsPerSec > 0 && bits > tc.cfg.BitsPerSec*secs+burstBits {
				t.Errorf("%d bits passed, over the bits limit", bits)
			}
			if tc.cfg.PacketsPerSec > 0 && frames > tc.cfg.PacketsPerSec*secs+burstPkts {
				t.Errorf("%d frames passed, over the packets limit", frames)
			}
		})
	}
}

// An idle bucket admits exactly its burst at once, then exactly one token's
// worth per 1/rate.
func TestBucketExact(t *testing.T) {
	b, err := NewBucket(1000, 10) // 1000/s: one token per ms
	if err != nil {
		t.Fatal(err)
	}
	now := 5 * second
	for i := range 10 {
		if !b.Allow(now, 1) {
			t.Fatalf("burst: token %d refused", i)
		}
	}
	if b.Allow(now, 1) {
		t.Fatal("11th token at the same instant admitted")
	}
	if b.Allow(now+999_999, 1) {
		t.Fatal("token admitted 1 ns before it is due")
	}
	if !b.Allow(now+1_000_000, 1) {
		t.Fatal("token refused when due")
	}
	// A request larger than what is there takes nothing.
	if b.Allow(now+6_000_000, 6) {
		t.Fatal("6 tokens admitted with 5 available")
	}
	if !b.Allow(now+6_000_000, 5) {
		t.Fatal("5 tokens refused with 5 available")
	}
	// A clock reading from the past credits nothing, and the interval
	// already credited is not credited again.
	if b.Allow(now, 1) || b.Allow(now+6_000_000, 1) {
		t.Fatal("admitted on a repeated or earlier clock reading")
	}
}

// Extreme rates, bursts and idle gaps neither overflow nor stall.
func TestBucketExtremes(t *testing.T) {
	b, err := NewBucket(MaxRate, MaxBurstTokens)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Allow(1, MaxCost) || !b.Allow(math.MaxInt64, MaxCost) {
		t.Fatal("fastest bucket refused")
	}
	if b.tokens < 0 || b.tokens > b.capacity {
		t.Fatalf("tokens %d outside 0..%d", b.tokens, b.capacity)
	}
	// Drain it at one instant; then one nanosecond refills 2^40 units.
	for b.Allow(math.MaxInt64, MaxCost) {
	}
	slow, _ := NewBucket(1, 1)
	if !slow.Allow(1, 1) || slow.Allow(second, 1) || !slow.Allow(second+1, 1) {
		t.Fatal("1 token/s bucket wrong")
	}
	if !slow.Allow(math.MaxInt64, 1) {
		t.Fatal("refused after 292 years idle")
	}
	// Costs are bounded: a negative or huge request is clamped.
	c, _ := NewBucket(1, 1)
	if !c.Allow(1, -5) || c.tokens != c.capacity {
		t.Fatal("a negative cost changed the bucket")
	}
	var unlimited Bucket
	if !unlimited.Allow(0, MaxCost) || !unlimited.Unlimited() {
		t.Fatal("zero bucket is not unlimited")
	}
}

func TestConfigRanges(t *testing.T) {
	bad := []Config{
		{BitsPerSec: -1}, {PacketsPerSec: -1}, {BitsPerSec: MaxRate + 1}, {PacketsPerSec: MaxRate + 1},
		{BitsPerSec: 1, Burst: -1}, {BitsPerSec: 1, Burst: MaxBurst + 1},
	}
	for _, c := range bad {
		if _, err := New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	for _, bad := range [][2]int64{{-1, 1}, {MaxRate + 1, 1}, {1, 0}, {1, MaxBurstTokens + 1}} {
		if _, err := NewBucket(bad[0], bad[1]); err == nil {
			t.Errorf("NewBucket(%d, %d) accepted", bad[0], bad[1])
		}
	}
	cases := []struct {
		c          Config
		bits, pkts int64
	}{
		{Config{}, 0, 0},
		{Config{BitsPerSec: 1_000_000_000}, 10_000_000, 0},                                   // 10 ms of 1 Gbit/s
		{Config{BitsPerSec: 1000}, MinBurstBits, 0},                                          // one full frame at least
		{Config{BitsPerSec: MaxRate}, MaxBurstTokens, 0},                                     // capped
		{Config{PacketsPerSec: 50_000, Burst: time.Millisecond}, 0, 50},                      // configured
		{Config{PacketsPerSec: 10}, 0, MinBurstPackets},                                      // 0.1 packet → 1
		{Config{BitsPerSec: 3_000_000, PacketsPerSec: 300, Burst: MaxBurst}, 3_000_000, 300}, // 1 s
	}
	for _, tc := range cases {
		l := mustNew(t, tc.c)
		if b, p := l.Bursts(); b != tc.bits || p != tc.pkts {
			t.Errorf("%+v: bursts %d bits, %d packets; want %d, %d", tc.c, b, p, tc.bits, tc.pkts)
		}
	}
}

func TestAllowNoAllocs(t *testing.T) {
	l := mustNew(t, Config{BitsPerSec: 1e9, PacketsPerSec: 1e6})
	now := int64(0)
	if a := testing.AllocsPerRun(1000, func() { now += 100; l.Allow(now, 1500) }); a != 0 {
		t.Fatalf("%v allocations per frame", a)
	}
}

// FuzzBucket drives a bucket with arbitrary rates, bursts, clock steps and
// costs: tokens stay within 0..capacity and what is admitted never exceeds
// burst + rate × elapsed.
func FuzzBucket(f *testing.F) {
	f.Add(int64(1000), int64(10), []byte{1, 2, 3, 255, 0, 7})
	f.Add(int64(MaxRate), int64(MaxBurstTokens), []byte{255, 255, 255, 0})
	f.Add(int64(1), int64(1), []byte{0, 0, 200})
	f.Fuzz(func(t *testing.T, rate, burst int64, ops []byte) {
		b, err := NewBucket(rate, burst)
		if err != nil {
			return
		}
		if len(ops) > 4096 {
			ops = ops[:4096]
		}
		var now, start int64 = 1, 1
		var admitted uint64
		for i := 0; i+1 < len(ops); i += 2 {
			// Clock steps up to ~2^(ops/4) ns, sometimes backwards.
			step := int64(1) << (ops[i] >> 2)
			if ops[i]&3 == 3 {
				step = -step
			}
			if now+step > 0 {
				now += step
			}
			n := int64(ops[i+1]) << (ops[i+1] & 7)
			if b.Allow(now, n) {
				admitted += uint64(min(n, MaxCost))
			}
			if b.rate != 0 && (b.tokens < 0 || b.tokens > b.capacity) {
				t.Fatalf("tokens %d outside 0..%d", b.tokens, b.capacity)
			}
		}
		if b.rate == 0 {
			return
		}
		// Bound: burst + rate × (latest clock − start), in 128-bit-safe
		// float (an upper bound check only).
		limit := float64(b.capacity/unit) + float64(b.rate)*float64(b.last-start)/1e9
		if float64(admitted) > limit+1 {
			t.Fatalf("admitted %d tokens, bound %.0f", admitted, limit)
		}
	})
}
