package daemon

import (
	"os/exec"
	"testing"

	"github.com/bulwark-project/bulwark/internal/hv/qemu"
	"github.com/bulwark-project/bulwark/internal/tpm"
)

func TestParseTPM(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want tpm.Config
		bad  bool
	}{
		{"", tpm.Config{None: true}, false},
		{"none", tpm.Config{None: true}, false},
		{"device", tpm.Config{}, false},
		{"device:/dev/tpm0", tpm.Config{Device: "/dev/tpm0"}, false},
		{"swtpm:/run/swtpm.sock", tpm.Config{Socket: "/run/swtpm.sock"}, false},
		{"swtpm", tpm.Config{}, true},
		{"hardware", tpm.Config{}, true},
	} {
		got, err := ParseTPM(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && got != tt.want) {
			t.Errorf("ParseTPM(%q) = %+v, %v", tt.in, got, err)
		}
	}
}

// TestHostFirmwareIsPinned: the firmware measured at start is the open
// file the QEMU backend passes to every VM, not a second open of a path.
func TestHostFirmwareIsPinned(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	fw, err := hostFirmware("qemu-system-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := qemu.PinnedFirmware("qemu-system-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if len(fw) != 1 || len(pinned) != 1 || fw[0].File != pinned[0].File || fw[0].Name != qemu.BIOSName {
		t.Fatalf("measured %+v, backend passes %+v", fw, pinned)
	}
	if _, err := hostFirmware("/nonexistent/qemu-system-x86_64"); err == nil {
		t.Error("firmware of a missing QEMU binary")
	}
}
