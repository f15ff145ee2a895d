package engine

import (
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/vmi/guest"
)

// A module in flux (going or unformed) is skipped for a moment and
// verified once it has stayed so for fluxGrace; live, coming and unknown
// states are verified at once; the record is per module struct.
func TestModuleFlux(t *testing.T) {
	ms := &moduleState{}
	t0 := time.Unix(1000, 0)
	going := guest.Module{Name: "m", Module: 0xffffffffc0001000, State: moduleGoing}
	seen := map[uint64]bool{}
	for _, st := range []uint32{moduleLive, moduleComing, 7} {
		if !ms.verifyNow(guest.Module{State: st}, t0, seen) {
			t.Errorf("state %d not verified at once", st)
		}
	}
	if ms.verifyNow(going, t0, seen) || ms.verifyNow(going, t0.Add(fluxGrace-time.Second), seen) {
		t.Fatal("a module just seen going was verified")
	}
	if !ms.verifyNow(going, t0.Add(fluxGrace), seen) {
		t.Fatal("a module going for fluxGrace was not verified")
	}
	other := going
	other.Module += 0x1000
	other.State = moduleUnformed
	if ms.verifyNow(other, t0.Add(fluxGrace), seen) {
		t.Fatal("another module inherited the first one's record")
	}
	if !seen[going.Module] || !seen[other.Module] || len(seen) != 2 {
		t.Fatalf("seen: %v", seen)
	}
}
