package storage

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// Formats of volume files.
const (
	FormatRaw   = "raw"
	FormatQcow2 = "qcow2"
)

// DefaultPool is the pool every daemon has, STATE/storage/default.
const DefaultPool = "default"

// Limits. A volume's size bounds what one API call can ask of a pool;
// admission against free space is checked where the bytes are written
// (import) and left to thin provisioning elsewhere.
const (
	MinVolumeSize = 1 << 20  // 1 MiB
	MaxVolumeSize = 64 << 40 // 64 TiB
	// sizeAlign: qemu-img rounds sizes up to sectors; we ask for whole
	// 512-byte sectors so what is recorded is what exists.
	sizeAlign = 512
)

// Volume is one disk image in a pool, as recorded in the store.
type Volume struct {
	Pool   string `json:"pool"`
	Name   string `json:"name"`
	Format string `json:"format"`
	Size   int64  `json:"size"` // virtual size in bytes
	// Base is the NAME of the volume (in the same pool) this one is a thin
	// qcow2 overlay on; "" for a self-contained volume. It is the only
	// source of truth for the backing chain: headers are checked against
	// it, never followed.
	Base string `json:"base,omitempty"`
	// SHA256 is the digest the file had when it was imported ("" when the
	// volume was created or cloned here).
	SHA256 string `json:"sha256,omitempty"`
	// Pristine is set by an import and cleared, and recorded, before the
	// file is first opened for writing (a read-write attach, a resize):
	// while it is set, SHA256 is the digest of the file as it is. Records
	// made before this field existed lack it, so no digest is claimed for
	// a file that may have been written.
	Pristine bool      `json:"pristine,omitempty"`
	Created  time.Time `json:"created"`
}

// ContentSHA256 is the SHA-256 of the volume's file as it is now, as far
// as the records know: the import's digest while the file has never been
// opened for writing, else "".
func (v Volume) ContentSHA256() string {
	if !v.Pristine {
		return ""
	}
	return v.SHA256
}

// Ref returns "POOL/NAME", how VM definitions and the store name a volume.
func (v Volume) Ref() string { return v.Pool + "/" + v.Name }

// Object returns the access-control path of the volume.
func (v Volume) Object() string { return ObjectPath(v.Pool, v.Name) }

// FileName is the volume's file in its pool directory.
func (v Volume) FileName() string { return v.Name + "." + v.Format }

// ObjectPath is the access-control path of a volume:
// /storage/POOL/volumes/NAME (collections sit at odd depths of an object
// path, so "volumes" names the collection inside a pool).
func ObjectPath(pool, name string) string { return "/storage/" + pool + "/volumes/" + name }

// PoolPath is the access-control path of a pool.
func PoolPath(pool string) string { return "/storage/" + pool }

// Errors callers branch on; every error of this package wraps one of them
// and says what was refused, for which volume and why.
var (
	ErrInvalid     = errors.New("invalid request")
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrUnavailable = errors.New("pool unavailable")
	ErrNoSpace     = errors.New("not enough space")
)

// ValidateName checks a pool or volume name: VM-name rules (a DNS label),
// so it cannot hold a path separator, "..", or anything a shell or QEMU
// option string would interpret.
func ValidateName(field, name string) error {
	if err := vm.ValidateName(field, name); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// ParseRef splits "POOL/NAME" and validates both parts.
func ParseRef(ref string) (pool, name string, err error) {
	pool, name, ok := strings.Cut(ref, "/")
	if !ok {
		return "", "", fmt.Errorf("%w: volume %q: want POOL/NAME", ErrInvalid, ref)
	}
	if err := ValidateName("pool", pool); err != nil {
		return "", "", err
	}
	if err := ValidateName("volume", name); err != nil {
		return "", "", err
	}
	return pool, name, nil
}

// ValidateFormat checks a volume format.
func ValidateFormat(f string) error {
	if f != FormatRaw && f != FormatQcow2 {
		return fmt.Errorf("%w: format %q is not raw or qcow2", ErrInvalid, f)
	}
	return nil
}

// ValidateSize checks a requested virtual size.
func ValidateSize(size int64) error {
	switch {
	case size < MinVolumeSize:
		return fmt.Errorf("%w: size %d is below the minimum of %d bytes (1 MiB)", ErrInvalid, size, MinVolumeSize)
	case size > MaxVolumeSize:
		return fmt.Errorf("%w: size %d is above the maximum of %d bytes (64 TiB)", ErrInvalid, size, int64(MaxVolumeSize))
	case size%sizeAlign != 0:
		return fmt.Errorf("%w: size %d is not a multiple of %d bytes", ErrInvalid, size, sizeAlign)
	}
	return nil
}

// CheckResize says whether a volume may grow to size. Shrinking is
// refused: the guest's file systems end where the disk ended, and
// qemu-img would cut them off.
func CheckResize(v Volume, size int64, clones int) error {
	if err := ValidateSize(size); err != nil {
		return err
	}
	if size < v.Size {
		return fmt.Errorf("%w: volume %s: resize to %d bytes refused: below its current size of %d bytes (shrinking would cut off the guest's data)", ErrInvalid, v.Ref(), size, v.Size)
	}
	if clones > 0 {
		return fmt.Errorf("%w: volume %s: resize refused: it is the base of %d clone(s), which must see it unchanged", ErrConflict, v.Ref(), clones)
	}
	return nil
}

// ParseSize reads a size such as "8G", "512M", "1048576" or "10GiB"
// (binary units; suffixes K, M, G, T, with optional "iB" or "B").
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K', 'k':
			mult = 1 << 10
		case 'M', 'm':
			mult = 1 << 20
		case 'G', 'g':
			mult = 1 << 30
		case 'T', 't':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	if t == "" || len(t) > 15 {
		return 0, fmt.Errorf("%w: size %q: want a number with an optional K, M, G or T suffix", ErrInvalid, s)
	}
	var n int64
	for _, c := range t {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: size %q: want a number with an optional K, M, G or T suffix", ErrInvalid, s)
		}
		n = n*10 + int64(c-'0')
	}
	if n > MaxVolumeSize/mult+1 {
		return 0, fmt.Errorf("%w: size %q is too large", ErrInvalid, s)
	}
	return n * mult, nil
}

// ValidateDigest checks a SHA-256 given as 64 lower-case hex digits.
func ValidateDigest(d string) error {
	if len(d) != 64 {
		return fmt.Errorf("%w: sha256 %q: want 64 hex digits", ErrInvalid, clip(d))
	}
	for _, c := range d {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: sha256 %q: want 64 lower-case hex digits", ErrInvalid, clip(d))
		}
	}
	return nil
}

// CheckSpace says whether need bytes fit in a pool with free bytes left,
// keeping reserve free (a full pool stops every VM writing to it).
func CheckSpace(pool string, free, need, reserve uint64) error {
	if need > free || free-need < reserve {
		return fmt.Errorf("%w: pool %s: %d bytes needed, %d free (keeping %d in reserve)", ErrNoSpace, pool, need, free, reserve)
	}
	return nil
}
