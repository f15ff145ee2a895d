package safefs

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// maxSunPath is the longest socket name bind accepts: sun_path is 108
// bytes including the terminating NUL.
const maxSunPath = 107

// DialUnix connects to the stream socket name below d. The socket inode is
// opened with O_PATH (a symlink at any component refused with ErrSymlink),
// checked to be a socket (ErrNotSocket), and connected to through the
// /proc/self/fd magic link of that descriptor, which the kernel resolves to
// exactly that inode; the name is never looked up again. Needs /proc. The
// connection's RemoteAddr is that /proc path, not name.
func (d *Dir) DialUnix(ctx context.Context, name string) (*net.UnixConn, error) {
	var conn *net.UnixConn
	err := d.do("dial", name, func(dfd int) error {
		fd, err := openBeneath(dfd, name, unix.O_PATH, 0, false)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			return fmt.Errorf("%w: %s", ErrNotSocket, kindName(st.Mode&unix.S_IFMT))
		}
		// Sound: connect resolves the magic link to the inode fd holds,
		// so what is connected to is the socket checked above even if
		// name is replaced meanwhile. fd stays open until Dial returns.
		var dialer net.Dialer
		c, err := dialer.DialContext(ctx, "unix", procFD(fd))
		if err != nil {
			return err
		}
		conn = c.(*net.UnixConn)
		return nil
	})
	return conn, err
}

// ListenUnix binds a stream socket at name below d and listens on it. The
// socket file is created with exactly perm (the umask does not apply, and
// there is no moment with wider permissions). A stale socket at name is
// removed first; anything else there is refused with fs.ErrExist. The
// listener does not remove the socket file when closed.
func (d *Dir) ListenUnix(name string, perm os.FileMode) (*net.UnixListener, error) {
	var ln *net.UnixListener
	err := d.doParent("listen", name, func(pfd int, base string) error {
		fd, err := bindAt(pfd, base, unix.SOCK_STREAM, perm)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), d.join(name))
		defer f.Close()
		if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
			return err
		}
		l, err := net.FileListener(f) // dups fd
		if err != nil {
			return err
		}
		ln = l.(*net.UnixListener)
		return nil
	})
	return ln, err
}

// ListenUnixgram is ListenUnix for a datagram socket.
func (d *Dir) ListenUnixgram(name string, perm os.FileMode) (*net.UnixConn, error) {
	var conn *net.UnixConn
	err := d.doParent("listen", name, func(pfd int, base string) error {
		fd, err := bindAt(pfd, base, unix.SOCK_DGRAM, perm)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), d.join(name))
		defer f.Close()
		c, err := net.FileConn(f) // dups fd
		if err != nil {
			return err
		}
		conn = c.(*net.UnixConn)
		return nil
	})
	return conn, err
}

// bindAt creates a Unix socket of type typ bound at base in the directory
// pfd refers to, with mode perm, after removing a stale socket there.
func bindAt(pfd int, base string, typ int, perm os.FileMode) (int, error) {
	if len(base) > maxSunPath {
		return -1, fmt.Errorf("%w: socket name longer than %d bytes", ErrInvalidName, maxSunPath)
	}
	var st unix.Stat_t
	switch err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == unix.ENOENT:
	case err != nil:
		return -1, err
	case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
		return -1, fmt.Errorf("%w: %s in the way", fs.ErrExist, kindName(st.Mode&unix.S_IFMT))
	default:
		// Sound: unlinkat removes the entry itself. If it was swapped
		// since the fstatat, what goes is an entry in a directory its
		// writer could empty anyway.
		if err := unix.Unlinkat(pfd, base, 0); err != nil && err != unix.ENOENT {
			return -1, err
		}
	}
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	if err := bindInDir(fd, pfd, base, perm); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// bindInDir binds fd to base relative to the directory pfd, on a thread of
// its own whose working directory and umask are private: unshare(CLONE_FS)
// gives the thread its own copy, fchdir(pfd) makes base relative to the
// held descriptor (bind never follows its final component: a symlink there
// is EADDRINUSE), and the umask 0777&^perm gives the socket file exactly
// perm at creation. The thread is never unlocked, so the runtime ends it
// with the goroutine and no other goroutine ever runs with that state.
func bindInDir(fd, pfd int, base string, perm os.FileMode) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			// Nothing changed yet: the thread may go back to the pool.
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("private working directory for bind: %w", err)
			return
		}
		if err := unix.Fchdir(pfd); err != nil {
			errc <- err
			return
		}
		unix.Umask(int(0o777 &^ perm.Perm()))
		errc <- unix.Bind(fd, &unix.SockaddrUnix{Name: base})
	}()
	return <-errc
}
