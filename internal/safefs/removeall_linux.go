package safefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Limits on RemoveAll, so that a tree the VM's uid keeps growing cannot keep
// the daemon busy. Variables so tests can lower them.
var (
	removeMaxDepth   = 64      // directory levels below the name
	removeMaxEntries = 100_000 // entries visited, all levels together
)

const (
	// removeBatch is how many names are read from a directory before
	// they are removed and the listing restarted.
	removeBatch = 256
	// removeRetries bounds how often one entry is retried when it changes
	// type under RemoveAll (a directory swapped for a symlink, a file
	// added after the listing).
	removeRetries = 4
)

// RemoveAll removes name below d and everything under it, like os.RemoveAll:
// a name that does not exist (or whose parent does not) is not an error. It never follows a symlink
// (a symlink is removed itself), never leaves d, and refuses to descend into
// a mount point (ErrCrossesMount). A tree deeper than 64 levels or with
// more than 100,000 entries is left partly removed with ErrTooLarge.
func (d *Dir) RemoveAll(name string) error {
	return d.do("removeall", name, func(dfd int) error {
		pfd, base, release, err := parentOf(dfd, name)
		if err == unix.ENOENT {
			return nil // no parent, so no name either
		}
		if err != nil {
			return err
		}
		defer release()
		budget := removeMaxEntries
		return removeAt(pfd, base, d.join(name), 0, &budget)
	})
}

// removeAt removes base in the directory pfd refers to; path is its full
// path, for errors.
func removeAt(pfd int, base, path string, depth int, budget *int) error {
	for range removeRetries {
		// Sound: unlinkat never follows base; a symlink or file is
		// removed as the entry it is.
		err := unix.Unlinkat(pfd, base, 0)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EISDIR {
			return &fs.PathError{Op: "remove", Path: path, Err: err}
		}
		if depth >= removeMaxDepth {
			return &fs.PathError{Op: "removeall", Path: path, Err: fmt.Errorf("%w: deeper than %d levels", ErrTooLarge, removeMaxDepth)}
		}
		err = emptyDir(pfd, base, path, depth, budget)
		if errors.Is(err, errChanged) {
			continue
		}
		if err != nil {
			return err
		}
		err = unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR)
		switch err {
		case nil, unix.ENOENT:
			return nil
		case unix.ENOTEMPTY, unix.ENOTDIR:
			continue // refilled or swapped meanwhile
		}
		return &fs.PathError{Op: "remove", Path: path, Err: err}
	}
	return &fs.PathError{Op: "removeall", Path: path, Err: errors.New("entry kept changing during removal")}
}

// errChanged means the directory being emptied was replaced meanwhile.
var errChanged = errors.New("changed during removal")

// emptyDir removes every entry of the directory base in pfd.
func emptyDir(pfd int, base, path string, depth int, budget *int) error {
	// Sound: openBeneath follows no symlink and, with noXdev, crosses no
	// mount point, so the descriptor is for a directory that really sits
	// at base on the same mount; everything below is removed relative to
	// it.
	fd, err := openBeneath(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK, 0, true)
	switch err {
	case nil:
	case unix.ELOOP, unix.ENOTDIR, unix.ENOENT:
		return errChanged
	case unix.EXDEV:
		return &fs.PathError{Op: "removeall", Path: path, Err: ErrCrossesMount}
	default:
		return &fs.PathError{Op: "removeall", Path: path, Err: err}
	}
	dir := os.NewFile(uintptr(fd), path)
	defer dir.Close()
	for {
		names, err := dir.Readdirnames(removeBatch)
		if err != nil && err != io.EOF {
			return &fs.PathError{Op: "removeall", Path: path, Err: err}
		}
		for _, n := range names {
			if *budget--; *budget < 0 {
				return &fs.PathError{Op: "removeall", Path: path, Err: fmt.Errorf("%w: more than %d entries", ErrTooLarge, removeMaxEntries)}
			}
			if err := removeAt(fd, n, path+"/"+n, depth+1, budget); err != nil {
				return err
			}
		}
		if len(names) < removeBatch {
			return nil
		}
		// Entries were removed while the listing was open; start it
		// again so none is skipped.
		if _, err := dir.Seek(0, io.SeekStart); err != nil {
			return &fs.PathError{Op: "removeall", Path: path, Err: err}
		}
	}
}
