package itest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// TestVMStartCrashFails: a VM whose kernel is garbage dies at once; `vm
// start` must exit non-zero and print the reason the daemon recorded
// (it used to print the crashed VM and exit 0). No guest boots, so this
// is quick.
func TestVMStartCrashFails(t *testing.T) {
	h := newHost(t)
	garbage := filepath.Join(h.dir, "garbage-kernel")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 16<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	h.mustCLI(nil, "vm", "create", "junk", "--kernel", garbage, "--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", "128")

	for _, flags := range [][]string{nil, {"--no-wait"}, {"--wait", "5s"}} {
		begin := time.Now()
		out, errs, err := h.cli(append([]string{"vm", "start", "junk"}, flags...)...)
		took := time.Since(begin)
		v := h.vm("junk")
		t.Logf("vm start %v: %v in %v\nstdout: %sstderr: %s", flags, err, took, out, errs)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("vm start %v of a VM with a garbage kernel: %v, want a non-zero exit\nstdout: %s\nstderr: %s\ndaemon log:\n%s", flags, err, out, errs, h.logBuf)
		}
		if v.State != vm.Crashed || v.Reason == "" {
			t.Fatalf("recorded state %s %q, want crashed with a reason", v.State, v.Reason)
		}
		if !strings.Contains(errs, "crashed while starting") || !strings.Contains(errs, v.Reason) {
			t.Errorf("vm start %v: stderr %q does not carry the recorded reason %q", flags, errs, v.Reason)
		}
		if took > 20*time.Second {
			t.Errorf("vm start %v took %v to report a crash at start", flags, took)
		}
	}

	// A VM that does come up still exits 0, in the JSON it always printed.
	h.createVM("fine")
	var v vm.VM
	h.mustCLI(&v, "vm", "start", "fine")
	if v.State != vm.Running {
		t.Fatalf("vm start of a good VM: %s %q", v.State, v.Reason)
	}
}
