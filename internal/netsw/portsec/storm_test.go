package portsec

import (
	"math"
	"math/rand/v2"
	"testing"
)

const (
	ms  = int64(1e6)
	sec = int64(1e9)
)

// drain calls Allow at now until it refuses, and returns how many passed.
func drain(s *Storm, now int64) int {
	n := 0
	for s.Allow(now) {
		n++
		if n > 1<<21 {
			panic("bucket never empties")
		}
	}
	return n
}

func TestStormBurstThenRate(t *testing.T) {
	s := NewStorm(10, 5) // one token per 100 ms
	if n := drain(s, 0); n != 5 {
		t.Fatalf("burst: %d passed, want 5", n)
	}
	if s.Allow(99 * ms) {
		t.Error("passed before a token was due")
	}
	if !s.Allow(100*ms) || s.Allow(100*ms) {
		t.Error("want exactly one token at 100 ms")
	}
	if s.Allow(150*ms) || !s.Allow(200*ms) {
		t.Error("want the next token at 200 ms, not before")
	}
}

func TestStormSustainedRate(t *testing.T) {
	s := NewStorm(1000, 50)
	passed := 0
	for now := int64(0); now <= 10*sec; now += 100_000 { // offered: 10 000 pps
		if s.Allow(now) {
			passed++
		}
	}
	if want := 50 + 10*1000; passed != want {
		t.Errorf("%d passed in 10 s, want %d (burst + 10 s at 1000 pps)", passed, want)
	}
}

func TestStormRefillCapped(t *testing.T) {
	s := NewStorm(100, 20)
	drain(s, 0)
	if n := drain(s, 3600*sec); n != 20 {
		t.Errorf("after an hour idle %d passed, want the burst of 20", n)
	}
	if n := drain(s, 3600*sec+50*ms); n != 5 {
		t.Errorf("50 ms later %d passed, want 5", n)
	}
}

func TestStormNoOverflow(t *testing.T) {
	for _, c := range []struct{ pps, burst int }{
		{1, 1}, {1000, 100}, {math.MaxInt, math.MaxInt}, {math.MaxInt, 1}, {1, math.MaxInt},
	} {
		s := NewStorm(c.pps, c.burst)
		want := min(c.burst, maxBurst)
		if n := drain(s, math.MinInt64); n != want {
			t.Errorf("%+v: start: %d passed, want %d", c, n, want)
		}
		if n := drain(s, math.MaxInt64); n != want {
			t.Errorf("%+v: after the largest gap: %d passed, want %d", c, n, want)
		}
		if s.tokens < 0 || s.tokens > s.capacity {
			t.Errorf("%+v: tokens %d outside [0, %d]", c, s.tokens, s.capacity)
		}
	}
}

func TestStormClockBackwards(t *testing.T) {
	s := NewStorm(10, 1)
	drain(s, 10*sec)
	if s.Allow(5 * sec) {
		t.Error("a clock going back refilled the bucket")
	}
	// Refill restarts from the earlier reading: 100 ms after it, one token.
	if s.Allow(5*sec+99*ms) || !s.Allow(5*sec+100*ms) {
		t.Error("want one token 100 ms after the earlier reading")
	}
}

func TestStormUnlimited(t *testing.T) {
	for _, pps := range []int{0, -1, math.MinInt} {
		s := NewStorm(pps, 1)
		for i := range 10000 {
			if !s.Allow(0) {
				t.Fatalf("pps %d: refused frame %d", pps, i)
			}
		}
	}
}

func TestStormMinimumBurst(t *testing.T) {
	for _, burst := range []int{0, -5} {
		if n := drain(NewStorm(10, burst), 0); n != 1 {
			t.Errorf("burst %d: %d passed, want 1", burst, n)
		}
	}
}

// TestStormNeverExceedsBudget checks the bucket's promise under random
// arrivals: by time T no more than burst + pps·T/1s frames pass.
func TestStormNeverExceedsBudget(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		pps, burst := 1+rng.IntN(5000), 1+rng.IntN(100)
		s := NewStorm(pps, burst)
		passed, now := 0, int64(0)
		for range 20000 {
			now += rng.Int64N(2 * sec / int64(pps))
			if s.Allow(now) {
				passed++
			}
			if budget := int64(burst) + int64(pps)*now/sec; int64(passed) > budget {
				t.Fatalf("pps %d burst %d: %d passed by %d ns, budget %d", pps, burst, passed, now, budget)
			}
		}
	}
}

func TestStormNoAllocs(t *testing.T) {
	s := NewStorm(1000, 10)
	now := int64(0)
	if n := testing.AllocsPerRun(1000, func() { now += ms; s.Allow(now) }); n != 0 {
		t.Errorf("Allow allocates %v times", n)
	}
}

func BenchmarkStormAllow(b *testing.B) {
	s := NewStorm(1_000_000, 1000)
	now := int64(0)
	for b.Loop() {
		now += 500
		s.Allow(now)
	}
}
