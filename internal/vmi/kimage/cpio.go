package kimage

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Limits on an initramfs read for its modules. Bulwark's own initrd is a
// few MiB; Debian's full initramfs about 40 MiB unpacked.
const (
	MaxInitrdUnpacked = 512 << 20 // all archives of an initrd together
	maxCPIOEntries    = 1 << 16
	maxCPIONameLen    = 4096
	MaxModuleFile     = 64 << 20 // one .ko, decompressed
	maxInitrdSegments = 16       // concatenated archives (early microcode, main)
)

const (
	cpioNewc      = "070701"
	cpioNewcCRC   = "070702"
	cpioHeaderLen = 110
	cpioTrailer   = "TRAILER!!!"
	cpioTypeMask  = 0o170000
	cpioTypeFile  = 0o100000
)

// CPIOEntry is one member of a newc archive; Data aliases the archive.
type CPIOEntry struct {
	Name string
	Mode uint32
	Data []byte
}

// ReadCPIO walks one newc ("070701" or "070702") archive, calling fn for
// each entry until the trailer, and returns the bytes after the trailer's
// padding (the next archive of a concatenated initramfs, if any). Every
// size is checked against what is left; names are bounded.
func ReadCPIO(b []byte, fn func(CPIOEntry) error) (rest []byte, err error) {
	off := 0
	for n := 0; ; n++ {
		if n >= maxCPIOEntries {
			return nil, fmt.Errorf("cpio: more than %d entries", maxCPIOEntries)
		}
		if len(b)-off < cpioHeaderLen {
			return nil, fmt.Errorf("cpio: entry %d at %d: truncated header", n, off)
		}
		h := b[off : off+cpioHeaderLen]
		if m := string(h[:6]); m != cpioNewc && m != cpioNewcCRC {
			return nil, fmt.Errorf("cpio: entry %d at %d: magic %q is not newc", n, off, m)
		}
		var f [13]uint32 // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
		for i := range f {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				return nil, fmt.Errorf("cpio: entry %d at %d: field %d: %q is not hex", n, off, i, h[6+8*i:14+8*i])
			}
			f[i] = uint32(v)
		}
		mode, size, nameLen := f[1], uint64(f[6]), uint64(f[11])
		if nameLen == 0 || nameLen > maxCPIONameLen {
			return nil, fmt.Errorf("cpio: entry %d at %d: name length %d", n, off, nameLen)
		}
		nameEnd := uint64(off) + cpioHeaderLen + nameLen
		if nameEnd > uint64(len(b)) {
			return nil, fmt.Errorf("cpio: entry %d at %d: name runs past the archive", n, off)
		}
		name := string(b[off+cpioHeaderLen : nameEnd-1]) // NUL-terminated
		dataStart := align4(nameEnd)
		dataEnd := dataStart + size
		if dataEnd > uint64(len(b)) {
			return nil, fmt.Errorf("cpio: %s: %d bytes run past the archive", name, size)
		}
		if name == cpioTrailer {
			next := align4(dataEnd)
			if next > uint64(len(b)) {
				next = uint64(len(b))
			}
			return b[next:], nil
		}
		if err := fn(CPIOEntry{Name: name, Mode: mode, Data: b[dataStart:dataEnd]}); err != nil {
			return nil, err
		}
		off = int(align4(dataEnd))
		if off > len(b) {
			return nil, fmt.Errorf("cpio: %s: padding runs past the archive", name)
		}
	}
}

func align4(v uint64) uint64 { return (v + 3) &^ 3 }

// ModuleTree is the set of kernel modules an initramfs carries, by module
// name ('-' normalised to '_', as the kernel names them), each the raw
// bytes of its .ko (possibly still compressed: see ModuleTree.Ko).
type ModuleTree struct {
	files map[string]moduleFile
}

type moduleFile struct {
	path string
	data []byte
}

// Len is the number of modules.
func (t *ModuleTree) Len() int { return len(t.files) }

// Has reports whether the tree carries module name.
func (t *ModuleTree) Has(name string) bool { _, ok := t.files[name]; return ok }

// Path is where module name lies in the archive.
func (t *ModuleTree) Path(name string) string { return t.files[name].path }

// Ko returns module name's ELF object, decompressed (.ko.gz, .ko.xz,
// .ko.zst) and bounded by MaxModuleFile.
func (t *ModuleTree) Ko(name string) ([]byte, error) {
	f, ok := t.files[name]
	if !ok {
		return nil, fmt.Errorf("module %s is not in the initramfs", name)
	}
	if bytes.HasPrefix(f.data, []byte("\x7fELF")) {
		return f.data, nil
	}
	var (
		out []byte
		err error
	)
	switch detect(f.data) {
	case formatGzip:
		out, err = gunzip(f.data, MaxModuleFile)
	case formatXZ:
		out, err = unxz(f.data, MaxModuleFile)
	case formatZstd:
		out, err = unzstd(f.data, MaxModuleFile)
	default:
		return nil, fmt.Errorf("%s: neither ELF nor gzip, xz or zstd", f.path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.path, err)
	}
	return out, nil
}

// ModuleName is the kernel's name for a module file: its base name without
// the .ko[.gz|.xz|.zst] suffix, '-' normalised to '_'; "" if p is not a
// module file.
func ModuleName(p string) string {
	base := path.Base(p)
	for _, ext := range []string{".ko", ".ko.gz", ".ko.xz", ".ko.zst"} {
		if n, ok := strings.CutSuffix(base, ext); ok && n != "" {
			return strings.ReplaceAll(n, "-", "_")
		}
	}
	return ""
}

// ReadModuleTree unpacks an initramfs (a series of newc archives, each
// plain or compressed with gzip, xz or zstd, as the kernel accepts them)
// and indexes its regular files that are kernel modules. A module name
// found twice is an error: which one the guest loaded would be unknown.
func ReadModuleTree(initrd []byte) (*ModuleTree, error) {
	t := &ModuleTree{files: map[string]moduleFile{}}
	total := 0
	b := initrd
	for seg := 0; ; seg++ {
		b = bytes.TrimLeft(b, "\x00") // archives are padded apart with NULs
		if len(b) == 0 {
			break
		}
		if seg >= maxInitrdSegments {
			return nil, fmt.Errorf("initramfs: more than %d archives", maxInitrdSegments)
		}
		if !bytes.HasPrefix(b, []byte("0707")) {
			// A compressed archive takes the rest of the file: its decoder
			// stops at the end of its stream, and what follows (rarely
			// anything) is not looked at.
			out, err := decompressInitrd(b, int64(MaxInitrdUnpacked-total))
			if err != nil {
				return nil, fmt.Errorf("initramfs archive %d: %w", seg, err)
			}
			total += len(out)
			b = out
		}
		rest, err := ReadCPIO(b, func(e CPIOEntry) error {
			name := ModuleName(e.Name)
			if e.Mode&cpioTypeMask != cpioTypeFile || name == "" {
				return nil
			}
			if old, dup := t.files[name]; dup {
				return fmt.Errorf("initramfs: module %s twice (%s, %s)", name, old.path, e.Name)
			}
			t.files[name] = moduleFile{path: e.Name, data: e.Data}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("initramfs archive %d: %w", seg, err)
		}
		b = rest
	}
	return t, nil
}

func decompressInitrd(b []byte, limit int64) ([]byte, error) {
	if limit <= 0 {
		return nil, ErrTooLarge
	}
	switch f := detect(b); f {
	case formatGzip:
		return gunzip(b, limit)
	case formatZstd:
		return unzstd(b, limit)
	case formatXZ:
		return unxz(b, limit)
	case "":
		return nil, errors.New("neither a cpio archive nor gzip, xz or zstd")
	default:
		return nil, fmt.Errorf("%s-compressed archives are not supported", f)
	}
}
