// Package debian builds Bulwark's Debian server images: a root file system
// made by mmdebstrap from Debian's package archive (systemd, a serial
// getty, Bulwark's small guest units, the chosen packages), packed as an
// ext4 disk template (qcow2 or raw), with the kernel and initrd taken out
// of it for direct boot on microvm with the root on virtio-blk. The result
// goes into the image registry (internal/imagestore) with its provenance.
//
// Builds are cached: the cache key is a SHA-256 over every input (options,
// package list, the guest files Bulwark adds, SOURCE_DATE_EPOCH and the
// SHA-256 of each suite's InRelease, which pins every package version the
// archive offers). A build whose key matches the stored image's verifies
// and reuses it.
package debian

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
)

// Defaults of Options.
const (
	DefaultName           = "debian-12"
	DefaultSuite          = "bookworm"
	DefaultMirror         = "http://deb.debian.org/debian"
	DefaultSecurityMirror = "http://deb.debian.org/debian-security"
	DefaultDiskSize       = 2 << 30
	DefaultFormat         = "qcow2"
)

// BasePackages are always installed (mmdebstrap's minbase variant adds the
// Essential set): an init system with a serial getty, udev, dbus for
// logind (which powers off on the ACPI button), the network tools the
// guest setup uses, the cloud kernel (virtio drivers as modules) with
// initramfs-tools, and e2fsprogs for the root's fsck and online growth.
var BasePackages = []string{
	"systemd", "systemd-sysv", "udev", "dbus", "iproute2", "iputils-ping", "netbase", "procps",
	"kmod", "linux-image-cloud-amd64", "initramfs-tools", "e2fsprogs",
}

// InitramfsModules are put in the initrd and loaded by it, so the root on
// virtio-blk is found on microvm (virtio-mmio) and q35 (virtio-pci) alike:
// MODULES=list keeps the initrd small, which matters when TCG decompresses
// it. crc32c is ext4's checksum; initramfs-tools does not follow softdeps.
var InitramfsModules = []string{"virtio_mmio", "virtio_pci", "virtio_blk", "ext4", "crc32c_generic", "crc32c_intel"}

// Cmdline is what the image's kernel needs: the root file system is the
// whole first virtio disk (no partition table, so a larger volume is grown
// with resize2fs alone).
const Cmdline = "root=/dev/vda rw"

// builderRevision changes whenever the build steps change in a way that
// alters the output, so old cache entries stop matching.
const builderRevision = "debian-builder/2"

//go:embed guest
var guestFS embed.FS

// Options are the inputs of a build. Zero values take the defaults above.
type Options struct {
	Name           string   // image name (directory under the store)
	Suite          string   // only bookworm is tested
	Mirror         string   // Debian archive
	SecurityMirror string   // Debian security archive; "-" leaves it out
	Packages       []string // extra packages, e.g. openssh-server, nginx
	// SourceDateEpoch fixes every timestamp the tools allow; 0 takes the
	// newest Date of the suites' InRelease files, so the same archive state
	// gives the same value.
	SourceDateEpoch int64
	DiskSize        int64  // bytes of the root file system; default 2 GiB
	Format          string // "qcow2" (default) or "raw"
	Rebuild         bool   // ignore a matching cached image
	StoreDir        string // STATE/images
	BulwarkVersion  string // recorded in the provenance
	Log             io.Writer
}

func (o Options) withDefaults() (Options, error) {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Suite == "" {
		o.Suite = DefaultSuite
	}
	if o.Mirror == "" {
		o.Mirror = DefaultMirror
	}
	if o.SecurityMirror == "" {
		o.SecurityMirror = DefaultSecurityMirror
	}
	if o.DiskSize == 0 {
		o.DiskSize = DefaultDiskSize
	}
	if o.Format == "" {
		o.Format = DefaultFormat
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.StoreDir == "" {
		return o, fmt.Errorf("debian image: StoreDir is required")
	}
	if o.Format != "qcow2" && o.Format != "raw" {
		return o, fmt.Errorf("debian image: format %q: qcow2 or raw", o.Format)
	}
	if o.DiskSize < 512<<20 {
		return o, fmt.Errorf("debian image: disk size %d: at least 512 MiB", o.DiskSize)
	}
	if !validWord(o.Suite) {
		return o, fmt.Errorf("debian image: suite %q: letters, digits and '-' only", o.Suite)
	}
	for _, m := range []string{o.Mirror, o.SecurityMirror} {
		if m != "-" && !validMirror(m) {
			return o, fmt.Errorf("debian image: mirror %q: an http:// or https:// URL without spaces", m)
		}
	}
	for _, p := range o.Packages {
		if !validPackage(p) {
			return o, fmt.Errorf("debian image: package %q: not a Debian package name (lower-case letters, digits, + - .)", p)
		}
	}
	return o, nil
}

// packages is the sorted, de-duplicated list handed to mmdebstrap.
func (o Options) packages() []string {
	all := append(slices.Clone(BasePackages), o.Packages...)
	slices.Sort(all)
	return slices.Compact(all)
}

// sources are the archive lines, in the order apt sees them.
func (o Options) sources() []string {
	s := []string{
		"deb " + o.Mirror + " " + o.Suite + " main",
		"deb " + o.Mirror + " " + o.Suite + "-updates main",
	}
	if o.SecurityMirror != "-" {
		s = append(s, "deb "+o.SecurityMirror+" "+o.Suite+"-security main")
	}
	return s
}

// keyInputs is everything that decides a build's output. Its JSON encoding
// (fields in this order, maps sorted by encoding/json) is hashed.
type keyInputs struct {
	Builder  string            `json:"builder"`
	Suite    string            `json:"suite"`
	Sources  []string          `json:"sources"`
	Arch     string            `json:"arch"`
	Variant  string            `json:"variant"`
	Packages []string          `json:"packages"`
	Modules  []string          `json:"initramfs_modules"`
	Guest    string            `json:"guest_files_sha256"`
	DiskSize int64             `json:"disk_size"`
	Format   string            `json:"format"`
	SDE      int64             `json:"source_date_epoch"`
	Archive  map[string]string `json:"archive,omitempty"`
}

// cacheKey returns the SHA-256 of the inputs. archive nil gives the key of
// the options alone (used when the archive cannot be reached).
func cacheKey(o Options, sde int64, archive map[string]string) string {
	in := keyInputs{Builder: builderRevision, Suite: o.Suite, Sources: o.sources(), Arch: "amd64",
		Variant: "minbase", Packages: o.packages(), Modules: InitramfsModules, Guest: guestDigest(),
		DiskSize: o.DiskSize, Format: o.Format, SDE: sde, Archive: archive}
	b, err := json.Marshal(in)
	if err != nil {
		panic(err) // plain strings and numbers
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// guestDigest hashes the guest files Bulwark adds (names and contents).
func guestDigest() string {
	h := sha256.New()
	ents, _ := fs.ReadDir(guestFS, "guest")
	for _, e := range ents {
		b, _ := fs.ReadFile(guestFS, "guest/"+e.Name())
		fmt.Fprintf(h, "%s %d\n", e.Name(), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func validWord(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validPackage follows Debian policy 5.6.1 (lower-case letters, digits,
// '+', '-', '.', at least two characters, starting alphanumeric); it also
// keeps option-like or shell-special words away from mmdebstrap.
func validPackage(s string) bool {
	if len(s) < 2 || len(s) > 128 || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func validMirror(s string) bool {
	return (strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")) &&
		!strings.ContainsAny(s, " \t\n\"'\\") && len(s) < 512
}
