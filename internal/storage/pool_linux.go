package storage

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/bulwark-project/bulwark/internal/safefs"
)

// tempPrefix starts the name of every file being made in a pool; such
// files are removed on failure and, after a crash, when the pool opens.
// Volume names cannot start with '.', so no volume file is ever taken for
// one.
const tempPrefix = ".new-"

// reserveBytes is kept free in a pool on import: a full pool stops every
// VM writing to it.
const reserveBytes = 64 << 20

// Pool is one directory of volume files, held open for the daemon's life.
// Files are reached only relative to the held descriptors, never by a path
// from the root, so a renamed or replaced directory cannot redirect them.
type Pool struct {
	Name string
	Path string // for messages and the pool list

	dir *safefs.Dir // opens, renames, removes: no symlink, FIFO or hard link
	// fdir is the same directory as a plain descriptor, passed to
	// qemu-img as fd 3 so that it names files /proc/self/fd/3/NAME.
	fdir *os.File
	mu   sync.Mutex // guards fdir's read position (listing)
}

// PoolInfo is a pool as reported by the API.
type PoolInfo struct {
	Name      string `json:"name"`
	Path      string `json:"path"`
	Capacity  uint64 `json:"capacity"`  // bytes of the file system
	Free      uint64 `json:"free"`      // bytes available to root
	Allocated int64  `json:"allocated"` // bytes used by volume files
	Volumes   int    `json:"volumes"`
	Available bool   `json:"available"`
	Problem   string `json:"problem,omitempty"`
}

// openPool makes the pool directory if needed (root, 0700) and holds it.
// An existing directory must be root's and not reachable by anyone else.
func openPool(name, path string) (*Pool, error) {
	if err := ValidateName("pool", name); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%w: pool %s: directory %q is not an absolute path", ErrInvalid, name, path)
	}
	path = filepath.Clean(path)
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("pool %s: %w", name, err)
	}
	d, err := safefs.OpenDir(path)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", name, err)
	}
	// Sound: O_NOFOLLOW|O_DIRECTORY refuses a final symlink; the inode is
	// compared with the safefs descriptor's below.
	fdir, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("pool %s: %w", name, err)
	}
	p := &Pool{Name: name, Path: path, dir: d, fdir: fdir}
	if err := p.checkOwner(); err != nil {
		p.Close()
		return nil, err
	}
	p.removeTemps()
	return p, nil
}

// checkOwner insists on a root-owned 0700 directory: volume files hold
// guests' data, and nobody else may plant or swap names in it.
func (p *Pool) checkOwner() error {
	var st unix.Stat_t
	if err := unix.Fstat(int(p.fdir.Fd()), &st); err != nil {
		return fmt.Errorf("pool %s: %w", p.Name, err)
	}
	if st.Uid != uint32(os.Geteuid()) {
		return fmt.Errorf("%w: pool %s: directory %s belongs to uid %d, not the daemon's", ErrInvalid, p.Name, p.Path, st.Uid)
	}
	if st.Mode&0o077 != 0 {
		if err := unix.Fchmod(int(p.fdir.Fd()), 0o700); err != nil {
			return fmt.Errorf("pool %s: chmod 0700 %s: %w", p.Name, p.Path, err)
		}
	}
	// The safefs descriptor was opened by the same trusted path; the path
	// must still name the directory fdir holds.
	var ls unix.Stat_t
	err := unix.Lstat(p.Path, &ls)
	if err == nil && (ls.Ino != st.Ino || ls.Dev != st.Dev) {
		err = errors.New("directory changed while it was opened")
	}
	if err != nil {
		return fmt.Errorf("pool %s: %s: %w", p.Name, p.Path, err)
	}
	return nil
}

// Close releases the pool's descriptors.
func (p *Pool) Close() {
	p.dir.Close()
	p.fdir.Close()
}

// check says whether the held directory still exists: a directory that
// was removed keeps working as a descriptor but takes no new files.
func (p *Pool) check() error {
	var st unix.Stat_t
	if err := unix.Fstat(int(p.fdir.Fd()), &st); err != nil {
		return fmt.Errorf("%w: pool %s: %v", ErrUnavailable, p.Name, err)
	}
	if st.Nlink == 0 {
		return fmt.Errorf("%w: pool %s: its directory %s was removed; restore it and restart the daemon", ErrUnavailable, p.Name, p.Path)
	}
	return nil
}

// space returns the file system's capacity and the bytes free to root.
func (p *Pool) space() (capacity, free uint64, err error) {
	var s unix.Statfs_t
	if err := unix.Fstatfs(int(p.fdir.Fd()), &s); err != nil {
		return 0, 0, fmt.Errorf("pool %s: statfs: %w", p.Name, err)
	}
	return s.Blocks * uint64(s.Bsize), s.Bfree * uint64(s.Bsize), nil
}

// tempName returns a fresh name for a file being made for volume name.
func tempName(name string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return tempPrefix + name + "-" + hex.EncodeToString(b[:])
}

// qemuPath is how qemu-img, given fdir as its fd 3, names a file.
func qemuPath(name string) string { return "/proc/self/fd/3/" + name }

// createFile makes a new empty file (0600) for writing.
func (p *Pool) createFile(name string) (*os.File, error) {
	return p.dir.Open(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
}

// open opens an existing volume file.
func (p *Pool) open(name string, flag int) (*os.File, error) {
	return p.dir.Open(name, flag, 0)
}

// remove deletes a file; a missing one is not an error.
func (p *Pool) remove(name string) error {
	if err := p.dir.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// commit renames a finished temporary file to its volume name; an existing
// file of that name (left by an earlier daemon, not on record) is refused.
func (p *Pool) commit(tmp, name string) error {
	if _, err := p.dir.Stat(name); err == nil {
		return fmt.Errorf("%w: pool %s: a file %s exists that no volume record names; remove it by hand", ErrConflict, p.Name, name)
	}
	return p.dir.Rename(tmp, name)
}

// allocated returns the bytes a file occupies on disk (0 if missing).
func (p *Pool) allocated(name string) int64 {
	fi, err := p.dir.Stat(name)
	if err != nil {
		return 0
	}
	if s, ok := fi.Sys().(*unix.Stat_t); ok {
		return s.Blocks * 512
	}
	return fi.Size()
}

// removeTemps deletes files an interrupted operation left behind.
func (p *Pool) removeTemps() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.fdir.Seek(0, io.SeekStart); err != nil {
		return
	}
	ents, err := p.fdir.ReadDir(10000)
	if err != nil && err != io.EOF {
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			p.remove(e.Name())
		}
	}
}
