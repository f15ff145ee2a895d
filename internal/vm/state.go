package vm

import "fmt"

// State is a VM's lifecycle state.
type State string

const (
	Defined  State = "defined"  // created, never started
	Starting State = "starting" // hypervisor process launched, not yet confirmed running
	Running  State = "running"
	Paused   State = "paused"
	Stopping State = "stopping" // graceful shutdown requested
	Stopped  State = "stopped"
	Crashed  State = "crashed" // hypervisor exited unexpectedly or failed to start; see Reason
)

// Op is an operator request that changes state.
type Op string

const (
	OpStart  Op = "start"
	OpStop   Op = "stop"
	OpPause  Op = "pause"
	OpResume Op = "resume"
	OpDelete Op = "delete"
)

// transitions lists every legal state change. Anything not listed is a bug in
// the caller or a race the manager must refuse.
var transitions = map[State][]State{
	Defined:  {Starting},
	Starting: {Running, Crashed, Stopped},
	Running:  {Paused, Stopping, Stopped, Crashed},
	Paused:   {Running, Stopping, Stopped, Crashed},
	Stopping: {Stopped, Crashed},
	Stopped:  {Starting},
	Crashed:  {Starting},
}

// opFrom lists the states in which an operator request is accepted.
var opFrom = map[Op][]State{
	OpStart:  {Defined, Stopped, Crashed},
	OpStop:   {Running, Paused, Stopping},
	OpPause:  {Running},
	OpResume: {Paused},
	OpDelete: {Defined, Stopped, Crashed},
}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// Active reports whether a hypervisor process is expected to exist.
func (s State) Active() bool {
	return s == Starting || s == Running || s == Paused || s == Stopping
}

// CanTransition returns an error if from→to is not a legal change.
func CanTransition(from, to State) error {
	for _, t := range transitions[from] {
		if t == to {
			return nil
		}
	}
	return fmt.Errorf("illegal state change %s -> %s", from, to)
}

// ConflictError says an operation is not allowed in the current state.
type ConflictError struct {
	Op    Op
	State State
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("cannot %s a VM that is %s", e.Op, e.State)
}

// CheckOp returns a *ConflictError if op is not allowed in state s.
func CheckOp(s State, op Op) error {
	for _, from := range opFrom[op] {
		if from == s {
			return nil
		}
	}
	return &ConflictError{Op: op, State: s}
}
