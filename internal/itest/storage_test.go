package itest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vm"
)

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestStorageHostileHeader: a qcow2 whose header names a host file as its
// backing file is (a) refused at import, and (b) when planted in the pool
// behind Bulwark's back on a volume recorded without a backing file, the
// start is refused naming the mismatch and no hypervisor runs. A clone of
// a raw base boots under the jail with its chain passed as explicit nodes:
// the guest reads the base's bytes through the overlay.
func TestStorageHostileHeader(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	secret := filepath.Join(h.dir, "host-secret")
	if err := os.WriteFile(secret, bytes.Repeat([]byte("HOSTSECRET\n"), 100000), 0o600); err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(h.dir, "evil.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", secret, "-F", "raw", evil, "1M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	pool := filepath.Join(h.dir, "state", "storage", "default")

	// (a) Import refused, nothing left in the pool.
	_, errs, err := h.cli("volume", "import", "evil", evil, "--sha256", fileSHA(t, evil))
	if err == nil || !strings.Contains(errs, "backing file") || !strings.Contains(errs, secret) {
		t.Fatalf("import of a qcow2 naming %s: err %v, stderr %s", secret, err, errs)
	}
	// A wrong digest is refused too.
	_, errs, err = h.cli("volume", "import", "evil2", evil, "--sha256", strings.Repeat("0", 64))
	if err == nil || !strings.Contains(errs, "SHA-256") {
		t.Fatalf("import with a wrong digest: %v %s", err, errs)
	}
	if ents, _ := os.ReadDir(pool); len(ents) != 0 {
		t.Fatalf("pool not empty after refused imports: %v", ents)
	}

	// (b) A clean volume, then its file replaced by the hostile image.
	h.mustCLI(nil, "volume", "create", "plain", "--size", "1M")
	evilBytes, _ := os.ReadFile(evil)
	if err := os.WriteFile(filepath.Join(pool, "plain.qcow2"), evilBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	spec := vm.Spec{Name: "planted", MemoryMiB: 192, Kernel: filepath.Join(imgDir, "vmlinuz"), Initrd: filepath.Join(imgDir, "initrd.img"),
		Cmdline: "bulwark.hostname=planted", Disks: []vm.Disk{{Volume: "default/plain"}}}
	if _, err := h.c.CreateVM(ctx, spec); err != nil {
		t.Fatal(err)
	}
	_, err = h.c.Action(ctx, "planted", "start")
	if err == nil || !strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "none on record") {
		t.Fatalf("start on a planted header: %v", err)
	}
	if v := h.vm("planted"); v.State != vm.Defined || v.Runtime.PID != 0 {
		t.Fatalf("after the refused start: %s pid %d", v.State, v.Runtime.PID)
	}
	out, _, _ := h.cli("volume", "show", "plain")
	if !strings.Contains(out, "none on record") {
		t.Errorf("volume show does not name the problem:\n%s", out)
	}

	// A raw base with known bytes, a thin clone, a VM on the clone: the
	// guest reads the base through the overlay and writes to the clone.
	base := filepath.Join(h.dir, "base.raw")
	data := make([]byte, 1<<20)
	copy(data, "BASEDATA-0123456")
	os.WriteFile(base, data, 0o600)
	h.mustCLI(nil, "volume", "import", "base", base, "--sha256", fileSHA(t, base), "--format", "raw")
	h.mustCLI(nil, "volume", "clone", "base", "web")
	script := `echo "vda=$(head -c 16 /dev/vda)"; printf 'CLONEDATA-abcdef' | dd of=/dev/vda conv=notrunc 2>/dev/null; sync; echo "vda2=$(head -c 16 /dev/vda)"`
	spec = vm.Spec{Name: "cloned", MemoryMiB: 192, Kernel: filepath.Join(imgDir, "vmlinuz"), Initrd: filepath.Join(imgDir, "initrd.img"),
		Cmdline: "bulwark.hostname=cloned", Disks: []vm.Disk{{Volume: "default/web"}, {Path: h.userdata("cloned", script), ReadOnly: true}}}
	if _, err := h.c.CreateVM(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.Action(ctx, "cloned", "start"); err != nil {
		t.Fatal(err)
	}
	h.waitState("cloned", vm.Running)
	h.waitConsole("cloned", "vda2=", 1)
	log := h.consoleLog("cloned")
	if !strings.Contains(log, "vda=BASEDATA-0123456") || !strings.Contains(log, "vda2=CLONEDATA-abcdef") {
		t.Fatalf("guest did not read the base through the clone:\n%s", log)
	}
	// The hypervisor holds exactly the pool files of the chain and never
	// the host secret.
	pid := h.vm("cloned").Runtime.PID
	fds, _ := os.ReadDir("/proc/" + itoa(pid) + "/fd")
	var held []string
	for _, fd := range fds {
		l, _ := os.Readlink("/proc/" + itoa(pid) + "/fd/" + fd.Name())
		held = append(held, l)
		if strings.Contains(l, "host-secret") || strings.Contains(l, "plain.qcow2") {
			t.Errorf("VMM holds %s", l)
		}
	}
	all := strings.Join(held, "\n")
	if !strings.Contains(all, filepath.Join(pool, "base.raw")) || !strings.Contains(all, filepath.Join(pool, "web.qcow2")) {
		t.Errorf("VMM descriptors do not hold the chain:\n%s", all)
	}
	// The base is unchanged: the write went to the overlay.
	if b, _ := os.ReadFile(filepath.Join(pool, "base.raw")); !bytes.HasPrefix(b, []byte("BASEDATA-0123456")) {
		t.Errorf("base changed: %q", b[:16])
	}
	// In use and with clones: refused.
	if _, errs, err := h.cli("volume", "delete", "web"); err == nil || !strings.Contains(errs, "cloned") {
		t.Errorf("delete of a volume in use: %v %s", err, errs)
	}
	if _, errs, err := h.cli("volume", "delete", "base"); err == nil || !strings.Contains(errs, "clone") {
		t.Errorf("delete of a base with clones: %v %s", err, errs)
	}
}
