package image

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"slices"
	"strings"
)

// newc mode bits (see cpio(5)); io/fs uses its own encoding, so the archive
// spells out the Unix values the kernel's initramfs unpacker expects.
const (
	cpioModeDir  = 0o040000
	cpioModeFile = 0o100000
	cpioModeChr  = 0o020000
	cpioTrailer  = "TRAILER!!!"
	cpioMagic    = "070701"
)

type cpioEntry struct {
	mode         uint32 // type bits | permissions
	data         []byte
	rmajor, rmin uint32 // device numbers, character devices only
}

// cpioArchive collects entries in memory and writes them in sorted order.
// Everything that would usually come from the build host (timestamps, owners,
// inode numbers, directory-walk order) is fixed here, which is what makes the
// resulting initramfs byte-for-byte reproducible.
type cpioArchive struct {
	entries map[string]cpioEntry
}

func newCPIOArchive() *cpioArchive {
	return &cpioArchive{entries: make(map[string]cpioEntry)}
}

// addDir adds a directory, or sets the permissions of one that already
// exists (for example because it was created implicitly as a parent).
func (a *cpioArchive) addDir(name string, perm fs.FileMode) error {
	name, err := a.prepare(name)
	if err != nil {
		return err
	}
	if e, ok := a.entries[name]; ok && !e.isDir() {
		return fmt.Errorf("cpio: %s already exists and is not a directory", name)
	}
	a.entries[name] = cpioEntry{mode: cpioModeDir | uint32(perm.Perm())}
	return nil
}

// ensureDir creates a missing parent directory without touching the
// permissions of one that was added explicitly.
func (a *cpioArchive) ensureDir(name string) error {
	if e, ok := a.entries[name]; ok {
		if !e.isDir() {
			return fmt.Errorf("cpio: %s already exists and is not a directory", name)
		}
		return nil
	}
	return a.addDir(name, 0o755)
}

func (e cpioEntry) isDir() bool { return e.mode&^0o7777 == cpioModeDir }

// addFile adds a regular file; its parents are created as 0755 directories
// when missing.
func (a *cpioArchive) addFile(name string, perm fs.FileMode, data []byte) error {
	if uint64(len(data)) > math.MaxUint32 {
		return fmt.Errorf("cpio: %s: %d bytes exceeds the newc size limit", name, len(data))
	}
	return a.add(name, cpioEntry{mode: cpioModeFile | uint32(perm.Perm()), data: data})
}

// addCharDev adds a character device node.
func (a *cpioArchive) addCharDev(name string, perm fs.FileMode, major, minor uint32) error {
	return a.add(name, cpioEntry{mode: cpioModeChr | uint32(perm.Perm()), rmajor: major, rmin: minor})
}

func (a *cpioArchive) add(name string, e cpioEntry) error {
	name, err := a.prepare(name)
	if err != nil {
		return err
	}
	if _, ok := a.entries[name]; ok {
		return fmt.Errorf("cpio: duplicate entry %s", name)
	}
	a.entries[name] = e
	return nil
}

// prepare normalises name to the archive's form (relative, no leading "/")
// and makes sure every parent directory exists.
func (a *cpioArchive) prepare(name string) (string, error) {
	name = strings.TrimPrefix(name, "/")
	if name == "" || name != path.Clean(name) || name == ".." || strings.HasPrefix(name, "../") ||
		strings.ContainsRune(name, 0) || name == cpioTrailer {
		return "", fmt.Errorf("cpio: invalid entry name %q", name)
	}
	if dir := path.Dir(name); dir != "." {
		if err := a.ensureDir(dir); err != nil {
			return "", err
		}
	}
	return name, nil
}

// writeTo writes the archive in newc format. Lexicographic order puts every
// directory before its contents, because a parent's name is a prefix of its
// children's names.
func (a *cpioArchive) writeTo(w io.Writer) error {
	bw := bufio.NewWriter(w)
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	slices.Sort(names)
	var off int64
	for i, n := range names {
		e := a.entries[n]
		nlink := uint32(1)
		if e.isDir() {
			nlink = 2
		}
		hdr := newcHeader{ino: uint32(i + 1), mode: e.mode, nlink: nlink,
			size: uint32(len(e.data)), rmajor: e.rmajor, rminor: e.rmin}
		if err := writeNewc(bw, &off, n, hdr, e.data); err != nil {
			return err
		}
	}
	if err := writeNewc(bw, &off, cpioTrailer, newcHeader{nlink: 1}, nil); err != nil {
		return err
	}
	return bw.Flush()
}

// newcHeader holds the header fields that vary between entries; the rest
// (uid, gid, mtime, devmajor, devminor, check) are always zero.
type newcHeader struct {
	ino, mode, nlink, size, rmajor, rminor uint32
}

func writeNewc(w io.Writer, off *int64, name string, h newcHeader, data []byte) error {
	if len(name)+1 > math.MaxUint32 {
		return errors.New("cpio: name too long")
	}
	fields := []uint32{h.ino, h.mode, 0, 0, h.nlink, 0, h.size, 0, 0, h.rmajor, h.rminor,
		uint32(len(name) + 1), 0}
	var sb strings.Builder
	sb.WriteString(cpioMagic)
	for _, f := range fields {
		fmt.Fprintf(&sb, "%08x", f)
	}
	sb.WriteString(name)
	sb.WriteByte(0)
	if err := writePadded(w, off, []byte(sb.String())); err != nil {
		return err
	}
	return writePadded(w, off, data)
}

// writePadded writes b and then zero bytes up to the next 4-byte boundary;
// newc aligns both the header+name and the file data this way.
func writePadded(w io.Writer, off *int64, b []byte) error {
	n, err := w.Write(b)
	*off += int64(n)
	if err != nil {
		return err
	}
	if pad := (4 - *off%4) % 4; pad > 0 {
		n, err = w.Write(make([]byte, pad))
		*off += int64(n)
	}
	return err
}
