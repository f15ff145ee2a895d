package imagestore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ManifestName is the manifest's file name inside an image directory.
const ManifestName = "manifest.json"

// maxManifestSize bounds what Load reads: a Debian manifest with a few
// hundred packages is ~30 KiB.
const maxManifestSize = 4 << 20

// ErrNotFound is wrapped when an image or one of its files does not exist.
var ErrNotFound = errors.New("image not found")

// DigestError says that a file of an image does not match its manifest.
// Callers refuse the image.
type DigestError struct {
	Image, File string
	Want, Got   string // hex SHA-256; Got empty when the size already differs
	WantSize    int64
	GotSize     int64
}

func (e *DigestError) Error() string {
	if e.Got == "" {
		return fmt.Sprintf("image %s: %s is %d bytes, the manifest says %d: refusing the image (rebuild it or restore the file)",
			e.Image, e.File, e.GotSize, e.WantSize)
	}
	return fmt.Sprintf("image %s: %s has sha256 %s, the manifest says %s: refusing the image (rebuild it or restore the file)",
		e.Image, e.File, e.Got, e.Want)
}

// Store is a directory of images, one subdirectory each.
type Store struct {
	Dir string // STATE/images
}

// ImageDir is the directory of image name.
func (s Store) ImageDir(name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	return filepath.Join(s.Dir, name), nil
}

// Load reads and validates an image's manifest. Older busybox manifests
// (no schema) are converted.
func (s Store) Load(name string) (*Manifest, error) {
	dir, err := s.ImageDir(name)
	if err != nil {
		return nil, err
	}
	data, err := readManifest(filepath.Join(dir, ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (no %s in %s)", ErrNotFound, name, ManifestName, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	m, err := decodeManifest(name, data)
	if err != nil {
		return nil, fmt.Errorf("image %s: %s: %w", name, ManifestName, err)
	}
	return m, nil
}

func readManifest(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxManifestSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, maxManifestSize)
	}
	return data, nil
}

// LegacyManifest is the busybox builder's manifest before the registry
// existed: a kernel and an initrd with their digests.
type LegacyManifest struct {
	KernelVersion string   `json:"kernel_version"`
	Kernel        string   `json:"kernel"`
	KernelSHA256  string   `json:"kernel_sha256"`
	Initrd        string   `json:"initrd"`
	InitrdSHA256  string   `json:"initrd_sha256"`
	Modules       []string `json:"modules"`
}

func decodeManifest(name string, data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m.Schema == 0 {
		var old LegacyManifest
		if err := json.Unmarshal(data, &old); err != nil {
			return nil, err
		}
		m = Manifest{Schema: SchemaVersion, Name: name, Version: old.KernelVersion, Kind: "initramfs",
			Files: []File{{Role: RoleKernel, Name: filepath.Base(old.Kernel), SHA256: old.KernelSHA256, Size: -1},
				{Role: RoleInitrd, Name: filepath.Base(old.Initrd), SHA256: old.InitrdSHA256, Size: -1}}}
	}
	if m.Schema != SchemaVersion {
		return nil, fmt.Errorf("schema %d is not supported (this build reads %d)", m.Schema, SchemaVersion)
	}
	if m.Name != name {
		return nil, fmt.Errorf("manifest names image %q, its directory %q", m.Name, name)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Entry is an image in a listing; Err is set for a directory whose
// manifest cannot be read, so a broken image shows up instead of vanishing.
type Entry struct {
	Name     string    `json:"name"`
	Manifest *Manifest `json:"manifest,omitempty"`
	Err      string    `json:"error,omitempty"`
}

// List returns every image directory, sorted by name. Names that are not
// image names (hidden build directories, user-data files) are skipped. A
// missing store is empty.
func (s Store) List() ([]Entry, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	var out []Entry
	for _, e := range ents {
		if !e.IsDir() || CheckName(e.Name()) != nil {
			continue
		}
		m, err := s.Load(e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // a directory that is not an image
		}
		ent := Entry{Name: e.Name(), Manifest: m}
		if err != nil {
			ent.Err = err.Error()
		}
		out = append(out, ent)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Path returns the path of an image's file with the given role, after
// checking the manifest (not the file's digest: use Open or Verify).
func (s Store) Path(name, role string) (string, *File, error) {
	m, err := s.Load(name)
	if err != nil {
		return "", nil, err
	}
	f := m.File(role)
	if f == nil {
		return "", nil, fmt.Errorf("%w: image %s has no %s", ErrNotFound, name, role)
	}
	return filepath.Join(s.Dir, name, f.Name), f, nil
}

// Open opens an image's file of the given role for reading after checking
// its size and SHA-256 against the manifest; the returned file is
// positioned at its start. The digest is computed on the descriptor that
// is returned, so a file swapped between the check and the use cannot
// slip through (a writer changing it in place still could: the store is
// root's alone, 0700, for that reason).
func (s Store) Open(name, role string) (*os.File, *File, error) {
	return s.open(name, role, true)
}

// OpenForCopy is Open without hashing: size and file type are checked, and
// the caller must check the SHA-256 of what it reads against the returned
// File (as storage.Service.Import does with its required digest), so that a
// large disk template is read once, not twice.
func (s Store) OpenForCopy(name, role string) (*os.File, *File, error) {
	return s.open(name, role, false)
}

func (s Store) open(name, role string, hash bool) (*os.File, *File, error) {
	p, mf, err := s.Path(name, role)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, fmt.Errorf("image %s: %w", name, err)
	}
	if err := checkFile(name, f, mf, hash); err != nil {
		f.Close()
		return nil, nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, mf, nil
}

func checkFile(image string, f *os.File, mf *File, hash bool) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("image %s: %s: %w", image, mf.Name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("image %s: %s is not a regular file", image, mf.Name)
	}
	if mf.Size >= 0 && fi.Size() != mf.Size {
		return &DigestError{Image: image, File: mf.Name, WantSize: mf.Size, GotSize: fi.Size()}
	}
	if !hash {
		return nil
	}
	sum, err := HashReader(f)
	if err != nil {
		return fmt.Errorf("image %s: %s: %w", image, mf.Name, err)
	}
	if !strings.EqualFold(sum, mf.SHA256) {
		return &DigestError{Image: image, File: mf.Name, Want: mf.SHA256, Got: sum}
	}
	return nil
}

// FileCheck is the result of verifying one file.
type FileCheck struct {
	Role  string `json:"role"`
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Verify checks every file of an image against its manifest. The error is
// the first mismatch (a *DigestError when digests differ); checks lists
// every file either way.
func (s Store) Verify(name string) ([]FileCheck, error) {
	m, err := s.Load(name)
	if err != nil {
		return nil, err
	}
	var checks []FileCheck
	var first error
	for i := range m.Files {
		mf := &m.Files[i]
		err := func() error {
			f, err := os.Open(filepath.Join(s.Dir, name, mf.Name))
			if err != nil {
				return fmt.Errorf("image %s: %w", name, err)
			}
			defer f.Close()
			return checkFile(name, f, mf, true)
		}()
		c := FileCheck{Role: mf.Role, Name: mf.Name, OK: err == nil}
		if err != nil {
			c.Error = err.Error()
			if first == nil {
				first = err
			}
		}
		checks = append(checks, c)
	}
	return checks, first
}

// HashReader returns the hex SHA-256 of everything r yields.
func HashReader(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// HashFile returns the hex SHA-256 and size of a file.
func HashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// BootFiles returns the paths of image name's kernel and initrd ("" when
// the image has none) after checking both against the manifest, size and
// SHA-256.
func (s Store) BootFiles(name string) (kernel, initrd string, err error) {
	m, err := s.Load(name)
	if err != nil {
		return "", "", err
	}
	paths := map[string]string{}
	for _, role := range []string{RoleKernel, RoleInitrd} {
		if m.File(role) == nil {
			continue
		}
		f, mf, err := s.Open(name, role) // size and SHA-256 against the manifest
		if err != nil {
			return "", "", err
		}
		f.Close()
		paths[role] = filepath.Join(s.Dir, name, mf.Name)
	}
	return paths[RoleKernel], paths[RoleInitrd], nil
}

// CheckBoot reports whether kernel and initrd (paths from a VM definition)
// are image name's own files with the manifest's digests: a VM defined from
// an image boots nothing else.
func (s Store) CheckBoot(name, kernel, initrd string) error {
	k, i, err := s.BootFiles(name)
	if err != nil {
		return err
	}
	for _, c := range []struct{ role, got, want string }{{RoleKernel, kernel, k}, {RoleInitrd, initrd, i}} {
		if c.got != c.want {
			return fmt.Errorf("image %s: the definition's %s is %q, not the image's %q", name, c.role, c.got, c.want)
		}
	}
	return nil
}
