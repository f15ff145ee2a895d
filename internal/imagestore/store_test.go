package imagestore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newImage publishes an image with a kernel and a disk through Begin and
// Install, as builders do.
func newImage(t *testing.T, s Store, name string) *Manifest {
	t.Helper()
	st, err := s.Begin(name)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"vmlinuz": "kernel bytes", "disk.raw": "disk bytes"}
	m := &Manifest{Version: "1", Kind: "disk"}
	for _, n := range []string{"vmlinuz", "disk.raw"} {
		p := filepath.Join(st.Dir, n)
		if err := os.WriteFile(p, []byte(files[n]), 0o644); err != nil {
			t.Fatal(err)
		}
		sum, size, err := HashFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f := File{Role: RoleKernel, Name: n, SHA256: sum, Size: size}
		if n == "disk.raw" {
			f.Role, f.Format = RoleDisk, "raw"
		}
		m.Files = append(m.Files, f)
	}
	if err := st.Install(m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestInstallLoadVerify(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	newImage(t, s, "img1")
	m, err := s.Load("img1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "img1" || m.Schema != SchemaVersion || len(m.Files) != 2 {
		t.Fatalf("loaded %+v", m)
	}
	if fi, err := os.Stat(filepath.Join(s.Dir, "img1")); err != nil || fi.Mode().Perm() != DirMode {
		t.Fatalf("image dir: %v %v", fi.Mode(), err)
	}
	if checks, err := s.Verify("img1"); err != nil || len(checks) != 2 || !checks[0].OK {
		t.Fatalf("verify: %v %+v", err, checks)
	}
	f, mf, err := s.Open("img1", RoleKernel)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	f.Read(b)
	f.Close()
	if string(b) != "kernel" || mf.Name != "vmlinuz" {
		t.Fatalf("open read %q %s", b, mf.Name)
	}
	// Rebuilding replaces the image in one exchange; no staging left.
	newImage(t, s, "img1")
	ents, err := s.List()
	if err != nil || len(ents) != 1 || ents[0].Err != "" {
		t.Fatalf("list: %v %+v", err, ents)
	}
	left, _ := filepath.Glob(filepath.Join(s.Dir, ".build-*"))
	if len(left) != 0 {
		t.Fatalf("staging left behind: %v", left)
	}
}

// A file changed after the build is refused, by Open and by Verify, with a
// message naming the image, the file and both digests.
func TestTamperedFileRefused(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	m := newImage(t, s, "img")
	for _, tc := range []struct{ name, content string }{
		{"same size", "KERNEL bytes"},
		{"other size", "kernel bytes, patched"},
	} {
		if err := os.WriteFile(filepath.Join(s.Dir, "img", "vmlinuz"), []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := s.Open("img", RoleKernel)
		var de *DigestError
		if !errors.As(err, &de) || de.File != "vmlinuz" || !strings.Contains(err.Error(), "refusing the image") {
			t.Fatalf("%s: open: %v", tc.name, err)
		}
		if tc.name == "same size" && !strings.Contains(err.Error(), m.Files[0].SHA256) {
			t.Errorf("%s: error does not name the expected digest: %v", tc.name, err)
		}
		checks, err := s.Verify("img")
		if err == nil || checks[0].OK || !checks[1].OK {
			t.Fatalf("%s: verify: %v %+v", tc.name, err, checks)
		}
	}
}

func TestManifestValidate(t *testing.T) {
	good := func() *Manifest {
		return &Manifest{Name: "debian-12", Files: []File{{Role: RoleKernel, Name: "vmlinuz", SHA256: strings.Repeat("a", 64)}}}
	}
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Manifest){
		"bad name":        func(m *Manifest) { m.Name = "Debian_12" },
		"name dash end":   func(m *Manifest) { m.Name = "deb-" },
		"path in file":    func(m *Manifest) { m.Files[0].Name = "../../etc/shadow" },
		"absolute file":   func(m *Manifest) { m.Files[0].Name = "/etc/shadow" },
		"hidden file":     func(m *Manifest) { m.Files[0].Name = ".lock" },
		"manifest itself": func(m *Manifest) { m.Files[0].Name = ManifestName },
		"short digest":    func(m *Manifest) { m.Files[0].SHA256 = "abc" },
		"unknown role":    func(m *Manifest) { m.Files[0].Role = "firmware" },
		"no kernel":       func(m *Manifest) { m.Files[0].Role = RoleInitrd },
		"two kernels":     func(m *Manifest) { m.Files = append(m.Files, m.Files[0]) },
		"disk format": func(m *Manifest) {
			m.Files = append(m.Files, File{Role: RoleDisk, Name: "d", SHA256: strings.Repeat("b", 64), Format: "vmdk"})
		},
	} {
		m := good()
		mut(m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The busybox builder's manifest without a schema is read as an
// initramfs image; a manifest naming another image is refused.
func TestLegacyAndMismatchedManifest(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	dir := filepath.Join(s.Dir, "default")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("k"), 0o644)
	sum, _, _ := HashFile(filepath.Join(dir, "vmlinuz"))
	legacy := `{"kernel_version":"6.1","kernel":"/x/vmlinuz","kernel_sha256":"` + sum + `","initrd":"/x/initrd.img","initrd_sha256":"` + strings.Repeat("0", 64) + `"}`
	os.WriteFile(filepath.Join(dir, ManifestName), []byte(legacy), 0o644)
	m, err := s.Load("default")
	if err != nil || m.Kind != "initramfs" || m.File(RoleKernel).Name != "vmlinuz" {
		t.Fatalf("legacy: %v %+v", err, m)
	}
	if _, _, err := s.Open("default", RoleKernel); err != nil {
		t.Fatalf("legacy kernel: %v", err)
	}
	os.WriteFile(filepath.Join(dir, ManifestName), []byte(`{"schema":1,"name":"other","files":[]}`), 0o644)
	if _, err := s.Load("default"); err == nil || !strings.Contains(err.Error(), "other") {
		t.Fatalf("renamed manifest: %v", err)
	}
	ents, _ := s.List()
	if len(ents) != 1 || ents[0].Err == "" {
		t.Fatalf("broken image must be listed with its error: %+v", ents)
	}
	if _, err := s.Load("../etc"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("traversal name: %v", err)
	}
}
