package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// readChain returns the first n guest bytes of a pool file (with the real
// qemu-img, following the header's backing name: tests only).
func readChain(t *testing.T, pool, file string, n int) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "flat.raw")
	if b, err := exec.Command("qemu-img", "convert", "-U", "-O", "raw", filepath.Join(pool, file), out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert %s: %v %s", file, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b[:n]
}

// guestWrite fills the first 8 bytes of a qcow2 volume with c, as a
// guest would (qemu-io, which follows the header: tests only).
func guestWrite(t *testing.T, pool, file string, c byte) {
	t.Helper()
	cmd := fmt.Sprintf("write -P 0x%02x 0 8", c)
	if b, err := exec.Command("qemu-io", "-f", "qcow2", "-c", cmd, filepath.Join(pool, file)).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v %s", err, b)
	}
}

func TestFreezeRevertMerge(t *testing.T) {
	s, pool := newService(t)
	ctx := context.Background()
	data := make([]byte, 1<<20)
	copy(data, "ORIGINAL")
	if _, err := s.Import(ctx, ImportRequest{Name: "web", Format: FormatRaw, SHA256: digest(data)}, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	fz, err := s.FreezeDisk(ctx, "default/web", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if fz.Layer.Ref() != "default/web-snap-s1" || fz.Layer.Format != FormatRaw || fz.Top.Base != "web-snap-s1" || fz.Top.Format != FormatQcow2 {
		t.Fatalf("freeze: %+v", fz)
	}
	if got := poolFiles(t, pool); strings.Join(got, " ") != "web-snap-s1.raw web.qcow2" {
		t.Fatalf("pool after freeze: %v", got)
	}
	// The new top opens with its chain checked against the records.
	top, err := s.OpenTop(ctx, "default/web")
	if err != nil {
		t.Fatal(err)
	}
	top.File.Close()
	ds, err := s.ChainDigests(ctx, fz.Layer.Ref(), nil)
	if err != nil || len(ds) != 1 || ds[0].SHA256 != digest(data) {
		t.Fatalf("digests: %+v %v (want the imported digest %s)", ds, err, digest(data))
	}
	snap := &Snapshot{VM: "vm1", Name: "s1", Disks: []SnapshotDisk{{Disk: 0, Volume: "default/web", Layers: ds}}}
	if err := s.SaveSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSnapshot(ctx, snap); !errors.Is(err, ErrConflict) {
		t.Errorf("second record of the same snapshot: %v", err)
	}
	// The layer is read-only now: it has a clone (the top).
	if err := s.CheckAttach(fz.Layer.Ref(), false); !errors.Is(err, ErrConflict) {
		t.Errorf("read-write attach of a frozen layer: %v", err)
	}

	// The guest changes the disk; revert brings the snapshot back.
	guestWrite(t, pool, "web.qcow2", 'C')
	if got := readChain(t, pool, "web.qcow2", 8); string(got) != "CCCCCCCC" {
		t.Fatalf("after write: %q", got)
	}
	if err := s.RevertDisk(ctx, "default/web", fz.Layer.Ref()); err != nil {
		t.Fatal(err)
	}
	if got := readChain(t, pool, "web.qcow2", 8); string(got) != "ORIGINAL" {
		t.Fatalf("after revert: %q", got)
	}
	if rep := s.VerifySnapshot(ctx, snap); !rep.OK {
		t.Fatalf("verify: %+v", rep)
	}

	// Tampering with the layer is caught, naming both digests.
	f, err := os.OpenFile(filepath.Join(pool, "web-snap-s1.raw"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("EVIL"), 0)
	f.Close()
	rep := s.VerifySnapshot(ctx, snap)
	if rep.OK || len(rep.Mismatches) != 1 || !strings.Contains(rep.Err().Error(), digest(data)) || rep.Mismatches[0].Actual == "" {
		t.Fatalf("tampered: %+v", rep)
	}
	f, _ = os.OpenFile(filepath.Join(pool, "web-snap-s1.raw"), os.O_WRONLY, 0)
	f.WriteAt([]byte("ORIG"), 0)
	f.Close()

	// Delete of the newest snapshot merges the top into the layer, which
	// takes the top's name: the disk reads the same, one layer shorter.
	guestWrite(t, pool, "web.qcow2", 'M')
	vols := s.Volumes()
	plan, err := PlanSnapshotDelete(*snap, map[int]string{0: "default/web"}, vols, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSnapshotLayers(ctx, plan); err != nil {
		t.Fatal(err)
	}
	if got := poolFiles(t, pool); strings.Join(got, " ") != "web.raw" {
		t.Fatalf("pool after merge: %v", got)
	}
	b, _ := os.ReadFile(filepath.Join(pool, "web.raw"))
	if string(b[:8]) != "MMMMMMMM" {
		t.Fatalf("merged content: %q", b[:8])
	}
	if v := s.Volumes(); len(v) != 1 || v[0].Name != "web" || v[0].Format != FormatRaw || v[0].Base != "" {
		t.Fatalf("records after merge: %+v", v)
	}
	if _, err := s.OpenTop(ctx, "default/web"); err != nil {
		t.Fatalf("open after merge: %v", err)
	}
}

// Unfreeze puts everything back as it was (a live snapshot the
// hypervisor refused).
func TestUnfreeze(t *testing.T) {
	s, pool := newService(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, CreateRequest{Name: "web", Size: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	before := s.Volumes()
	fz, err := s.FreezeDisk(ctx, "default/web", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unfreeze(ctx, fz); err != nil {
		t.Fatal(err)
	}
	after := s.Volumes()
	if len(after) != 1 || after[0] != before[0] {
		t.Fatalf("records: %+v, want %+v", after, before)
	}
	if got := poolFiles(t, pool); strings.Join(got, " ") != "web.qcow2" {
		t.Fatalf("pool: %v", got)
	}
	if _, err := s.OpenTop(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	// A base with clones is not frozen.
	if _, err := s.Clone(ctx, DefaultPool, "web", "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FreezeDisk(ctx, "default/web", "s2"); !errors.Is(err, ErrConflict) {
		t.Errorf("freeze of a base with clones: %v", err)
	}
}
