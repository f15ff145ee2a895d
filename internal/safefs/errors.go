package safefs

import "errors"

// Sentinel errors for callers that must branch. They are returned inside an
// *fs.PathError naming the operation and the full path.
var (
	// ErrInvalidName: the name is empty, absolute, too long, or has an
	// empty, "." or ".." component.
	ErrInvalidName = errors.New("invalid name")
	// ErrSymlink: a component of the name is a symbolic link.
	ErrSymlink = errors.New("symbolic link refused")
	// ErrNotRegular: the name is a FIFO, device, socket or other special
	// file where a regular file (or directory) was required.
	ErrNotRegular = errors.New("not a regular file")
	// ErrNotSocket: DialUnix found something other than a socket.
	ErrNotSocket = errors.New("not a socket")
	// ErrHardlink: a regular file to be opened, chowned or chmodded has
	// more than one hard link, so it may be a host file linked in.
	ErrHardlink = errors.New("file has several hard links")
	// ErrTooLarge: a file is larger than the caller's cap, or a tree given
	// to RemoveAll is deeper or has more entries than its limits.
	ErrTooLarge = errors.New("too large")
	// ErrCrossesMount: RemoveAll met a mount point below the directory.
	ErrCrossesMount = errors.New("crosses a mount point")
)
