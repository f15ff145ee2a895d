package manager

import (
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/storage"
	"github.com/bulwark-project/bulwark/internal/vm"
)

func TestRestoreSpec(t *testing.T) {
	s := &storage.Snapshot{VM: "web", Name: "s1", Spec: vm.Spec{Name: "web", MemoryMiB: 256, Cmdline: "x",
		Disks: []vm.Disk{{Volume: "fast/web"}, {Volume: "default/seed", ReadOnly: true}, {Path: "/img/ud", ReadOnly: true}},
		NICs:  []vm.NIC{{MAC: "52:54:00:00:00:01", Network: "lan", IP: "10.0.0.5", Groups: []string{"web"}}}},
		Disks: []storage.SnapshotDisk{{Disk: 0, Volume: "fast/web", Layers: []storage.LayerDigest{{Volume: "fast/web-snap-s1", SHA256: "aa"}}},
			{Disk: 1, Volume: "default/seed", ReadOnly: true}, {Disk: 2, ReadOnly: true}}}
	spec, err := RestoreSpec(s, "copy")
	if err != nil {
		t.Fatal(err)
	}
	if spec.Name != "copy" || spec.MemoryMiB != 256 || spec.Cmdline != "x" {
		t.Errorf("spec: %+v", spec)
	}
	if spec.Disks[0] != (vm.Disk{Volume: "fast/copy-disk0"}) || spec.Disks[1] != s.Spec.Disks[1] || spec.Disks[2] != s.Spec.Disks[2] {
		t.Errorf("disks: %+v", spec.Disks)
	}
	if n := spec.NICs[0]; n.MAC != "" || n.IP != "" || n.Network != "lan" || n.Groups[0] != "web" {
		t.Errorf("nic: %+v", n)
	}
	// The recorded spec is not changed.
	if s.Spec.NICs[0].MAC == "" || s.Spec.Disks[0].Volume != "fast/web" {
		t.Errorf("snapshot record changed: %+v", s.Spec)
	}
	for _, bad := range []string{"", "Bad", "a/b", strings.Repeat("a", 60)} {
		if _, err := RestoreSpec(s, bad); err == nil {
			t.Errorf("new name %q accepted", bad)
		}
	}
}
