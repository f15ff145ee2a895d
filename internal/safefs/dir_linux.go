package safefs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Dir is an open directory below which names are resolved safely. Its
// methods may be called concurrently; Close waits for none of them but
// makes later calls fail.
type Dir struct {
	f    *os.File // O_PATH|O_DIRECTORY descriptor, owned by the Dir
	path string   // for error messages only; nothing is resolved through it
}

// OpenDir opens the directory at path, which must be absolute and chosen by
// the daemon: every directory on the way is trusted (root-owned, not
// writable by others), so path is resolved normally except that its final
// component must not be a symlink (ErrSymlink).
func OpenDir(path string) (*Dir, error) {
	if !filepath.IsAbs(path) {
		return nil, &fs.PathError{Op: "opendir", Path: path, Err: fmt.Errorf("%w: not absolute", ErrInvalidName)}
	}
	// Sound: O_NOFOLLOW refuses a final symlink (ENOTDIR or ELOOP with
	// O_DIRECTORY, or a descriptor for the link itself, caught by the
	// fstat below); the other components are trusted by contract.
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ENOTDIR && isSymlinkAt(unix.AT_FDCWD, path) {
		err = unix.ELOOP
	}
	if err == nil && isSymlinkFD(fd) {
		unix.Close(fd)
		err = unix.ELOOP
	}
	if err != nil {
		return nil, &fs.PathError{Op: "opendir", Path: path, Err: mapErr(err)}
	}
	return &Dir{f: os.NewFile(uintptr(fd), path), path: path}, nil
}

// Close releases the directory descriptor.
func (d *Dir) Close() error { return d.f.Close() }

// Path returns the path the directory was opened with, or that of d's
// parent Dir joined with the name; it is for messages, not for access.
func (d *Dir) Path() string { return d.path }

func (d *Dir) join(name string) string { return d.path + "/" + name }

// do runs fn with d's descriptor, which stays open until fn returns even if
// Close is called meanwhile. It checks name first and wraps any error in
// an *fs.PathError for op and the full path.
func (d *Dir) do(op, name string, fn func(dfd int) error) error {
	if err := checkName(name); err != nil {
		return &fs.PathError{Op: op, Path: d.join(name), Err: err}
	}
	rc, err := d.f.SyscallConn()
	if err != nil {
		return &fs.PathError{Op: op, Path: d.join(name), Err: err}
	}
	var fnErr error
	if err := rc.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		// Control fails only once the descriptor is closed.
		return &fs.PathError{Op: op, Path: d.join(name), Err: fs.ErrClosed}
	}
	if fnErr != nil {
		var pe *fs.PathError
		if errors.As(fnErr, &pe) {
			return fnErr
		}
		return &fs.PathError{Op: op, Path: d.join(name), Err: mapErr(fnErr)}
	}
	return nil
}

// doParent is do for calls that act on the final component through its
// parent: fn gets a descriptor for the directory part of name (resolved
// safely) and the final component.
func (d *Dir) doParent(op, name string, fn func(pfd int, base string) error) error {
	return d.do(op, name, func(dfd int) error {
		pfd, base, release, err := parentOf(dfd, name)
		if err != nil {
			return err
		}
		defer release()
		return fn(pfd, base)
	})
}

// parentOf returns a descriptor for the directory part of the checked name
// below dfd (dfd itself for a single component), the final component, and
// a function that releases the descriptor.
func parentOf(dfd int, name string) (pfd int, base string, release func(), err error) {
	dir, base := splitName(name)
	if dir == "" {
		return dfd, base, func() {}, nil
	}
	pfd, err = openBeneath(dfd, dir, unix.O_PATH|unix.O_DIRECTORY, 0, false)
	if err != nil {
		return -1, "", nil, err
	}
	return pfd, base, func() { unix.Close(pfd) }, nil
}

// mapErr turns the errno openat2 and the walk use for a refused symlink or
// mount crossing into the package's sentinels.
func mapErr(err error) error {
	switch err {
	case unix.ELOOP:
		return ErrSymlink
	case unix.EXDEV:
		return fmt.Errorf("%w (or leaves the directory)", ErrCrossesMount)
	}
	return err
}

// OpenDir opens the directory name below d.
func (d *Dir) OpenDir(name string) (*Dir, error) {
	var sub *Dir
	err := d.do("opendir", name, func(dfd int) error {
		fd, err := openBeneath(dfd, name, unix.O_PATH|unix.O_DIRECTORY, 0, false)
		if err != nil {
			return err
		}
		sub = &Dir{f: os.NewFile(uintptr(fd), d.join(name)), path: d.join(name)}
		return nil
	})
	return sub, err
}

// Open opens the regular file or directory name below d, like os.OpenFile.
// O_CLOEXEC and O_NOCTTY are always added. The open itself is non-blocking
// (O_NONBLOCK is cleared afterwards unless flag has it), and anything other
// than a regular file or directory is refused with ErrNotRegular, so a FIFO
// or device planted at name cannot stall or surprise the caller. A regular
// file with several hard links is refused (ErrHardlink), as it may be a
// host file linked in; O_TRUNC is applied after these checks, and only to
// an open for writing. Only the
// permission bits of perm are used, and the umask applies. O_PATH is
// refused: use OpenDir or Stat.
func (d *Dir) Open(name string, flag int, perm os.FileMode) (*os.File, error) {
	var f *os.File
	err := d.do("open", name, func(dfd int) error {
		fd, err := openChecked(dfd, name, flag, perm, true)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(fd), d.join(name))
		return nil
	})
	return f, err
}

// openChecked is Open on a raw descriptor; allowDir admits directories.
func openChecked(dfd int, name string, flag int, perm os.FileMode, allowDir bool) (int, error) {
	if flag&unix.O_PATH != 0 {
		return -1, fmt.Errorf("%w: O_PATH not supported by Open", unix.EINVAL)
	}
	sysFlag := flag&^unix.O_TRUNC | unix.O_NOCTTY | unix.O_NONBLOCK
	fd, err := openBeneath(dfd, name, sysFlag, uint32(perm.Perm()), false)
	if err != nil {
		return -1, err
	}
	if err := checkOpened(fd, flag, allowDir); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// checkOpened applies Open's checks to a fresh descriptor and then the
// deferred O_TRUNC and O_NONBLOCK settings.
func checkOpened(fd, flag int, allowDir bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	switch kind := st.Mode & unix.S_IFMT; {
	case kind == unix.S_IFDIR && allowDir:
	case kind != unix.S_IFREG:
		return fmt.Errorf("%w: %s", ErrNotRegular, kindName(kind))
	case st.Nlink > 1:
		// Refused for reading too: what the daemon reads back it may
		// show to an API user, and a hard link could make that a host
		// file.
		return fmt.Errorf("%w: %d links", ErrHardlink, st.Nlink)
	case flag&unix.O_ACCMODE != unix.O_RDONLY && flag&unix.O_TRUNC != 0:
		if err := unix.Ftruncate(fd, 0); err != nil {
			return err
		}
	}
	if flag&unix.O_NONBLOCK == 0 {
		return unix.SetNonblock(fd, false)
	}
	return nil
}

func kindName(kind uint32) string {
	switch kind {
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symbolic link"
	}
	return "file type " + strconv.FormatUint(uint64(kind), 8)
}

// Mkdir creates the directory name below d with perm (less the umask).
func (d *Dir) Mkdir(name string, perm os.FileMode) error {
	return d.doParent("mkdir", name, func(pfd int, base string) error {
		// Sound: mkdirat creates base in the directory pfd refers to and
		// fails with EEXIST on anything already there, a symlink included.
		return unix.Mkdirat(pfd, base, uint32(perm.Perm()))
	})
}

// Remove removes the file or empty directory name below d. A symlink is
// removed itself; its target is never touched.
func (d *Dir) Remove(name string) error {
	return d.doParent("remove", name, func(pfd int, base string) error {
		// Sound: unlinkat never follows its final component.
		err := unix.Unlinkat(pfd, base, 0)
		if err == unix.EISDIR {
			err = unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR)
		}
		return err
	})
}

// Rename renames oldname to newname, both below d, replacing a file at
// newname as rename(2) does. Neither final component is followed.
func (d *Dir) Rename(oldname, newname string) error {
	if err := checkName(newname); err != nil {
		return &fs.PathError{Op: "rename", Path: d.join(newname), Err: err}
	}
	return d.do("rename", oldname, func(dfd int) error {
		opfd, obase, orelease, err := parentOf(dfd, oldname)
		if err != nil {
			return err
		}
		defer orelease()
		npfd, nbase, nrelease, err := parentOf(dfd, newname)
		if err != nil {
			return &fs.PathError{Op: "rename", Path: d.join(newname), Err: mapErr(err)}
		}
		defer nrelease()
		// Sound: renameat acts on entries of the two directories the
		// descriptors refer to and follows neither final component.
		return unix.Renameat(opfd, obase, npfd, nbase)
	})
}

// Chown changes the owner of name below d. A symlink at name is refused
// (ErrSymlink) rather than changed, and so is a regular file with several
// hard links (ErrHardlink).
func (d *Dir) Chown(name string, uid, gid int) error {
	return d.do("chown", name, func(dfd int) error {
		fd, err := openInode(dfd, name)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		// Sound: with AT_EMPTY_PATH, fchownat changes the inode fd refers
		// to, which openInode checked; no name is resolved again.
		return unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH)
	})
}

// Chmod changes the permission bits of name below d, with Chown's refusals.
// On kernels before 6.6 (no fchmodat2) it needs /proc mounted.
func (d *Dir) Chmod(name string, mode os.FileMode) error {
	return d.do("chmod", name, func(dfd int) error {
		fd, err := openInode(dfd, name)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		// Sound: both calls act on the inode fd refers to: fchmodat2 by
		// AT_EMPTY_PATH, chmod through the /proc magic link of fd, which
		// the kernel resolves to that inode and nothing else.
		err = unix.Fchmodat(fd, "", uint32(mode.Perm()), unix.AT_EMPTY_PATH)
		if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
			err = unix.Chmod(procFD(fd), uint32(mode.Perm()))
		}
		return err
	})
}

// openInode returns an O_PATH descriptor for name, refusing a symlink and a
// regular file with several hard links.
func openInode(dfd int, name string) (int, error) {
	fd, err := openBeneath(dfd, name, unix.O_PATH, 0, false)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink > 1 {
		unix.Close(fd)
		return -1, fmt.Errorf("%w: %d links", ErrHardlink, st.Nlink)
	}
	return fd, nil
}

func procFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// Stat returns information about name below d without following a symlink
// at name (like os.Lstat); a symlink at an earlier component is refused.
func (d *Dir) Stat(name string) (os.FileInfo, error) {
	var fi os.FileInfo
	err := d.do("stat", name, func(dfd int) error {
		fd, err := openBeneath(dfd, name, unix.O_PATH|unix.O_NOFOLLOW, 0, false)
		if err != nil {
			return err
		}
		// fstat works on O_PATH descriptors, and os fills FileInfo from it.
		f := os.NewFile(uintptr(fd), d.join(name))
		defer f.Close()
		fi, err = f.Stat()
		return err
	})
	return fi, err
}
