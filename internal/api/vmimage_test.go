package api

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/imagestore"
	"github.com/bulwark-project/bulwark/internal/storage"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// writeTestImage puts a disk image "tiny" (kernel, initrd, a 1 MiB raw disk
// template) into the test server's registry, STATE/images.
func writeTestImage(t *testing.T, ts *testServer) (dir string, m imagestore.Manifest) {
	return writeNamedImage(t, ts, "tiny", "root=/dev/vda rw")
}

func writeNamedImage(t *testing.T, ts *testServer, name, cmdline string) (dir string, m imagestore.Manifest) {
	t.Helper()
	dir = filepath.Join(ts.dir, "images", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"vmlinuz": []byte("kernel bytes"), "initrd.img": []byte("initrd bytes"), "root.raw": make([]byte, 1<<20)}
	m = imagestore.Manifest{Schema: imagestore.SchemaVersion, Name: name, Version: "1", Kind: "disk", Cmdline: cmdline}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		f := imagestore.File{Name: name, SHA256: sha(b), Size: int64(len(b))}
		switch name {
		case "vmlinuz":
			f.Role = imagestore.RoleKernel
		case "initrd.img":
			f.Role = imagestore.RoleInitrd
		default:
			f.Role, f.Format, f.VirtualSize = imagestore.RoleDisk, "raw", int64(len(b))
		}
		m.Files = append(m.Files, f)
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, imagestore.ManifestName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// A VM from an image gets the image's kernel, initrd and command line and a
// thin root volume on the image's base volume, grown to the size asked; a
// second VM shares the base; a tampered image is refused at create and at
// start; nothing is left behind by a refused create.
func TestVMFromImage(t *testing.T) {
	ts := newNetTestServer(t)
	withStorage(t, ts)
	ts.srv.SetImageDirs([]string{filepath.Join(ts.dir, "images")})
	dir, _ := writeTestImage(t, ts)
	reg := imagestore.Store{Dir: filepath.Join(ts.dir, "images")}
	ts.mgr.SetImageCheck(func(s vm.Spec) error { return reg.CheckBoot(s.Image, s.Kernel, s.Initrd) })

	rec := ts.do("POST", "/api/v1/vms?root_size=8M", body(`{"name":"web","memory_mib":64,"image":"tiny","cmdline":"quiet"}`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("create from image: %d %s", rec.Code, rec.Body)
	}
	var v vm.VM
	json.Unmarshal(rec.Body.Bytes(), &v)
	if v.Spec.Kernel != filepath.Join(dir, "vmlinuz") || v.Spec.Initrd != filepath.Join(dir, "initrd.img") ||
		v.Spec.Cmdline != "root=/dev/vda rw quiet" || len(v.Spec.Disks) != 1 || v.Spec.Disks[0].Volume != "default/web-root" {
		t.Fatalf("spec from image: %+v", v.Spec)
	}
	info, err := ts.srv.storage.Inspect(context.Background(), storage.DefaultPool, "web-root")
	if err != nil {
		t.Fatal(err)
	}
	if info.Base == "" || !strings.HasPrefix(info.Base, "img-tiny-") || info.Format != "qcow2" || info.Size != 8<<20 {
		t.Errorf("root volume: %+v", info.Volume)
	}
	if rec := ts.do("POST", "/api/v1/vms", body(`{"name":"web2","memory_mib":64,"image":"tiny"}`)); rec.Code != http.StatusCreated {
		t.Fatalf("second VM from the image: %d %s", rec.Code, rec.Body)
	}
	bases := 0
	for _, vol := range ts.srv.storage.Volumes() {
		if strings.HasPrefix(vol.Name, "img-tiny-") {
			bases++
		}
	}
	if bases != 1 {
		t.Errorf("%d base volumes for one image version, want 1", bases)
	}
	// Refused: kernel given with an image; an unknown image; a duplicate
	// name (and its root volume is not touched).
	expectError(t, ts.do("POST", "/api/v1/vms", body(`{"name":"k","memory_mib":64,"image":"tiny","kernel":"/boot/x"}`)), 400, "kernel")
	expectError(t, ts.do("POST", "/api/v1/vms", body(`{"name":"u","memory_mib":64,"image":"nope"}`)), 400, "image")
	expectError(t, ts.do("POST", "/api/v1/vms", body(`{"name":"web","memory_mib":64,"image":"tiny"}`)), 409, "")
	expectError(t, ts.do("POST", "/api/v1/vms?root_size=lots", body(`{"name":"s","memory_mib":64,"image":"tiny"}`)), 400, "root_size")
	// The image's kernel cannot be swapped on its own with vm set; the
	// image can: kernel, initrd and the image's part of the command line
	// follow, the disks stay.
	expectError(t, ts.do("PATCH", "/api/v1/vms/web", body(`{"kernel":"`+ts.kernel+`"}`)), 400, "kernel")
	dir2, _ := writeNamedImage(t, ts, "tiny2", "root=/dev/vda ro")
	ts.mgr.SetImageRetarget(ImageRetarget(reg))
	rec = ts.do("PATCH", "/api/v1/vms/web", body(`{"image":"tiny2"}`))
	var upd VMUpdate
	json.Unmarshal(rec.Body.Bytes(), &upd)
	if rec.Code != http.StatusOK || upd.VM.Spec.Kernel != filepath.Join(dir2, "vmlinuz") || upd.VM.Spec.Cmdline != "root=/dev/vda ro quiet" ||
		len(upd.VM.Spec.Disks) != 1 || upd.VM.Spec.Disks[0].Volume != "default/web-root" {
		t.Fatalf("vm set image: %d %s", rec.Code, rec.Body)
	}
	expectError(t, ts.do("PATCH", "/api/v1/vms/web", body(`{"image":"missing"}`)), 400, "image")
	// A tampered kernel: refused at create and at start, naming the digests.
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("kernel BYTES"), 0o600)
	if rec := ts.do("POST", "/api/v1/vms", body(`{"name":"t","memory_mib":64,"image":"tiny"}`)); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "sha256") && !strings.Contains(rec.Body.String(), "SHA-256") {
		t.Errorf("create from a tampered image: %d %s", rec.Code, rec.Body)
	}
	if _, err := ts.srv.storage.Inspect(context.Background(), storage.DefaultPool, "t-root"); err == nil {
		t.Error("a refused create left its root volume")
	}
	if _, err := ts.mgr.Start(context.Background(), "web2"); err == nil || !strings.Contains(err.Error(), "tiny") {
		t.Errorf("start of a VM whose image was tampered with: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "4096": 4096, "8G": 8 << 30, "512M": 512 << 20, "1t": 1 << 40} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"0", "-1G", "G", "1.5G", "99999999999T"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

// Storage refusals keep their status on VM routes: deleting a VM with a
// snapshot is a 409 naming it, not a 500.
func TestVMDeleteWithSnapshotIs409(t *testing.T) {
	ts := newNetTestServer(t)
	withStorage(t, ts)
	ts.srv.SetImageDirs([]string{filepath.Join(ts.dir, "images")})
	writeTestImage(t, ts)
	if rec := ts.do("POST", "/api/v1/vms", body(`{"name":"s1","memory_mib":64,"image":"tiny"}`)); rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	if rec := ts.do("POST", "/api/v1/vms/s1/snapshots", body(`{"name":"first"}`)); rec.Code >= 300 {
		t.Fatalf("snapshot: %d %s", rec.Code, rec.Body)
	}
	rec := ts.do("DELETE", "/api/v1/vms/s1", nil)
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "first") {
		t.Errorf("delete of a VM with a snapshot: %d %s", rec.Code, rec.Body)
	}
}

// A disk template that does not match its manifest is refused when the
// base volume is imported (the import checks the manifest's SHA-256), as a
// conflict naming the image, and leaves no volume behind.
func TestVMFromImageTamperedDisk(t *testing.T) {
	ts := newNetTestServer(t)
	withStorage(t, ts)
	ts.srv.SetImageDirs([]string{filepath.Join(ts.dir, "images")})
	dir, _ := writeTestImage(t, ts)
	b := make([]byte, 1<<20)
	b[0] = 1
	os.WriteFile(filepath.Join(dir, "root.raw"), b, 0o600)
	rec := ts.do("POST", "/api/v1/vms", body(`{"name":"t","memory_mib":64,"image":"tiny"}`))
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "tiny") {
		t.Errorf("create from an image with a tampered disk: %d %s", rec.Code, rec.Body)
	}
	if vols := ts.srv.storage.Volumes(); len(vols) != 0 {
		t.Errorf("volumes left behind: %v", vols)
	}
}
