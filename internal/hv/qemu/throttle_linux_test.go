package qemu

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// startQEMU runs the real QEMU, stopped (-S), on a microvm with the disks
// of Build (limits as given) and returns an instance talking to its QMP.
func startQEMU(t *testing.T, limits ThrottleLimits, disks []DiskArg) *instance {
	t.Helper()
	for _, bin := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip(bin + " not installed")
		}
	}
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	argv := []string{"-nodefaults", "-no-user-config", "-display", "none", "-S", "-machine", "microvm",
		"-chardev", chardevSocket("qmp", 0, sock), "-mon", "chardev=qmp,mode=control"}
	if !limits.IsZero() {
		argv = append(argv, "-object", throttleGroupObject(limits))
	}
	for i, d := range disks {
		argv = append(argv, diskArgs(i, d, !limits.IsZero())...)
	}
	cmd := exec.Command("qemu-system-x86_64", argv...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ctx := ctxTimeout(t, 30*time.Second)
	for {
		q, err := DialQMP(ctx, sock)
		if err == nil {
			t.Cleanup(func() { q.Close() })
			return &instance{qmp: q, done: make(chan struct{})}
		}
		if ctx.Err() != nil {
			t.Fatalf("qmp: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func rawDisk(t *testing.T, name string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type blockInfo struct {
	QDev     string `json:"qdev"`
	Inserted *struct {
		NodeName string    `json:"node-name"`
		Group    string    `json:"group"`
		ReadBPS  int64     `json:"bps_rd"`
		WriteOps int64     `json:"iops_wr"`
		Image    imageInfo `json:"image"`
	} `json:"inserted"`
}

// imageInfo is QEMU's ImageInfo: a node's image and what is below it.
type imageInfo struct {
	Format  string     `json:"format"`
	Backing *imageInfo `json:"backing-image"`
}

// chain lists the formats from the top down: "throttle qcow2 raw".
func (i imageInfo) chain() string {
	s := i.Format
	for b := i.Backing; b != nil; b = b.Backing {
		s += " " + b.Format
	}
	return s
}

func queryBlock(t *testing.T, in *instance) []blockInfo {
	t.Helper()
	var b []blockInfo
	if err := in.exec(ctxTimeout(t, 10*time.Second), "query-block", nil, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// The real QEMU takes Build's throttle group and filter nodes: devices sit
// on diskNt, qom-set changes the group's limits live, and a live snapshot
// puts its overlay under the filter, so the disk stays throttled.
func TestThrottleRealQEMU(t *testing.T) {
	rw, ro := rawDisk(t, "rw.raw"), rawDisk(t, "ro.raw")
	in := startQEMU(t, ThrottleLimits{ReadBPS: 2 << 20}, []DiskArg{{Path: rw}, {Path: ro, ReadOnly: true}})
	ctx := ctxTimeout(t, 20*time.Second)
	var roots []string
	for _, b := range queryBlock(t, in) {
		if b.Inserted != nil {
			roots = append(roots, b.Inserted.NodeName)
		}
	}
	if strings.Join(roots, " ") != "disk0t disk1t" {
		t.Fatalf("device roots %v, want disk0t disk1t", roots)
	}
	if err := in.SetDiskLimits(ctx, vm.DiskResources{ReadBPS: 1 << 20, WriteIOPS: 50}); err != nil {
		t.Fatal(err)
	}
	var got map[string]int64
	if err := in.exec(ctx, "qom-get", map[string]any{"path": "/objects/tg0", "property": "limits"}, &got); err != nil {
		t.Fatal(err)
	}
	if got["bps-read"] != 1<<20 || got["iops-write"] != 50 || got["bps-write"] != 0 || got["bps-read-max"] != 0 {
		t.Errorf("group limits after the change: %v", got)
	}

	// Live snapshot of disk 0 under its filter.
	ov := filepath.Join(t.TempDir(), "ov.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", ov, "1M").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	f, err := os.OpenFile(ov, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if tops, err := in.topNodes(ctx); err != nil || tops[0] != "disk0" || tops[1] != "disk1" {
		t.Fatalf("topNodes before the snapshot: %v %v", tops, err)
	}
	if err := in.SnapshotDisks(ctx, map[int]hv.DiskFile{0: {File: f, Format: "qcow2"}}); err != nil {
		t.Fatal(err)
	}
	b := queryBlock(t, in)
	if c := b[0].Inserted.Image.chain(); b[0].Inserted.NodeName != "disk0t" || c != "throttle qcow2 raw" {
		t.Errorf("after the snapshot the device's root is %s (%s), want disk0t over the overlay over the raw disk",
			b[0].Inserted.NodeName, c)
	}
	tops, err := in.topNodes(ctx)
	if err != nil || !strings.HasPrefix(tops[0], "disk0s") {
		t.Errorf("topNodes after the snapshot: %v %v, want the overlay disk0sX", tops, err)
	}
}

// A VM started without limits: the devices' own throttles join group tg0,
// and all zero lifts them.
func TestThrottleRealQEMUNoGroup(t *testing.T) {
	in := startQEMU(t, ThrottleLimits{}, []DiskArg{{Path: rawDisk(t, "a.raw")}, {Path: rawDisk(t, "b.raw")}})
	ctx := ctxTimeout(t, 20*time.Second)
	if err := in.SetDiskLimits(ctx, vm.DiskResources{ReadBPS: 3 << 20, WriteIOPS: 20}); err != nil {
		t.Fatal(err)
	}
	for i, b := range queryBlock(t, in) {
		if b.Inserted == nil || b.Inserted.Group != "tg0" || b.Inserted.ReadBPS != 3<<20 || b.Inserted.WriteOps != 20 {
			t.Errorf("device %d: %+v, want group tg0 with the limits", i, b.Inserted)
		}
	}
	if err := in.SetDiskLimits(ctx, vm.DiskResources{}); err != nil {
		t.Fatal(err)
	}
	for i, b := range queryBlock(t, in) {
		if b.Inserted == nil || b.Inserted.Group != "" || b.Inserted.ReadBPS != 0 {
			t.Errorf("device %d after lifting: %+v", i, b.Inserted)
		}
	}
}
