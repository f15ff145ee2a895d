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

// measureBackend calls LaunchConfig.Measure as the QEMU backend does, then
// fails the launch (nothing runs in this test).
type measureBackend struct {
	fakeBackend
	calls []string
}

func (b *measureBackend) Launch(_ context.Context, cfg hv.LaunchConfig) (hv.Instance, error) {
	if cfg.Measure == nil {
		return nil, errors.New("no Measure hook")
	}
	for role, p := range map[string]string{"kernel": cfg.Spec.Kernel} {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		err = cfg.Measure(role, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		b.calls = append(b.calls, role)
	}
	return nil, errors.New("launch stops here")
}

type fakeMeasurer struct {
	specs []string
	roles []string
	err   error
}

func (f *fakeMeasurer) MeasureLaunch(spec vm.Spec, _ [][]hv.DiskFile) (func(string, *os.File) error, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.specs = append(f.specs, spec.Name)
	return func(role string, _ *os.File) error { f.roles = append(f.roles, role); return nil }, nil
}

// TestStartPassesMeasureHook: with a measurer set, Start measures the
// launch and hands the backend the hook; a failing measurer stops the start
// before the backend is asked.
func TestStartPassesMeasureHook(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	os.WriteFile(kernel, []byte("k"), 0o644)
	st := &fakeStore{vms: map[string]*vm.VM{}}
	b := &measureBackend{}
	accel := func(string) (hv.Accel, error) { return hv.Accel{Name: "tcg"}, nil }
	m, err := New(specStore{st}, b, accel, Config{RunRoot: dir + "/run", LogRoot: dir + "/log"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	fm := &fakeMeasurer{}
	m.SetMeasurer(fm)
	ctx := context.Background()
	if _, err := st.CreateVM(ctx, vm.Spec{Name: "a", VCPUs: 1, MemoryMiB: 64, Accel: "auto", Kernel: kernel}); err != nil {
		t.Fatal(err)
	}
	v, err := m.Start(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if v.State != vm.Crashed || !strings.Contains(v.Reason, "launch stops here") {
		t.Fatalf("state %s %q, want the backend's failure", v.State, v.Reason)
	}
	if len(fm.specs) != 1 || len(fm.roles) != 1 || fm.roles[0] != "kernel" {
		t.Fatalf("measured specs %v roles %v", fm.specs, fm.roles)
	}

	st.SetState(ctx, "a", vm.Stopped, "", vm.Runtime{})
	fm.err = errors.New("TPM gone")
	b.calls = nil
	if _, err := m.Start(ctx, "a"); err == nil || !strings.Contains(err.Error(), "TPM gone") {
		t.Fatalf("Start with a failing measurer: %v", err)
	}
	if len(b.calls) != 0 {
		t.Errorf("backend asked to launch although measuring failed")
	}
}
