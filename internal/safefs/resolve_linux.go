package safefs

import (
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// resolveFlags go with every openat2 call: stay below the directory
// descriptor and follow no symlink, ordinary or /proc magic link.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openat2Retries bounds retries on EAGAIN, which openat2 returns when a
// concurrent rename or mount could have let ".." escape. Checked names have
// no "..", so a retry is rare and a loop of them means something is wrong.
const openat2Retries = 8

// noOpenat2 is set once openat2 has returned ENOSYS (a kernel before 5.6,
// or a seccomp filter that hides it); from then on names are walked one
// component at a time. Tests set it to exercise the walk.
var noOpenat2 atomic.Bool

// openBeneath opens name, which checkName accepted, below dirfd without
// following a symlink at any component; a symlink gives ELOOP. flags are
// open(2) flags; O_CLOEXEC is always added. As with open(2), O_PATH|O_NOFOLLOW
// returns a descriptor for a final symlink itself. noXdev refuses (EXDEV) a
// name that crosses a mount point. The caller keeps dirfd open for the call.
func openBeneath(dirfd int, name string, flags int, mode uint32, noXdev bool) (int, error) {
	flags |= unix.O_CLOEXEC
	if flags&unix.O_CREAT == 0 && flags&unix.O_TMPFILE != unix.O_TMPFILE {
		mode = 0 // openat2 rejects a mode when nothing is created
	}
	if !noOpenat2.Load() {
		how := unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: resolveFlags}
		if noXdev {
			how.Resolve |= unix.RESOLVE_NO_XDEV
		}
		for range openat2Retries {
			// Sound: the kernel resolves name relative to dirfd and,
			// because of the resolve flags, refuses a symlink at any
			// component and any path that would leave dirfd, atomically
			// with the open; no check-then-use window exists.
			fd, err := unix.Openat2(dirfd, name, &how)
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			if err != unix.ENOSYS {
				return fd, err
			}
			noOpenat2.Store(true)
			return openWalk(dirfd, name, flags, mode, noXdev)
		}
		return -1, unix.EAGAIN
	}
	return openWalk(dirfd, name, flags, mode, noXdev)
}

// openWalk is openBeneath for kernels without openat2: one openat per
// component, each with O_NOFOLLOW and relative to the descriptor of the
// previous one, so a rename or symlink swap after a step cannot redirect
// the next. Mount crossings are detected by device number only, which
// misses a bind mount of the same file system.
func openWalk(dirfd int, name string, flags int, mode uint32, noXdev bool) (int, error) {
	var dev uint64
	if noXdev {
		var st unix.Stat_t
		if err := unix.Fstat(dirfd, &st); err != nil {
			return -1, err
		}
		dev = st.Dev
	}
	cur := dirfd
	defer func() {
		if cur != dirfd {
			unix.Close(cur)
		}
	}()
	parts := strings.Split(name, "/")
	for _, p := range parts[:len(parts)-1] {
		// Sound: O_NOFOLLOW stops at a symlink named p, and O_DIRECTORY
		// refuses anything but a directory; the next step is relative to
		// the descriptor, not to a path that could change.
		fd, err := unix.Openat(cur, p, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil && isSymlinkFD(fd) {
			unix.Close(fd)
			err = unix.ELOOP
		}
		if err == unix.ENOTDIR && isSymlinkAt(cur, p) {
			err = unix.ELOOP
		}
		if err != nil {
			return -1, err
		}
		if cur != dirfd {
			unix.Close(cur)
		}
		cur = fd
		if noXdev && !sameDev(cur, dev) {
			return -1, unix.EXDEV
		}
	}
	last := parts[len(parts)-1]
	wantLink := flags&unix.O_PATH != 0 && flags&unix.O_NOFOLLOW != 0
	// Sound: O_NOFOLLOW makes open fail with ELOOP on a final symlink, or,
	// with O_PATH, return the link itself, which is refused below unless
	// the caller asked for it.
	fd, err := unix.Openat(cur, last, flags|unix.O_NOFOLLOW, mode)
	if err == unix.ENOTDIR && isSymlinkAt(cur, last) {
		err = unix.ELOOP
	}
	if err != nil {
		return -1, err
	}
	if !wantLink && isSymlinkFD(fd) {
		unix.Close(fd)
		return -1, unix.ELOOP
	}
	if noXdev && !sameDev(fd, dev) {
		unix.Close(fd)
		return -1, unix.EXDEV
	}
	return fd, nil
}

func isSymlinkFD(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

func isSymlinkAt(dirfd int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

func sameDev(fd int, dev uint64) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Dev == dev
}
