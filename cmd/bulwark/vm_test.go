package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/vm"
)

func rec(state vm.State, reason string) *vm.VM {
	return &vm.VM{Spec: vm.Spec{Name: "web"}, State: state, Reason: reason}
}

func TestStartOutcome(t *testing.T) {
	tests := []struct {
		state   vm.State
		reason  string
		settled bool
		errHas  string // "" for success
	}{
		{vm.Running, "", true, ""},
		{vm.Paused, "", true, ""},
		{vm.Starting, "", false, ""},
		{vm.Crashed, "qemu failed to start (exit status 1): linux kernel too old", true, "crashed while starting: qemu failed to start (exit status 1): linux kernel too old"},
		{vm.Crashed, "", true, "no reason recorded"},
		{vm.Stopped, "guest powered off", true, `stopped instead of running: guest powered off`},
		{vm.Stopping, "", true, "stopping instead of running"},
		{vm.Defined, "", true, "is defined after the start"},
	}
	for _, tc := range tests {
		settled, err := startOutcome(rec(tc.state, tc.reason))
		if settled != tc.settled {
			t.Errorf("%s: settled %v, want %v", tc.state, settled, tc.settled)
		}
		switch {
		case tc.errHas == "" && err != nil:
			t.Errorf("%s: %v, want success", tc.state, err)
		case tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)):
			t.Errorf("%s %q: %v, want an error containing %q", tc.state, tc.reason, err, tc.errHas)
		}
	}
}

// waitStarted follows the records get returns until one settles, and gives
// up at the deadline naming the state it was stuck in.
func TestWaitStarted(t *testing.T) {
	seq := func(states ...*vm.VM) func(context.Context) (*vm.VM, error) {
		return func(context.Context) (*vm.VM, error) {
			v := states[0]
			if len(states) > 1 {
				states = states[1:]
			}
			return v, nil
		}
	}
	ctx := context.Background()
	const poll = time.Millisecond

	v, err := waitStarted(ctx, seq(rec(vm.Running, "")), rec(vm.Crashed, "boom"), time.Second, poll)
	if err == nil || !strings.Contains(err.Error(), "boom") || v.State != vm.Crashed {
		t.Errorf("a crashed answer: %v %v, want the crash without polling", v.State, err)
	}
	v, err = waitStarted(ctx, seq(rec(vm.Starting, ""), rec(vm.Starting, ""), rec(vm.Crashed, "bad kernel")), rec(vm.Starting, ""), time.Second, poll)
	if err == nil || !strings.Contains(err.Error(), "bad kernel") || v.State != vm.Crashed {
		t.Errorf("starting, then crashed: %v %v", v.State, err)
	}
	v, err = waitStarted(ctx, seq(rec(vm.Starting, ""), rec(vm.Running, "")), rec(vm.Starting, ""), time.Second, poll)
	if err != nil || v.State != vm.Running {
		t.Errorf("starting, then running: %v %v", v.State, err)
	}
	v, err = waitStarted(ctx, seq(rec(vm.Starting, "")), rec(vm.Starting, ""), 20*time.Millisecond, poll)
	if err == nil || !strings.Contains(err.Error(), "still starting after 20ms") {
		t.Errorf("stuck starting: %v %v, want a timeout naming the state", v.State, err)
	}
	denied := errors.New("403 lacks VM.Audit")
	_, err = waitStarted(ctx, func(context.Context) (*vm.VM, error) { return nil, denied }, rec(vm.Starting, ""), time.Second, poll)
	if !errors.Is(err, denied) {
		t.Errorf("unreadable state: %v, want the read error", err)
	}
}
