package manager

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// specStore is fakeStore with SetSpec that writes.
type specStore struct{ *fakeStore }

func (s specStore) SetSpec(_ context.Context, name string, spec vm.Spec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vms[name].Spec = spec
	return nil
}

// Update: which states take which changes, the order of the checks, and
// that nothing is written when something refuses.
func TestUpdateStates(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	os.WriteFile(kernel, []byte("k"), 0o600)
	base := vm.Spec{Name: "a", VCPUs: 1, MemoryMiB: 64, Kernel: kernel, Accel: "auto"}
	mem := 128
	for _, st := range []vm.State{vm.Defined, vm.Starting, vm.Running, vm.Paused, vm.Stopping, vm.Stopped, vm.Crashed} {
		fs := &fakeStore{vms: map[string]*vm.VM{"a": {Spec: base, State: st}}}
		m, err := New(specStore{fs}, nil, nil, Config{RunRoot: filepath.Join(dir, "run"), LogRoot: filepath.Join(dir, "log")},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		v, changes, err := m.Update(context.Background(), "a", vm.Patch{MemoryMiB: &mem}, nil)
		var ce *vm.ConflictError
		switch {
		case st.Active():
			if !errors.As(err, &ce) || ce.State != st || !strings.Contains(err.Error(), "memory_mib") {
				t.Errorf("%s: %v, want a conflict naming the state and the field", st, err)
			}
			if fs.vms["a"].Spec.MemoryMiB != 64 {
				t.Errorf("%s: written despite the conflict", st)
			}
		case err != nil || len(changes) != 1 || v.Spec.MemoryMiB != 128:
			t.Errorf("%s: %v %v %+v", st, err, changes, v)
		}
		// Groups on a running VM without a switch that can re-bind them.
		if st == vm.Running {
			fs.vms["a"].Spec.NICs = []vm.NIC{{MAC: "52:54:00:00:00:01", Network: "lab"}}
			_, _, err := m.Update(context.Background(), "a", vm.Patch{NICGroups: []vm.NICGroups{{NIC: 0, Groups: []string{"g"}}}}, nil)
			if err == nil || !strings.Contains(err.Error(), "switch") {
				t.Errorf("live groups without a switch: %v", err)
			}
		}
		m.Close()
	}

	// Privileges come before validation: a refused caller learns nothing
	// about the file it named.
	fs := &fakeStore{vms: map[string]*vm.VM{"a": {Spec: base, State: vm.Stopped}}}
	m, _ := New(specStore{fs}, hv.Backend(nil), nil, Config{RunRoot: filepath.Join(dir, "run"), LogRoot: filepath.Join(dir, "log")},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer m.Close()
	missing := "/nonexistent/kernel"
	deny := errors.New("denied")
	var saw vm.Spec
	_, _, err := m.Update(context.Background(), "a", vm.Patch{Kernel: &missing}, func(old, new vm.Spec) error { saw = new; return deny })
	if !errors.Is(err, deny) || saw.Kernel != missing {
		t.Errorf("authorize before validation: %v (authorize saw %q)", err, saw.Kernel)
	}
	_, _, err = m.Update(context.Background(), "a", vm.Patch{Kernel: &missing}, nil)
	var fe *vm.FieldError
	if !errors.As(err, &fe) || fe.Field != "kernel" {
		t.Errorf("missing kernel: %v, want a FieldError on kernel", err)
	}
	if fs.vms["a"].Spec.Kernel != kernel {
		t.Error("a refused change was written")
	}
	// Nothing to change: authorize is not even asked.
	same := 64
	v, changes, err := m.Update(context.Background(), "a", vm.Patch{MemoryMiB: &same}, func(vm.Spec, vm.Spec) error { return deny })
	if err != nil || len(changes) != 0 || v == nil {
		t.Errorf("no-op: %v %v", changes, err)
	}
}
