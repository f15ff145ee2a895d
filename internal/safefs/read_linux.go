package safefs

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ReadTail returns the last limit bytes of f, a regular file (ErrNotRegular
// otherwise), or all of it when it is shorter. It reads from f's size at
// the time of the call, so a file still being written yields a consistent
// cap; a file truncated meanwhile yields what is left. f's offset is not
// used or moved.
func ReadTail(f *os.File, limit int64) ([]byte, error) {
	if limit < 0 {
		return nil, fmt.Errorf("read tail of %s: negative cap %d", f.Name(), limit)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "read tail", Path: f.Name(), Err: ErrNotRegular}
	}
	size := fi.Size()
	off := max(size-limit, 0)
	buf := make([]byte, size-off)
	n, err := f.ReadAt(buf, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return buf[:n], err
}

// ReadFileCapped reads the regular file name below d, refusing a file of
// more than limit bytes with ErrTooLarge and anything but a regular file
// with ErrNotRegular. The open is read-only and non-blocking.
func (d *Dir) ReadFileCapped(name string, limit int64) ([]byte, error) {
	var b []byte
	err := d.do("read", name, func(dfd int) error {
		f, err := openRegularRead(dfd, name, d.join(name))
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.Size() > limit {
			return fmt.Errorf("%w: %d bytes, cap %d", ErrTooLarge, fi.Size(), limit)
		}
		// Read one byte past the cap so a file that grew since the
		// fstat is still refused, not silently cut.
		b, err = io.ReadAll(io.LimitReader(f, limit+1))
		if err == nil && int64(len(b)) > limit {
			b, err = nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
		}
		return err
	})
	return b, err
}

// ReadFileTail returns the last limit bytes of the regular file name below d,
// for logs the daemon reads back. The open is read-only and non-blocking.
func (d *Dir) ReadFileTail(name string, limit int64) ([]byte, error) {
	var b []byte
	err := d.do("read tail", name, func(dfd int) error {
		f, err := openRegularRead(dfd, name, d.join(name))
		if err != nil {
			return err
		}
		defer f.Close()
		b, err = ReadTail(f, limit)
		return err
	})
	return b, err
}

func openRegularRead(dfd int, name, path string) (*os.File, error) {
	fd, err := openChecked(dfd, name, unix.O_RDONLY, 0, false)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}
