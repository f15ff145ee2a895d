package manager

import (
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vm"
)

func TestFinalState(t *testing.T) {
	allStates := []vm.State{vm.Defined, vm.Starting, vm.Running, vm.Paused, vm.Stopping, vm.Stopped, vm.Crashed}
	exits := []hv.Exit{
		{Status: "exit status 0"},
		{Status: "exit status 1", Message: "qemu-system-x86_64: cannot set up guest memory 'mem0': Cannot allocate memory\n"},
		{Status: "killed by signal 9 (killed)"},
		{Status: "killed by signal 31 (bad system call)", Message: "first\nsecond\nlast words\r\n\n"},
		{Status: "exited (status unknown: not a child of this daemon)"},
		{Requested: true, Status: "exit status 0"},
		{Requested: true, Status: "killed by signal 9 (killed)", Message: "boom\n"},
	}
	for _, cur := range allStates {
		for _, ex := range exits {
			st, reason := FinalState(cur, ex)
			if cur == vm.Stopping || ex.Requested {
				// An exit the operator or the guest asked for.
				if st != vm.Stopped || reason != "" {
					t.Errorf("FinalState(%s, %+v) = %s, %q; want stopped, no reason", cur, ex, st, reason)
				}
				continue
			}
			if st != vm.Crashed {
				t.Errorf("FinalState(%s, %+v) = %s; want crashed", cur, ex, st)
			}
			if !strings.HasPrefix(reason, "hypervisor exited unexpectedly: "+ex.Status) {
				t.Errorf("FinalState(%s, %+v) reason %q does not give the status", cur, ex, reason)
			}
			if strings.ContainsAny(reason, "\r\n") {
				t.Errorf("FinalState(%s, %+v) reason %q spans lines", cur, ex, reason)
			}
		}
	}
}

func TestFinalStateReason(t *testing.T) {
	tests := []struct {
		desc string
		exit hv.Exit
		want string
	}{
		{"no message", hv.Exit{Status: "exit status 1"}, "hypervisor exited unexpectedly: exit status 1"},
		{"one line", hv.Exit{Status: "exit status 1", Message: "could not open kernel"},
			"hypervisor exited unexpectedly: exit status 1: could not open kernel"},
		{"trailing newline", hv.Exit{Status: "exit status 1", Message: "could not open kernel\n"},
			"hypervisor exited unexpectedly: exit status 1: could not open kernel"},
		{"last of several lines", hv.Exit{Status: "killed by signal 31 (bad system call)", Message: "warning: a\nwarning: b\nfatal: c\n\n"},
			"hypervisor exited unexpectedly: killed by signal 31 (bad system call): fatal: c"},
		{"CRLF", hv.Exit{Status: "exit status 1", Message: "a\r\nb\r\n"},
			"hypervisor exited unexpectedly: exit status 1: b"},
		{"empty last line before text", hv.Exit{Status: "s", Message: "\nx"},
			"hypervisor exited unexpectedly: s: x"},
	}
	for _, tc := range tests {
		st, reason := FinalState(vm.Running, tc.exit)
		if st != vm.Crashed || reason != tc.want {
			t.Errorf("%s: FinalState = %s, %q; want crashed, %q", tc.desc, st, reason, tc.want)
		}
	}
}

func TestLastLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a", "a"},
		{"a\n", "a"},
		{"a\nb", "b"},
		{"a\nb\n", "b"},
		{"a\r\nb\r\n", "b"},
		{"\n", ""},
		{"\r\n\r\n", ""},
		{"a\n\n\n", "a"},
		{"a\rb\n", "a\rb"}, // a lone CR inside a line is not a line break
	}
	for _, tc := range tests {
		if got := lastLine(tc.in); got != tc.want {
			t.Errorf("lastLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestFinalStateHostCause: an exit the host caused (the cgroup's OOM kill,
// the log cap) is a crash with that cause, even while a stop was under way
// or after a requested quit.
func TestFinalStateHostCause(t *testing.T) {
	for _, cur := range []vm.State{vm.Running, vm.Paused, vm.Stopping} {
		for _, req := range []bool{false, true} {
			ex := hv.Exit{Requested: req, Status: "killed by signal 9 (killed)", Reason: "out of memory: the VM's cap of 384 MiB was reached"}
			st, reason := FinalState(cur, ex)
			if st != vm.Crashed || reason != "out of memory: the VM's cap of 384 MiB was reached (killed by signal 9 (killed))" {
				t.Errorf("FinalState(%s, requested=%v) = %s %q", cur, req, st, reason)
			}
		}
	}
}
