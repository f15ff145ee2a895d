package itest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/storage"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// TestSnapshot: a busybox guest writes a marker to its volume disk; a
// snapshot of the stopped VM, the marker wiped by the guest, a revert,
// and the guest reads it again. A snapshot of the running VM keeps the
// guest running (its heartbeat goes on) and restores into a new VM that
// reads the marker. A frozen layer changed behind Bulwark's back is
// refused at restore, naming the layer and both digests.
func TestSnapshot(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	pool := filepath.Join(h.dir, "state", "storage", "default")
	const marker = "SNAPFILE-present"
	h.mustCLI(nil, "volume", "create", "data", "--size", "8M")
	// The user-data disk is a read-only host path (recorded as is); its
	// file is rewritten between boots to give each boot its own script.
	ud := h.userdata("snap", `printf '`+marker+`' | dd of=/dev/vda conv=notrunc 2>/dev/null; sync; echo "boot1=$(head -c 16 /dev/vda)"`)
	spec := vm.Spec{Name: "snap", MemoryMiB: 192, Kernel: filepath.Join(imgDir, "vmlinuz"), Initrd: filepath.Join(imgDir, "initrd.img"),
		Cmdline: "bulwark.hostname=snap bulwark.heartbeat=1", Disks: []vm.Disk{{Volume: "default/data"}, {Path: ud, ReadOnly: true}}}
	if _, err := h.c.CreateVM(ctx, spec); err != nil {
		t.Fatal(err)
	}
	boot := func(name, want string) string {
		t.Helper()
		h.mustCLI(nil, "vm", "start", name)
		h.waitConsole(name, want+"=", 1)
		log := h.consoleLog(name)
		i := strings.Index(log, want+"=")
		return strings.TrimRight(strings.SplitN(log[i+len(want)+1:], "\n", 2)[0], "\r\x00")
	}
	if got := boot("snap", "boot1"); got != marker {
		t.Fatalf("boot 1 read %q", got)
	}
	h.mustCLI(nil, "vm", "stop", "snap")

	// A stopped VM's snapshot.
	var s1 storage.Snapshot
	h.mustCLI(&s1, "vm", "snapshot", "create", "snap", "s1")
	if s1.Running || len(s1.Disks) != 2 || s1.Disks[0].Frozen() != "default/data-snap-s1" || !s1.Disks[1].ReadOnly || s1.Disks[1].Frozen() != "" {
		t.Fatalf("snapshot: %+v", s1)
	}
	if got := fileSHA(t, filepath.Join(pool, "data-snap-s1.qcow2")); got != s1.Disks[0].Layers[0].SHA256 {
		t.Fatalf("recorded digest %s, file's %s", s1.Disks[0].Layers[0].SHA256, got)
	}
	if _, errs, err := h.cli("vm", "snapshot", "create", "snap", "s1"); err == nil || !strings.Contains(errs, "already exists") {
		t.Errorf("duplicate snapshot: %v %s", err, errs)
	}
	if _, errs, err := h.cli("vm", "snapshot", "create", "snap", "Bad/Name"); err == nil || !strings.Contains(errs, "lower-case") {
		t.Errorf("bad snapshot name: %v %s", err, errs)
	}

	// The guest wipes the marker.
	h.userdata("snap", `echo "boot2=$(head -c 16 /dev/vda)"; dd if=/dev/zero of=/dev/vda bs=16 count=1 conv=notrunc 2>/dev/null; sync; echo "wiped=$(head -c 16 /dev/vda | tr -d '\000')."`)
	if got := boot("snap", "boot2"); got != marker {
		t.Fatalf("boot 2 read %q", got)
	}
	h.waitConsole("snap", "wiped=.", 1)
	h.mustCLI(nil, "vm", "stop", "snap")

	// Revert: the marker is back.
	h.mustCLI(nil, "vm", "snapshot", "revert", "snap", "s1")
	h.userdata("snap", `echo "boot3=$(head -c 16 /dev/vda)"`)
	if got := boot("snap", "boot3"); got != marker {
		t.Fatalf("after revert the guest read %q", got)
	}
	// Revert while running: 409 naming the state.
	if _, errs, err := h.cli("vm", "snapshot", "revert", "snap", "s1"); err == nil || !strings.Contains(errs, "running") || !strings.Contains(errs, "stop it first") {
		t.Errorf("revert of a running VM: %v %s", err, errs)
	}

	// A running VM's snapshot: the guest keeps running.
	h.waitFor("a heartbeat", 30e9, func() bool { return lastHeartbeat(h.consoleLog("snap")) > 0 })
	var live storage.Snapshot
	h.mustCLI(&live, "vm", "snapshot", "create", "snap", "live1")
	if !live.Running || live.Disks[0].Frozen() != "default/data-snap-live1" || len(live.Disks[0].Layers) != 2 {
		t.Fatalf("live snapshot: %+v", live)
	}
	hb := lastHeartbeat(h.consoleLog("snap"))
	h.waitFor("heartbeats after the live snapshot", 30e9, func() bool { return lastHeartbeat(h.consoleLog("snap")) >= hb+3 })
	if v := h.vm("snap"); v.State != vm.Running {
		t.Fatalf("after the live snapshot: %s", v.State)
	}
	// The hypervisor now holds the new top, which it got by descriptor.
	pid := h.vm("snap").Runtime.PID
	fds, _ := os.ReadDir("/proc/" + itoa(pid) + "/fd")
	var held []string
	for _, fd := range fds {
		l, _ := os.Readlink("/proc/" + itoa(pid) + "/fd/" + fd.Name())
		held = append(held, l)
	}
	if all := strings.Join(held, "\n"); !strings.Contains(all, filepath.Join(pool, "data.qcow2")) || !strings.Contains(all, filepath.Join(pool, "data-snap-live1.qcow2")) {
		t.Errorf("VMM descriptors after the live snapshot:\n%s", all)
	}
	h.mustCLI(nil, "vm", "stop", "snap")
	var rep storage.VerifyReport
	h.mustCLI(&rep, "vm", "snapshot", "verify", "snap", "live1")
	if !rep.OK || len(rep.Layers) != 2 {
		t.Fatalf("verify after the VM stopped: %+v", rep)
	}

	// Restore into a new VM: it reads the marker from the snapshot.
	var list []storage.Snapshot
	h.mustCLI(&list, "vm", "snapshot", "list", "snap")
	if len(list) != 2 || list[0].Name != "s1" || list[1].Name != "live1" {
		t.Fatalf("list: %+v", list)
	}
	var copyVM vm.VM
	h.mustCLI(&copyVM, "vm", "snapshot", "restore", "snap", "live1", "copy")
	if copyVM.Spec.Disks[0].Volume != "default/copy-disk0" || copyVM.Spec.Disks[1].Path != ud {
		t.Fatalf("restored spec: %+v", copyVM.Spec.Disks)
	}
	if got := boot("copy", "boot3"); got != marker {
		t.Fatalf("restored VM read %q", got)
	}
	h.mustCLI(nil, "vm", "stop", "copy")

	// Deleting s1 is refused: live1's layer is based on it.
	if _, errs, err := h.cli("vm", "snapshot", "delete", "snap", "s1"); err == nil || !strings.Contains(errs, "data-snap-live1") {
		t.Errorf("delete of a snapshot with dependants: %v %s", err, errs)
	}

	// A frozen layer changed behind Bulwark's back: verify and restore
	// name the layer and both digests.
	f, err := os.OpenFile(filepath.Join(pool, "data-snap-s1.qcow2"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("tampered"))
	f.Close()
	tampered := fileSHA(t, filepath.Join(pool, "data-snap-s1.qcow2"))
	_, errs, err := h.cli("vm", "snapshot", "restore", "snap", "s1", "copy2")
	if err == nil || !strings.Contains(errs, "data-snap-s1") || !strings.Contains(errs, s1.Disks[0].Layers[0].SHA256) || !strings.Contains(errs, tampered) {
		t.Fatalf("restore from a tampered layer: %v %s", err, errs)
	}
	if _, errs, err := h.cli("vm", "snapshot", "verify", "snap", "s1"); err == nil || !strings.Contains(errs, tampered) {
		t.Errorf("verify of a tampered layer: %v %s", err, errs)
	}
	if _, errs, err := h.cli("vm", "snapshot", "revert", "snap", "live1"); err == nil || !strings.Contains(errs, tampered) {
		t.Errorf("revert onto a tampered chain: %v %s", err, errs)
	}
	if _, err := os.Stat(filepath.Join(pool, "copy2-disk0.qcow2")); err == nil {
		t.Error("a refused restore left a volume behind")
	}
}
