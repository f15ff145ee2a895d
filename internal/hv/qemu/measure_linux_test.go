package qemu

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// TestMeasureGetsPassedDescriptors checks that LaunchConfig.Measure sees the
// very kernel and initrd files handed to QEMU, and that a failing Measure
// stops the launch.
func TestMeasureGetsPassedDescriptors(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	initrd := filepath.Join(dir, "initrd")
	os.WriteFile(kernel, []byte("k"), 0o600)
	os.WriteFile(initrd, []byte("i"), 0o600)
	run := t.TempDir()
	seen := map[string]*os.File{}
	cfg := hv.LaunchConfig{
		Spec:   vm.Spec{Name: "m", Kernel: kernel, Initrd: initrd, VCPUs: 1, MemoryMiB: 1},
		RunDir: run,
		Measure: func(role string, f *os.File) error {
			seen[role] = f
			return nil
		},
	}
	in, err := openInputs(cfg)
	defer in.close()
	if err != nil {
		t.Fatal(err)
	}
	for role, path := range map[string]string{"kernel": kernel, "initrd": initrd} {
		f := seen[role]
		if f == nil || f.Name() != path {
			t.Fatalf("%s: Measure got %v, want a file of %s", role, f, path)
		}
		passed := false
		for _, g := range in.files {
			passed = passed || g == f
		}
		if !passed {
			t.Errorf("%s: Measure got a descriptor that is not passed to QEMU", role)
		}
	}

	cfg.RunDir = t.TempDir()
	cfg.Measure = func(role string, f *os.File) error { return os.ErrPermission }
	in2, err := openInputs(cfg)
	in2.close()
	if err == nil {
		t.Fatal("launch inputs made although Measure failed")
	}
}
