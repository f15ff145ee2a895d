package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// qcow2 header layout (QEMU docs/interop/qcow2.txt). All fields are
// big-endian. Offsets are from the start of the file.
const (
	qcowMagic = 0x514649fb // "QFI\xfb"

	qcowV2HeaderLen = 72  // version 2: fixed header, no feature fields
	qcowV3HeaderLen = 104 // version 3: minimum header_length

	// Header extension types.
	extEnd           = 0x00000000
	extBackingFormat = 0xe2792aca
	extFeatureTable  = 0x6803f857
	extBitmaps       = 0x23852875
	extCrypto        = 0x0537be77
	extDataFile      = 0x44415441 // "DATA": external data file name

	// Incompatible feature bits.
	incompatDirty       = 1 << 0
	incompatCorrupt     = 1 << 1
	incompatDataFile    = 1 << 2
	incompatCompression = 1 << 3
	incompatExtendedL2  = 1 << 4
	incompatKnown       = incompatDirty | incompatCorrupt | incompatDataFile | incompatCompression | incompatExtendedL2
)

// Implementation limits of the parser. The header, its extensions and the
// backing file name all live in the image's first cluster, and clusters
// are at most 2 MiB, so HeaderReadLimit bytes hold everything we read.
const (
	HeaderReadLimit   = 2 << 20
	minClusterBits    = 9
	maxClusterBits    = 21
	maxBackingNameLen = 1023 // QEMU's own limit
	maxExtensions     = 64   // QEMU writes at most a handful
	maxExtNameLen     = 4096 // backing-format and data-file names
)

// Qcow2Header is what Bulwark needs to know of a qcow2 image's header: the
// fields that make QEMU open other files (backing file, external data
// file), the ones that make it refuse or misbehave (unknown incompatible
// features, encryption, the corrupt bit) and the virtual size.
type Qcow2Header struct {
	Version       uint32
	ClusterBits   uint32
	Size          uint64 // virtual size in bytes
	CryptMethod   uint32 // 0 none, 1 AES, 2 LUKS
	BackingFile   string // "" when none
	BackingFormat string // from the backing-format extension; "" when none
	DataFile      string // from the external data file extension; "" when none
	Incompatible  uint64
	Autoclear     uint64
	Extensions    []uint32 // extension types in file order, for diagnostics
}

// ErrNotQcow2 says the bytes do not start with the qcow2 magic.
var ErrNotQcow2 = errors.New("not a qcow2 image (no QFI\\xfb magic)")

// HeaderError says why a qcow2 header is malformed. The image is hostile
// input, so every field is checked against the buffer before it is used.
type HeaderError struct {
	Field string
	Msg   string
}

func (e *HeaderError) Error() string { return "qcow2 header: " + e.Field + ": " + e.Msg }

func herr(field, format string, a ...any) error {
	return &HeaderError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// IsQcow2 reports whether b starts with the qcow2 magic.
func IsQcow2(b []byte) bool {
	return len(b) >= 4 && binary.BigEndian.Uint32(b) == qcowMagic
}

// ParseQcow2Header parses the header at the start of b (the first bytes of
// the file, at most HeaderReadLimit of them are looked at). It does no I/O
// and never reads outside b; a name or extension that does not fit in b
// is an error, as is anything QEMU itself would refuse to parse.
func ParseQcow2Header(b []byte) (*Qcow2Header, error) {
	if len(b) > HeaderReadLimit {
		b = b[:HeaderReadLimit]
	}
	if !IsQcow2(b) {
		return nil, ErrNotQcow2
	}
	if len(b) < qcowV2HeaderLen {
		return nil, herr("length", "%d bytes, truncated (a header has at least %d)", len(b), qcowV2HeaderLen)
	}
	be := binary.BigEndian
	h := &Qcow2Header{
		Version:     be.Uint32(b[4:]),
		ClusterBits: be.Uint32(b[20:]),
		Size:        be.Uint64(b[24:]),
		CryptMethod: be.Uint32(b[32:]),
	}
	backingOff, backingLen := be.Uint64(b[8:]), be.Uint32(b[16:])
	if h.Version != 2 && h.Version != 3 {
		return nil, herr("version", "%d is not 2 or 3", h.Version)
	}
	if h.ClusterBits < minClusterBits || h.ClusterBits > maxClusterBits {
		return nil, herr("cluster_bits", "%d out of range %d..%d", h.ClusterBits, minClusterBits, maxClusterBits)
	}
	clusterSize := uint64(1) << h.ClusterBits
	if h.CryptMethod > 2 {
		return nil, herr("crypt_method", "%d is unknown", h.CryptMethod)
	}
	extStart := uint64(qcowV2HeaderLen)
	if h.Version == 3 {
		if len(b) < qcowV3HeaderLen {
			return nil, herr("length", "%d bytes, truncated (a version 3 header has at least %d)", len(b), qcowV3HeaderLen)
		}
		h.Incompatible = be.Uint64(b[72:])
		h.Autoclear = be.Uint64(b[88:])
		hlen := uint64(be.Uint32(b[100:]))
		if hlen < qcowV3HeaderLen || hlen%8 != 0 {
			return nil, herr("header_length", "%d is not a multiple of 8 of at least %d", hlen, qcowV3HeaderLen)
		}
		if hlen > clusterSize {
			return nil, herr("header_length", "%d is larger than a cluster (%d)", hlen, clusterSize)
		}
		extStart = hlen
	}
	if backingOff != 0 || backingLen != 0 {
		if backingLen == 0 || backingLen > maxBackingNameLen {
			return nil, herr("backing_file_size", "%d out of range 1..%d", backingLen, maxBackingNameLen)
		}
		end := backingOff + uint64(backingLen)
		if backingOff < extStart || end < backingOff || end > clusterSize {
			return nil, herr("backing_file_offset", "%d+%d lies outside the first cluster after the header", backingOff, backingLen)
		}
		if end > uint64(len(b)) {
			return nil, herr("backing_file_offset", "%d+%d lies past the end of the data (%d bytes; truncated?)", backingOff, backingLen, len(b))
		}
		h.BackingFile = string(b[backingOff:end])
	}
	if err := h.parseExtensions(b, extStart, clusterSize, backingOff); err != nil {
		return nil, err
	}
	if h.Incompatible&incompatDataFile != 0 && h.DataFile == "" {
		// QEMU then wants the data file from its command line; for us it
		// is just as much an external file.
		h.DataFile = "(given on the command line)"
	}
	return h, nil
}

// parseExtensions walks the header extensions: type (4), length (4), data
// padded to 8 bytes, until the end marker. Only version 3 images and
// version 2 images written by QEMU have them; both use the same format.
func (h *Qcow2Header) parseExtensions(b []byte, off, clusterSize, backingOff uint64) error {
	be := binary.BigEndian
	limit := clusterSize
	if backingOff != 0 && backingOff < limit {
		// Extensions end before the backing file name.
		limit = backingOff
	}
	if limit > uint64(len(b)) {
		limit = uint64(len(b))
	}
	for i := 0; ; i++ {
		if off == limit && h.Version == 2 {
			return nil // version 2 without extensions or end marker
		}
		if i >= maxExtensions {
			return herr("extensions", "more than %d", maxExtensions)
		}
		if off+8 > limit || off+8 < off {
			return herr("extensions", "extension %d at offset %d runs past the header area (%d; truncated?)", i, off, limit)
		}
		typ, n := be.Uint32(b[off:]), uint64(be.Uint32(b[off+4:]))
		off += 8
		if typ == extEnd {
			return nil
		}
		padded := (n + 7) &^ 7
		if off+padded > limit {
			return herr("extensions", "extension %#08x of %d bytes at offset %d runs past the header area (%d)", typ, n, off, limit)
		}
		data := b[off : off+n]
		off += padded
		h.Extensions = append(h.Extensions, typ)
		switch typ {
		case extBackingFormat:
			if n == 0 || n > maxExtNameLen {
				return herr("backing format extension", "length %d out of range", n)
			}
			h.BackingFormat = string(data)
		case extDataFile:
			if n == 0 || n > maxExtNameLen {
				return herr("data file extension", "length %d out of range", n)
			}
			h.DataFile = string(data)
		}
	}
}

// ImportProblem returns why an image with this header may not be
// imported, or nil. An imported image must be self-contained: no backing
// file, no external data file (either would make QEMU or qemu-img open a
// path the uploader chose), no feature QEMU might interpret in a way we do
// not know, no encryption (it would need secrets), not marked corrupt or
// dirty (a dirty image needs a repair that writes to it).
func (h *Qcow2Header) ImportProblem() error {
	switch {
	case h.BackingFile != "":
		return fmt.Errorf("names a backing file %q: imported images must be self-contained (flatten it with qemu-img convert)", clip(h.BackingFile))
	case h.DataFile != "" || h.Incompatible&incompatDataFile != 0:
		return fmt.Errorf("uses an external data file %q: imported images must be self-contained", clip(h.DataFile))
	case h.Incompatible&^incompatKnown != 0:
		return fmt.Errorf("has unknown incompatible features %#x", h.Incompatible&^incompatKnown)
	case h.Incompatible&incompatCorrupt != 0:
		return errors.New("is marked corrupt")
	case h.Incompatible&incompatDirty != 0:
		return errors.New("is marked dirty (not cleanly closed): repair it with qemu-img check -r all first")
	case h.CryptMethod != 0:
		return fmt.Errorf("is encrypted (crypt_method %d): not supported", h.CryptMethod)
	}
	return nil
}

// OpenProblem returns why a volume's file may not be given to QEMU, or
// nil: its header must agree with Bulwark's record of the volume's chain
// (backing is the file name of the recorded base, "" for none). The
// header is re-read at every open, so a header a compromised VMM or anyone
// else rewrote behind Bulwark's back is caught before QEMU sees it.
func (h *Qcow2Header) OpenProblem(backing, backingFormat string) error {
	switch {
	case h.DataFile != "" || h.Incompatible&incompatDataFile != 0:
		return fmt.Errorf("header names an external data file %q that Bulwark did not create", clip(h.DataFile))
	case h.Incompatible&^incompatKnown != 0:
		return fmt.Errorf("header has unknown incompatible features %#x", h.Incompatible&^incompatKnown)
	case h.Incompatible&incompatCorrupt != 0:
		return errors.New("header is marked corrupt")
	case h.CryptMethod != 0:
		return fmt.Errorf("header says encrypted (crypt_method %d)", h.CryptMethod)
	case h.BackingFile != backing:
		if backing == "" {
			return fmt.Errorf("header names a backing file %q but the volume has none on record", clip(h.BackingFile))
		}
		return fmt.Errorf("header names backing file %q, the record says %q", clip(h.BackingFile), backing)
	case backing != "" && h.BackingFormat != backingFormat:
		return fmt.Errorf("header names backing format %q, the record says %q", clip(h.BackingFormat), backingFormat)
	}
	return nil
}

// clip shortens a hostile string for an error message and quotes nothing
// itself (callers use %q, which escapes control bytes).
func clip(s string) string {
	if len(s) > 256 {
		return s[:256] + "..."
	}
	return s
}
