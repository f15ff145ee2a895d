package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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

func TestRestoreCmdline(t *testing.T) {
	old := []vm.NIC{{IP: "10.0.0.5"}, {IP: "10.1.0.5"}, {}}
	nics := []vm.NIC{{IP: "10.0.0.99"}, {IP: "10.1.0.7"}, {IP: "10.2.0.2"}}
	for _, tc := range []struct{ in, want string }{
		{"bulwark.hostname=web bulwark.ip=10.0.0.5/24 bulwark.gw=10.0.0.1", "bulwark.hostname=copy bulwark.ip=10.0.0.99/24 bulwark.gw=10.0.0.1"},
		{"root=/dev/vda rw  bulwark.ip=10.0.0.5", "root=/dev/vda rw  bulwark.ip=10.0.0.99"},
		{"ip=10.1.0.5::10.1.0.1:255.255.255.0:web:eth1:off", "ip=10.1.0.7::10.1.0.1:255.255.255.0:web:eth1:off"},
		// Not the original's own: kept.
		{"bulwark.ip=10.0.0.50/24 bulwark.hostname=webby bulwark.gw=10.0.0.5 x.ip=10.0.0.5", "bulwark.ip=10.0.0.50/24 bulwark.hostname=webby bulwark.gw=10.0.0.5 x.ip=10.0.0.5"},
		{"bulwark.ip=10.0.0.55/24 bulwark.hostname=web2", "bulwark.ip=10.0.0.55/24 bulwark.hostname=web2"},
		{"", ""},
		{"quiet", "quiet"},
	} {
		if got := RestoreCmdline(tc.in, "web", "copy", old, nics); got != tc.want {
			t.Errorf("RestoreCmdline(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// unused is what fakeSnapStorage does not implement (calls panic).
type unused interface{ Snapshots }

// fakeSnapStorage is the storage a restore and a delete see: nil
// interfaces for what these tests must not call.
type fakeSnapStorage struct {
	unused
	snaps  []storage.Snapshot
	clones []string
	gone   []string
}

func (f *fakeSnapStorage) CheckAttach(string, bool) error { return nil }
func (f *fakeSnapStorage) OpenChain(context.Context, string, bool) ([]storage.Layer, error) {
	return nil, errors.New("not in this test")
}
func (f *fakeSnapStorage) Snapshots(_ context.Context, name string) ([]storage.Snapshot, error) {
	var out []storage.Snapshot
	for _, s := range f.snaps {
		if s.VM == name {
			out = append(out, s)
		}
	}
	return out, nil
}
func (f *fakeSnapStorage) GetSnapshot(_ context.Context, name, snap string) (*storage.Snapshot, error) {
	for i := range f.snaps {
		if f.snaps[i].VM == name && f.snaps[i].Name == snap {
			return &f.snaps[i], nil
		}
	}
	return nil, storage.ErrNotFound
}
func (f *fakeSnapStorage) VerifySnapshot(context.Context, *storage.Snapshot) storage.VerifyReport {
	return storage.VerifyReport{OK: true}
}
func (f *fakeSnapStorage) Clone(_ context.Context, pool, base, name string) (*storage.Volume, error) {
	f.clones = append(f.clones, pool+"/"+name)
	return &storage.Volume{Pool: pool, Name: name, Base: base, Format: storage.FormatQcow2}, nil
}
func (f *fakeSnapStorage) Delete(_ context.Context, pool, name string) error {
	f.gone = append(f.gone, pool+"/"+name)
	return nil
}

// fakeNet gives every NIC on a network without an address the next one.
type fakeNet struct{ next int }

func (n *fakeNet) PrepareNICs(_ context.Context, spec *vm.Spec) error {
	for i := range spec.NICs {
		if spec.NICs[i].Network != "" && spec.NICs[i].IP == "" {
			n.next++
			spec.NICs[i].IP = fmt.Sprintf("10.0.0.%d", 100+n.next)
		}
	}
	return nil
}
func (n *fakeNet) Attach(string, int, string, []vm.NIC) ([]string, error) { return nil, nil }
func (n *fakeNet) Detach(string)                                          {}

func snapManager(t *testing.T) (*Manager, *fakeStore, *fakeSnapStorage, string) {
	t.Helper()
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	os.WriteFile(kernel, []byte("k"), 0o644)
	st := &fakeStore{vms: map[string]*vm.VM{}}
	m, err := New(specStore{st}, &fakeBackend{}, nil, Config{RunRoot: dir + "/run", LogRoot: dir + "/log"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	fs := &fakeSnapStorage{}
	m.SetVolumes(fs)
	m.SetNetwork(&fakeNet{})
	return m, st, fs, kernel
}

// TestRestoreGivesCmdlineNewAddress: a VM restored from a snapshot gets a
// new address on its NIC and the same in its kernel command line, and
// its own name as bulwark.hostname; the record keeps the original's.
func TestRestoreGivesCmdlineNewAddress(t *testing.T) {
	m, _, fs, kernel := snapManager(t)
	ctx := context.Background()
	spec := vm.Spec{Name: "web", VCPUs: 1, MemoryMiB: 128, Accel: "auto", Kernel: kernel,
		Cmdline: "bulwark.hostname=web bulwark.ip=10.0.0.5/24 bulwark.gw=10.0.0.1",
		Disks:   []vm.Disk{{Volume: "default/web"}},
		NICs:    []vm.NIC{{MAC: "52:54:00:00:00:05", Network: "lan", IP: "10.0.0.5"}}}
	fs.snaps = []storage.Snapshot{{VM: "web", Name: "s1", Spec: spec,
		Disks: []storage.SnapshotDisk{{Disk: 0, Volume: "default/web", Layers: []storage.LayerDigest{{Volume: "default/web-snap-s1", SHA256: "aa"}}}}}}
	nv, err := m.RestoreSnapshot(ctx, "web", "s1", "copy", nil)
	if err != nil {
		t.Fatal(err)
	}
	ip := nv.Spec.NICs[0].IP
	if ip == "" || ip == "10.0.0.5" {
		t.Fatalf("restored NIC address %q", ip)
	}
	if want := "bulwark.hostname=copy bulwark.ip=" + ip + "/24 bulwark.gw=10.0.0.1"; nv.Spec.Cmdline != want {
		t.Errorf("restored cmdline %q, want %q", nv.Spec.Cmdline, want)
	}
	if got, _ := m.Get(ctx, "copy"); got.Spec.Cmdline != nv.Spec.Cmdline {
		t.Errorf("stored cmdline %q", got.Spec.Cmdline)
	}
	if fs.snaps[0].Spec.Cmdline != spec.Cmdline {
		t.Errorf("snapshot record changed: %q", fs.snaps[0].Spec.Cmdline)
	}
}

// TestDeleteRefusedWithSnapshots: a VM with snapshots cannot be deleted;
// the refusal names them and says to delete them first.
func TestDeleteRefusedWithSnapshots(t *testing.T) {
	m, st, fs, _ := snapManager(t)
	ctx := context.Background()
	st.vms["web"] = &vm.VM{Spec: vm.Spec{Name: "web"}, State: vm.Stopped}
	st.vms["other"] = &vm.VM{Spec: vm.Spec{Name: "other"}, State: vm.Stopped}
	fs.snaps = []storage.Snapshot{{VM: "web", Name: "s1"}, {VM: "web", Name: "s2"}, {VM: "webby", Name: "s9"}}
	err := m.Delete(ctx, "web")
	if !errors.Is(err, storage.ErrConflict) || !strings.Contains(err.Error(), "s1, s2") || !strings.Contains(err.Error(), "delete them first") || strings.Contains(err.Error(), "s9") {
		t.Fatalf("delete of a VM with snapshots: %v", err)
	}
	if err := m.Delete(ctx, "other"); err != nil {
		t.Fatalf("delete of a VM without snapshots: %v", err)
	}
	fs.snaps = nil
	if err := m.Delete(ctx, "web"); err != nil {
		t.Fatalf("delete after its snapshots went: %v", err)
	}
}
