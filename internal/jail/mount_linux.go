package jail

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// rootOptions: the jail's root is a small tmpfs that only holds mount
// points; it is remounted read-only once they exist.
const rootOptions = "size=256k,nr_inodes=4096,mode=0755"

// buildRoot makes the jail's root and pivots into it. It runs in the jail's
// own mount namespace, so nothing it mounts is visible on the host.
func buildRoot(s *Spec) error {
	// Nothing mounted here may propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("tmpfs", s.Root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, rootOptions); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", s.Root, err)
	}
	for _, l := range s.Symlinks {
		dst := filepath.Join(s.Root, l.Path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(l.Target, dst); err != nil {
			return fmt.Errorf("symlink %s: %w", l.Path, err)
		}
	}
	for _, b := range s.Binds {
		if err := bindOne(s.Root, b); err != nil {
			return err
		}
	}
	if s.Proc {
		dst := filepath.Join(s.Root, "proc")
		if err := os.Mkdir(dst, 0o555); err != nil {
			return err
		}
		if err := unix.Mount("proc", dst, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "hidepid=invisible,subset=pid"); err != nil {
			return fmt.Errorf("mount /proc: %w", err)
		}
	}
	if err := unix.Chdir(s.Root); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root under the new one; the
	// lazy unmount then drops it, so no path leads back to the host.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("remount root read-only: %w", err)
	}
	return nil
}

func bindOne(root string, b Bind) error {
	dst := filepath.Join(root, b.Path)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("bind %s: %w", b.Path, err)
	}
	if b.Dir {
		if err := os.Mkdir(dst, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("bind %s: %w", b.Path, err)
		}
	} else {
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
		if errors.Is(err, os.ErrExist) {
			return nil // listed twice
		}
		if err != nil {
			return fmt.Errorf("bind %s: %w", b.Path, err)
		}
		f.Close()
	}
	if err := unix.Mount(b.Path, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", b.Path, err)
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_NOSUID)
	if !b.Writable {
		flags |= unix.MS_RDONLY
	}
	if !b.Exec {
		flags |= unix.MS_NOEXEC
	}
	if !b.Device {
		flags |= unix.MS_NODEV
	}
	if err := unix.Mount("", dst, "", flags, ""); err != nil {
		return fmt.Errorf("bind %s: restrict: %w", b.Path, err)
	}
	return nil
}
