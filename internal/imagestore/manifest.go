// Package imagestore is Bulwark's image registry: each image is a directory
// STATE/images/NAME holding boot artefacts (kernel, initrd, disk template)
// and a manifest.json with their SHA-256 digests and the image's
// provenance (how, from what and with which tools it was built).
//
// Digests are checked on use: Open hashes a file before handing it out and
// refuses it when the digest differs from the manifest, so a file changed
// after the build (by accident or by an attacker with write access to the
// store) is never booted. Verify checks every file of an image.
//
// The package does no building; internal/image (busybox initramfs) and
// internal/image/debian (Debian server images) write into it.
package imagestore

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// SchemaVersion is the manifest format this package writes. Manifests
// without a schema are the busybox builder's older format (LegacyManifest).
const SchemaVersion = 1

// Roles of an image's files.
const (
	RoleKernel = "kernel"
	RoleInitrd = "initrd"
	RoleDisk   = "disk"
)

// Manifest is manifest.json of an image directory.
type Manifest struct {
	Schema  int    `json:"schema"`
	Name    string `json:"name"`
	Version string `json:"version"`
	// Kind is "initramfs" (the guest runs from its initrd) or "disk" (root
	// file system on the disk template, booted with Cmdline).
	Kind  string `json:"kind"`
	Files []File `json:"files"`
	// Cmdline is what the image's kernel needs on its command line (the
	// root device); VM definitions add it to their own.
	Cmdline    string      `json:"cmdline,omitempty"`
	Provenance *Provenance `json:"provenance,omitempty"`
}

// File is one artefact of an image, stored next to the manifest.
type File struct {
	Role   string `json:"role"`   // RoleKernel, RoleInitrd or RoleDisk
	Name   string `json:"name"`   // base name inside the image directory
	SHA256 string `json:"sha256"` // hex, of the file's bytes
	Size   int64  `json:"size"`
	// Format is the disk format ("qcow2" or "raw"); empty for kernel and
	// initrd. VirtualSize is the disk's size as the guest sees it.
	Format      string `json:"format,omitempty"`
	VirtualSize int64  `json:"virtual_size,omitempty"`
}

// Provenance records how an image was built, enough to rebuild it and to
// judge whether two builds should have the same bytes.
type Provenance struct {
	Builder string `json:"builder"` // e.g. "bulwark image build --distro debian"
	// BulwarkVersion is the builder's own version and commit.
	BulwarkVersion string `json:"bulwark_version,omitempty"`
	Tools          []Tool `json:"tools,omitempty"`
	Distro         string `json:"distro,omitempty"`
	Suite          string `json:"suite,omitempty"`
	Architecture   string `json:"architecture,omitempty"`
	Variant        string `json:"variant,omitempty"`
	// Sources are the archive lines the packages came from, and Archive the
	// SHA-256 of each suite's InRelease at build time (which pins every
	// package version the build could see).
	Sources []string          `json:"sources,omitempty"`
	Archive map[string]string `json:"archive,omitempty"`
	// Requested are the packages asked for (base set plus --packages);
	// Installed every package in the image with its exact version.
	Requested []string  `json:"requested,omitempty"`
	Installed []Package `json:"installed,omitempty"`
	// Inputs are further build inputs by name (kernel version, module list,
	// digest of the guest files Bulwark adds, ...).
	Inputs          map[string]string `json:"inputs,omitempty"`
	SourceDateEpoch int64             `json:"source_date_epoch,omitempty"`
	BuiltAt         time.Time         `json:"built_at"`
	BuildSeconds    float64           `json:"build_seconds,omitempty"`
	// CacheKey is the SHA-256 over every input above; a build whose key
	// matches an existing image reuses it.
	CacheKey string `json:"cache_key,omitempty"`
	// RootTreeSHA256 digests the root file system's contents (a sorted,
	// time-clamped tar of it): equal for reproducible builds even where
	// the disk template's bytes are not.
	RootTreeSHA256 string `json:"root_tree_sha256,omitempty"`
	// Reproducibility says what is and is not byte-for-byte reproducible.
	Reproducibility string `json:"reproducibility,omitempty"`
}

// Tool is a program that took part in a build.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Package is an installed distribution package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// File returns the manifest's file with the given role, or nil.
func (m *Manifest) File(role string) *File {
	for i := range m.Files {
		if m.Files[i].Role == role {
			return &m.Files[i]
		}
	}
	return nil
}

// ErrInvalidName is wrapped by errors about image names.
var ErrInvalidName = errors.New("invalid image name")

// CheckName accepts image names usable as a directory name and as an
// object path segment (/images/NAME): 1 to 63 lower-case letters, digits
// and '-', starting and ending with a letter or digit.
func CheckName(name string) error {
	if len(name) == 0 || len(name) > 63 {
		return fmt.Errorf("%w %q: 1 to 63 characters", ErrInvalidName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(name)-1
		if !ok {
			return fmt.Errorf("%w %q: lower-case letters, digits and '-' (not first or last) only", ErrInvalidName, name)
		}
	}
	return nil
}

// Validate checks what the store relies on: a valid name, known roles at
// most once each, file names that stay inside the image directory, and
// well-formed digests. A manifest is data from disk, so nothing in it is
// trusted to name a path.
func (m *Manifest) Validate() error {
	if err := CheckName(m.Name); err != nil {
		return err
	}
	if len(m.Files) == 0 {
		return fmt.Errorf("image %s: manifest lists no files", m.Name)
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		switch f.Role {
		case RoleKernel, RoleInitrd, RoleDisk:
		default:
			return fmt.Errorf("image %s: unknown file role %q", m.Name, f.Role)
		}
		if seen[f.Role] {
			return fmt.Errorf("image %s: two %s files", m.Name, f.Role)
		}
		seen[f.Role] = true
		if f.Name == "" || f.Name != filepath.Base(f.Name) || f.Name == "." || f.Name == ".." ||
			f.Name == ManifestName || f.Name[0] == '.' {
			return fmt.Errorf("image %s: %s file name %q is not a plain file name", m.Name, f.Role, f.Name)
		}
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("image %s: %s: sha256 %q is not 64 hex digits", m.Name, f.Name, f.SHA256)
		}
		if f.Role == RoleDisk && f.Format != "qcow2" && f.Format != "raw" {
			return fmt.Errorf("image %s: disk format %q is not qcow2 or raw", m.Name, f.Format)
		}
	}
	if !seen[RoleKernel] {
		return fmt.Errorf("image %s: manifest has no kernel", m.Name)
	}
	return nil
}
