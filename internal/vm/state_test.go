package vm

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var allStates = []State{Defined, Starting, Running, Paused, Stopping, Stopped, Crashed}

var allOps = []Op{OpStart, OpStop, OpPause, OpResume, OpDelete}

// legal is the lifecycle written out from the design, independently of the
// transitions table: every pair not listed here must be refused.
var legal = map[[2]State]bool{
	{Defined, Starting}: true,

	{Starting, Running}: true,
	{Starting, Crashed}: true,
	{Starting, Stopped}: true,

	{Running, Paused}:   true,
	{Running, Stopping}: true,
	{Running, Stopped}:  true,
	{Running, Crashed}:  true,

	{Paused, Running}:  true,
	{Paused, Stopping}: true,
	{Paused, Stopped}:  true,
	{Paused, Crashed}:  true,

	{Stopping, Stopped}: true,
	{Stopping, Crashed}: true,

	{Stopped, Starting}: true,
	{Crashed, Starting}: true,
}

func TestCanTransitionExhaustive(t *testing.T) {
	// Include an unknown state on both sides: it is never legal.
	states := append(append([]State(nil), allStates...), State("bogus"), State(""))
	for _, from := range states {
		for _, to := range states {
			err := CanTransition(from, to)
			want := legal[[2]State{from, to}]
			if (err == nil) != want {
				t.Errorf("CanTransition(%q, %q) = %v, want legal=%v", from, to, err, want)
			}
			if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%s -> %s", from, to)) {
				t.Errorf("CanTransition(%q, %q) error %q does not name the change", from, to, err)
			}
		}
	}
}

// Nothing returns to defined, and nothing moves to a state without passing
// through the state machine's own entry points.
func TestNoTransitionToDefined(t *testing.T) {
	for _, from := range allStates {
		if CanTransition(from, Defined) == nil {
			t.Errorf("%s -> defined is allowed", from)
		}
		if CanTransition(from, from) == nil {
			t.Errorf("self transition %s -> %s is allowed", from, from)
		}
	}
}

// allowedOps is written from the intent: start from any state with no
// hypervisor process, stop while one runs (again while stopping, to force),
// pause only a running guest, resume only a paused one, delete only when
// nothing runs.
var allowedOps = map[Op]map[State]bool{
	OpStart:  {Defined: true, Stopped: true, Crashed: true},
	OpStop:   {Running: true, Paused: true, Stopping: true},
	OpPause:  {Running: true},
	OpResume: {Paused: true},
	OpDelete: {Defined: true, Stopped: true, Crashed: true},
}

func TestCheckOpExhaustive(t *testing.T) {
	states := append(append([]State(nil), allStates...), State("bogus"))
	for _, op := range append(append([]Op(nil), allOps...), Op("migrate")) {
		for _, s := range states {
			err := CheckOp(s, op)
			want := allowedOps[op][s]
			if (err == nil) != want {
				t.Errorf("CheckOp(%s, %s) = %v, want allowed=%v", s, op, err, want)
				continue
			}
			if err == nil {
				continue
			}
			var ce *ConflictError
			if !errors.As(err, &ce) || ce.Op != op || ce.State != s {
				t.Errorf("CheckOp(%s, %s) = %#v, want *ConflictError{%s, %s}", s, op, err, op, s)
			}
			if want := fmt.Sprintf("cannot %s a VM that is %s", op, s); err.Error() != want {
				t.Errorf("CheckOp(%s, %s).Error() = %q, want %q", s, op, err, want)
			}
		}
	}
}

// Every accepted operation leads somewhere the state machine allows: the
// first state the manager writes for it must be a legal transition.
func TestOpsAgreeWithTransitions(t *testing.T) {
	firstState := map[Op]State{OpStart: Starting, OpPause: Paused, OpResume: Running}
	for op, to := range firstState {
		for _, s := range allStates {
			if CheckOp(s, op) == nil && CanTransition(s, to) != nil {
				t.Errorf("%s is allowed in %s but %s -> %s is not", op, s, s, to)
			}
		}
	}
	// Stop writes stopping first, except when already stopping.
	for _, s := range allStates {
		if CheckOp(s, OpStop) == nil && s != Stopping && CanTransition(s, Stopping) != nil {
			t.Errorf("stop is allowed in %s but %s -> stopping is not", s, s)
		}
	}
	// Delete and Start are refused exactly while a process is expected.
	for _, s := range allStates {
		if (CheckOp(s, OpDelete) == nil) == s.Active() {
			t.Errorf("delete allowed=%v in %s, Active=%v", CheckOp(s, OpDelete) == nil, s, s.Active())
		}
		if (CheckOp(s, OpStart) == nil) == s.Active() {
			t.Errorf("start allowed=%v in %s, Active=%v", CheckOp(s, OpStart) == nil, s, s.Active())
		}
	}
}

func TestStateActiveAndValid(t *testing.T) {
	tests := []struct {
		s      State
		active bool
		valid  bool
	}{
		{Defined, false, true},
		{Starting, true, true},
		{Running, true, true},
		{Paused, true, true},
		{Stopping, true, true},
		{Stopped, false, true},
		{Crashed, false, true},
		{"", false, false},
		{"bogus", false, false},
		{"Running", false, false},
	}
	if len(tests)-3 != len(allStates) {
		t.Fatal("table does not cover every state")
	}
	for _, tc := range tests {
		if got := tc.s.Active(); got != tc.active {
			t.Errorf("%q.Active() = %v, want %v", tc.s, got, tc.active)
		}
		if got := tc.s.Valid(); got != tc.valid {
			t.Errorf("%q.Valid() = %v, want %v", tc.s, got, tc.valid)
		}
	}
}
